/**
 * Tokens and key sets for identity tests, built with node:crypto rather than
 * jose so that the verifier under test and the tokens it checks do not share
 * code, and so that tokens jose would refuse to produce (alg none, crit,
 * embedded keys, HMAC with a public key) can be crafted byte by byte.
 */
import { createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { IdentityConfig, IssuerConfig } from '../../engine/config/schema.js';

export interface TestKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The public JWK as an issuer publishes it. */
  jwk: Record<string, unknown>;
}

export function testKey(alg: 'RS256' | 'ES256', kid: string): TestKey {
  const { privateKey, publicKey } = alg === 'RS256'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kid, alg, privateKey, publicKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } };
}

export function jwksOf(...keys: TestKey[]): { keys: Record<string, unknown>[] } {
  return { keys: keys.map((k) => k.jwk) };
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A compact JWS over exactly this header and payload; `signer` makes the signature (none: empty). */
export function rawToken(header: Record<string, unknown>, payload: Record<string, unknown>, signer?: (input: Buffer) => Buffer): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${signer ? signer(Buffer.from(input)).toString('base64url') : ''}`;
}

export function signerOf(key: TestKey): (input: Buffer) => Buffer {
  return key.alg === 'RS256'
    ? (input) => sign('sha256', input, key.privateKey)
    : (input) => sign('sha256', input, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
}

export function hmacSigner(secret: string | Buffer): (input: Buffer) => Buffer {
  return (input) => createHmac('sha256', secret).update(input).digest();
}

export const ISSUER = 'https://idp.example.test';
export const AUDIENCE = 'gatehouse';
export const now = (): number => Math.floor(Date.now() / 1000);

/** Claims a trusted issuer would put in a good token; override or delete (undefined) any of them. */
export function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base = { iss: ISSUER, aud: AUDIENCE, sub: 'agent-1', groups: ['analysts'], iat: now(), exp: now() + 600, ...overrides };
  return Object.fromEntries(Object.entries(base).filter(([, v]) => v !== undefined));
}

/** A correctly signed token from `key`, with optional extra header parameters. */
export function tokenFrom(key: TestKey, payload: Record<string, unknown> = claims(), header: Record<string, unknown> = {}): string {
  return rawToken({ alg: key.alg, typ: 'JWT', kid: key.kid, ...header }, payload, signerOf(key));
}

export function identityConfig(issuer: Partial<IssuerConfig>, extra: Partial<IdentityConfig> = {}): IdentityConfig {
  return {
    issuers: [{
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: ['RS256', 'ES256'],
      clock_skew_seconds: 30,
      required_claims: [],
      groups_claim: 'groups',
      ...issuer,
    }],
    max_token_bytes: 8192,
    ...extra,
  };
}

/** A real HTTP JWKS endpoint that counts its fetches and can be told to fail. */
export interface JwksServer {
  url: string;
  fetches: number;
  keys: { keys: Record<string, unknown>[] };
  /** When set, answers with this status and no key set. */
  failWith: number | undefined;
  close(): Promise<void>;
}

export async function startJwksServer(initial: { keys: Record<string, unknown>[] }): Promise<JwksServer> {
  const server: Server = createServer((_req, res) => {
    state.fetches++;
    if (state.failWith !== undefined) {
      res.writeHead(state.failWith).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify(state.keys));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const state: JwksServer = {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    fetches: 0,
    keys: initial,
    failWith: undefined,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      // fetch keeps connections alive; close would otherwise wait for them.
      server.closeAllConnections();
    }),
  };
  return state;
}
