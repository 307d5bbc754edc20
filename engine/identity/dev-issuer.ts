/**
 * A local token issuer for development and demos (`gatehouse token`): an
 * ES256 key kept as a private JWK file, whose public half the verifier trusts
 * only while identity.dev_issuer.enabled is true. Whoever can read the key
 * file can mint a token for any subject, hence the 0600 mode, the refusal of
 * looser modes, and the start-up warning.
 */
import { randomUUID } from 'node:crypto';
import { link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, SignJWT, type CryptoKey, type JSONWebKeySet, type JWK } from 'jose';
import type { IdentityConfig } from '../config/schema.js';
import { fileKeySet } from './key-sets.js';
import type { TrustedIssuer } from './trusted-issuer.js';

export type DevIssuerConfig = NonNullable<IdentityConfig['dev_issuer']>;

const ALG = 'ES256';
/** Dev tokens stay short-lived even in development. */
export const MAX_DEV_TOKEN_TTL_SECONDS = 24 * 3600;

/** A problem with the dev issuer that the user can fix (config, key file, request). */
export class DevIssuerError extends Error {
  override readonly name = 'DevIssuerError';
}

export interface DevIssuerKey {
  kid: string;
  privateKey: CryptoKey;
}

export interface DevTokenRequest {
  /** Who acts: the agent (or the human, with agent: false). */
  sub: string;
  groups: readonly string[];
  /** The human the agent acts for; the token then says sub = human, act.sub = agent (RFC 8693). */
  act?: string;
  ttlSeconds: number;
  /** Whether `sub` is an agent; defaults to true (dev tokens are mostly for agents). Implied by act. */
  agent?: boolean;
}

/** One line for the serve command to log loudly at start-up, or undefined when the dev issuer is off. */
export function devIssuerWarning(identity: IdentityConfig): string | undefined {
  const dev = identity.dev_issuer;
  if (!dev?.enabled) return undefined;
  return `the development token issuer is ENABLED (issuer ${dev.issuer}): anyone who can read ${dev.key_file} can mint a token for any subject; never enable identity.dev_issuer in production`;
}

/**
 * The dev issuer as one more trusted issuer, checked exactly like a configured
 * one. Its key set is the public half of the key file, re-read when the file
 * changes.
 */
export function devIssuerTrust(dev: DevIssuerConfig, keyFileRecheckMs = 0): TrustedIssuer {
  return {
    rules: {
      issuer: dev.issuer,
      audience: dev.audience,
      algorithms: [ALG],
      clock_skew_seconds: 30,
      required_claims: [],
      groups_claim: 'groups',
    },
    keys: fileKeySet(dev.key_file, devPublicJwks, keyFileRecheckMs),
  };
}

function devPublicJwks(json: unknown): JSONWebKeySet {
  const { kty, crv, x, y, kid } = parseDevKey(json);
  return { keys: [{ kty, crv, x, y, kid, alg: ALG, use: 'sig' }] };
}

/** Loads the dev key, creating it (mode 0600, kid = RFC 7638 thumbprint) when the file does not exist. */
export async function ensureDevIssuerKey(keyFile: string): Promise<DevIssuerKey> {
  try {
    return await loadDevKey(keyFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await createDevKey(keyFile);
  return loadDevKey(keyFile);
}

/** Signs a token with the dev key (created if missing). Refuses when the dev issuer is not enabled. */
export async function mintDevToken(dev: DevIssuerConfig | undefined, request: DevTokenRequest): Promise<string> {
  if (!dev?.enabled) {
    throw new DevIssuerError('the dev issuer is not enabled; set identity.dev_issuer.enabled: true (and key_file) in the config, for development only');
  }
  if (request.sub === '' || request.act === '') throw new DevIssuerError('sub and act must not be empty');
  const { ttlSeconds } = request;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_DEV_TOKEN_TTL_SECONDS) {
    throw new DevIssuerError(`ttl must be a whole number of seconds between 1 and ${MAX_DEV_TOKEN_TTL_SECONDS}`);
  }
  if (request.act !== undefined && request.agent === false) {
    throw new DevIssuerError('a token that acts for someone is always an agent\'s; drop act or agent: false');
  }
  const key = await ensureDevIssuerKey(dev.key_file);
  const claims = request.act === undefined
    ? { sub: request.sub, groups: [...request.groups], agent: request.agent ?? true }
    : { sub: request.act, groups: [...request.groups], act: { sub: request.sub } };
  return new SignJWT(claims)
    .setProtectedHeader({ alg: ALG, kid: key.kid, typ: 'JWT' })
    .setIssuer(dev.issuer)
    .setAudience(dev.audience)
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .setJti(randomUUID())
    .sign(key.privateKey);
}

async function loadDevKey(keyFile: string): Promise<DevIssuerKey> {
  const { mode } = await stat(keyFile);
  if ((mode & 0o077) !== 0) {
    throw new DevIssuerError(`dev issuer key ${keyFile} is readable by others (mode ${(mode & 0o777).toString(8)}); run chmod 600 ${keyFile}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(await readFile(keyFile, 'utf8'));
  } catch (err) {
    throw new DevIssuerError(`dev issuer key ${keyFile} is not JSON (${(err as Error).message}); delete it to have a new one created`);
  }
  const jwk = parseDevKey(json);
  if (jwk.kid !== (await calculateJwkThumbprint(jwk))) {
    throw new DevIssuerError(`dev issuer key ${keyFile}: kid is not the key's RFC 7638 thumbprint; delete the file to have a new one created`);
  }
  return { kid: jwk.kid, privateKey: (await importJWK(jwk, ALG)) as CryptoKey };
}

/**
 * Written to a temporary file and hard-linked into place, so a concurrent
 * reader never sees half a key and two processes racing to create it end up
 * sharing one (link fails if the name exists).
 */
async function createDevKey(keyFile: string): Promise<void> {
  const { privateKey } = await generateKeyPair(ALG, { extractable: true });
  const jwk = await exportJWK(privateKey);
  const withKid: JWK = { ...jwk, kid: await calculateJwkThumbprint(jwk), alg: ALG, use: 'sig' };
  await mkdir(dirname(keyFile), { recursive: true, mode: 0o700 });
  const temp = join(dirname(keyFile), `.${basename(keyFile)}.${randomUUID()}.tmp`);
  await writeFile(temp, `${JSON.stringify(withKid, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(temp, keyFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await unlink(temp);
  }
}

type DevJwk = JWK & { kty: 'EC'; crv: 'P-256'; x: string; y: string; d: string; kid: string };

function parseDevKey(json: unknown): DevJwk {
  const jwk = json as Partial<DevJwk> | null;
  if (
    typeof jwk !== 'object' || jwk === null || jwk.kty !== 'EC' || jwk.crv !== 'P-256' ||
    typeof jwk.x !== 'string' || typeof jwk.y !== 'string' || typeof jwk.d !== 'string' || typeof jwk.kid !== 'string'
  ) {
    throw new DevIssuerError('dev issuer key is not a private EC P-256 JWK with a kid; delete it to have a new one created');
  }
  return jwk as DevJwk;
}
