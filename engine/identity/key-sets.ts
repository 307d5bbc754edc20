/**
 * Where an issuer's public keys come from. Both kinds pick up rotated keys
 * without a restart. A key set throws jose's JWKSNoMatchingKey when no key
 * fits the token, and TokenError('jwks_unavailable') when it has no usable
 * set at all: the verifier turns the first into `unknown_key`.
 */
import { stat, readFile } from 'node:fs/promises';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
} from 'jose';
import { TokenError } from './identity.js';

export type KeySet = JWTVerifyGetKey;

/** Errors that mean "no key fits this token", as opposed to "the key set itself is broken". */
export function isKeyMismatch(err: unknown): boolean {
  return err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys;
}

/**
 * A JWKS fetched over HTTP(S) and cached by jose. An unknown kid triggers one
 * refetch, at most once per `cooldownMs`, so a flood of tokens with made-up
 * kids cannot turn the gateway into a load generator against the IdP. A
 * failed fetch is not retried within the cooldown either (jose alone would
 * retry on every token while it has no set).
 */
export function remoteKeySet(uri: string, cooldownMs: number): KeySet {
  const remote = createRemoteJWKSet(new URL(uri), { cooldownDuration: cooldownMs });
  let failedAt = Number.NEGATIVE_INFINITY;
  return async (header, token) => {
    if (Date.now() - failedAt < cooldownMs) {
      throw new TokenError('jwks_unavailable', `key set ${uri} could not be fetched recently; retrying after the cooldown`);
    }
    try {
      return await remote(header, token);
    } catch (err) {
      if (isKeyMismatch(err) || err instanceof errors.JOSENotSupported) throw err;
      failedAt = Date.now();
      throw new TokenError('jwks_unavailable', `cannot fetch key set ${uri}: ${oneLine(err)}`);
    }
  };
}

/**
 * A JWKS read from a local file, re-read whenever the file changes (its
 * inode, size or times), looked at no more than once per `recheckMs`, so
 * keys rotate by replacing the file. Write it
 * atomically (write a temporary file, then rename): a half-written file
 * refuses tokens until it is complete, because an unreadable set fails
 * closed rather than falling back to the previous keys.
 *
 * `toJwks` converts the file's JSON into a key set; the dev issuer uses it to
 * publish only the public half of its private key file.
 */
export function fileKeySet(path: string, toJwks: (json: unknown) => JSONWebKeySet = asJwks, recheckMs = 0): KeySet {
  let loaded: { fingerprint: string; keys: KeySet } | undefined;
  let pending: { fingerprint: string; keys: Promise<KeySet> } | undefined;
  let checkedAt = Number.NEGATIVE_INFINITY;

  const load = async (): Promise<KeySet> => {
    const json: unknown = JSON.parse(await readFile(path, 'utf8'));
    return createLocalJWKSet(toJwks(json));
  };

  return async (header, token) => {
    // A stat per token is a syscall on every request once tokens are cached
    // (verified-tokens.ts); a rotation is seen within recheckMs instead.
    if (loaded && Date.now() - checkedAt < recheckMs) return loaded.keys(header, token);
    checkedAt = Date.now();
    let fingerprint: string;
    try {
      const s = await stat(path, { bigint: true });
      fingerprint = `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
    } catch (err) {
      // Forgotten, so the next token within recheckMs fails too instead of using the old keys.
      loaded = undefined;
      throw new TokenError('jwks_unavailable', `cannot read key set ${path}: ${oneLine(err)}`);
    }
    if (loaded?.fingerprint !== fingerprint) {
      // Concurrent verifications after a change share one read.
      if (pending?.fingerprint !== fingerprint) pending = { fingerprint, keys: load() };
      const current = pending;
      try {
        loaded = { fingerprint, keys: await current.keys };
      } catch (err) {
        loaded = undefined;
        throw new TokenError('jwks_unavailable', `cannot load key set ${path}: ${oneLine(err)}`);
      } finally {
        if (pending === current) pending = undefined;
      }
    }
    return loaded.keys(header, token);
  };
}

function asJwks(json: unknown): JSONWebKeySet {
  const keys = (json as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new Error('expected a JSON Web Key Set, {"keys": [...]}');
  return json as JSONWebKeySet;
}

function oneLine(err: unknown): string {
  const e = err as (Error & { code?: string; cause?: Error }) | undefined;
  const message = e?.cause?.message ? `${e.message} (${e.cause.message})` : (e?.message ?? String(err));
  return message.split('\n')[0] ?? '';
}
