/**
 * Checks made before any signature is verified, on the token as sent. They
 * exist to refuse the classic JWT attacks by name instead of letting them
 * surface as a generic verification failure (or, worse, be silently ignored),
 * and to pick the issuer whose keys and rules apply.
 *
 * Nothing read here is trusted: the issuer only selects which rules to verify
 * against, and jwtVerify checks it again.
 */
import { TokenError } from './identity.js';

/** Headers through which a token names or carries its own verification key (RFC 7515 §4.1.2–4.1.6). */
const KEY_CARRYING_HEADERS = ['jwk', 'jku', 'x5u', 'x5c'] as const;

const BASE64URL = /^[A-Za-z0-9_-]*$/;

export interface UnverifiedToken {
  alg: string;
  kid: string | undefined;
  iss: string;
}

/** Refuses oversized, malformed and key-carrying tokens; returns the claimed algorithm and issuer. */
export function preflight(token: string, maxBytes: number): UnverifiedToken {
  // A UTF-16 length above the limit means at least as many bytes, so huge
  // strings are refused without being scanned.
  if (token.length > maxBytes || Buffer.byteLength(token, 'utf8') > maxBytes) {
    throw new TokenError('too_large', `token is larger than ${maxBytes} bytes`);
  }
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => BASE64URL.test(p))) {
    throw new TokenError('malformed', 'token is not a compact JWS (three base64url parts)');
  }
  const header = decodeJsonObject(parts[0] ?? '', 'header');
  const payload = decodeJsonObject(parts[1] ?? '', 'payload');

  const alg = header['alg'];
  if (typeof alg !== 'string' || alg === '') throw new TokenError('malformed', 'token header has no alg');
  if (alg.toLowerCase() === 'none') throw new TokenError('algorithm_not_allowed', 'unsigned tokens (alg "none") are refused');

  const carried = KEY_CARRYING_HEADERS.filter((name) => Object.hasOwn(header, name));
  if (carried.length > 0) {
    throw new TokenError('embedded_key', `token header carries its own key (${carried.join(', ')}); keys come only from the issuer's key set`);
  }
  if (Object.hasOwn(header, 'crit')) {
    throw new TokenError('unsupported_header', 'token header has "crit"; no JWS extensions are supported');
  }
  const kid = header['kid'];
  if (kid !== undefined && typeof kid !== 'string') throw new TokenError('malformed', 'token header kid is not a string');

  const iss = payload['iss'];
  if (iss === undefined) throw new TokenError('missing_claim', 'token has no iss claim');
  if (typeof iss !== 'string') throw new TokenError('invalid_claim', 'token iss claim is not a string');
  return { alg, kid, iss };
}

function decodeJsonObject(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new TokenError('malformed', `token ${what} is not base64url JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TokenError('malformed', `token ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** Attacker-controlled text (kid, iss) made safe to put in a one-line message or a log. */
export function quote(value: string, max = 64): string {
  return JSON.stringify(value.length > max ? `${value.slice(0, max)}…` : value);
}
