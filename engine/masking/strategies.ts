/**
 * What a mask rule replaces a value (or a detector's span) with. Each
 * strategy is a plain function of the value, with no knowledge of where the
 * value came from, so the Postgres rewriter, SSH recordings and HTTP bodies
 * share them.
 *
 *   redact   a fixed marker: "[REDACTED]", or "[REDACTED:email]" for a span,
 *            so a reader knows what kind of thing was there.
 *   partial  keeps a little shape for humans to recognise a value (the last
 *            4 of a card, the domain of an email) and never more than half
 *            of it; secrets (JWTs, AWS secret keys, private keys) keep
 *            nothing and are redacted.
 *   hash     a keyed HMAC-SHA256, truncated: equal values give equal
 *            pseudonyms (joins and GROUP BY still work) without revealing
 *            them. Keyed because an SSN has only ~10^9 values: an unkeyed
 *            hash of one is reversed by trying them all.
 *   null     the value becomes NULL (the masker returns null).
 */
import { createHmac, createSecretKey, KeyObject } from 'node:crypto';
import type { MaskRule } from '../policy/decision.js';
import type { DetectorName } from './detectors.js';
import { MaskRuleError } from './errors.js';

export type MaskStrategy = MaskRule['strategy'];

export const REDACTED = '[REDACTED]';

export function redactMarker(detector: DetectorName | null): string {
  return detector === null ? REDACTED : `[REDACTED:${detector}]`;
}

// ── partial ───────────────────────────────────────────────────────────────

const MASK = '*';

/**
 * Detector-aware partial masking. Without a detector (a whole column), a
 * value shaped like an email address is masked as one; anything else keeps
 * its punctuation and its last 4 letters or digits.
 */
export function partial(value: string, detector: DetectorName | null = null): string {
  switch (detector) {
    case null:
    case 'email':
      return looksLikeEmail(value) ? partialEmail(value) : maskShape(value, 0, 4);
    case 'iban':
      return maskShape(value, 2, 4); // the country code and the last 4
    case 'aws_access_key':
      return maskShape(value, 4, 4); // AKIA/ASIA and the last 4, as the AWS console shows it
    case 'jwt':
    case 'aws_secret_key':
    case 'private_key':
      return redactMarker(detector); // any part of a secret is too much
    case 'payment_card':
    case 'us_ssn':
    case 'phone':
      return maskShape(value, 0, 4);
  }
}

function looksLikeEmail(value: string): boolean {
  const at = value.indexOf('@');
  return at > 0 && value.indexOf('@', at + 1) === -1 && value.indexOf('.', at + 2) !== -1 && !/\s/.test(value);
}

/** "jane.doe@example.com" → "j***@example.com": the first character (none for a one-character local part) and the domain. */
function partialEmail(value: string): string {
  const at = value.indexOf('@');
  const first = value.codePointAt(0)!;
  const firstLen = first > 0xffff ? 2 : 1;
  return (at > firstLen ? value.slice(0, firstLen) : '') + '***' + value.slice(at);
}

const isHighSurrogate = (c: number) => c >= 0xd800 && c <= 0xdbff;
const isLowSurrogate = (c: number) => c >= 0xdc00 && c <= 0xdfff;
/** Letters, digits and anything non-ASCII are content; ASCII punctuation and spaces are shape and stay. */
const isContent = (c: number) => c >= 128 || (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/**
 * Masks every content character except the first `head` and last `tail`,
 * one "*" per code point. When that would reveal half the content or more,
 * it reveals nothing: "1234" stays "****", not "1234".
 */
export function maskShape(value: string, head: number, tail: number): string {
  let total = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (isHighSurrogate(c) && i + 1 < value.length && isLowSurrogate(value.charCodeAt(i + 1))) i++;
    if (isContent(c)) total++;
  }
  const reveal = total >= 2 * (head + tail);
  const lastHidden = total - tail;
  let out = '';
  let k = 0;
  let run = 0; // start of the current stretch copied unchanged
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const pair = isHighSurrogate(c) && i + 1 < value.length && isLowSurrogate(value.charCodeAt(i + 1));
    if (!isContent(c)) {
      if (pair) i++;
      continue;
    }
    const keep = reveal && (k < head || k >= lastHidden);
    k++;
    if (!keep) {
      out += value.slice(run, i) + MASK;
      run = pair ? i + 2 : i + 1;
    }
    if (pair) i++;
  }
  return out + value.slice(run);
}

// ── hash ──────────────────────────────────────────────────────────────────

export const HASH_PREFIX = 'hash:';
/** 64 bits: enough that distinct values in one result do not collide, short enough to read. */
export const HASH_HEX_CHARS = 16;
/** A shorter key is guessable, and then so is every hashed value. */
export const MIN_HASH_KEY_BYTES = 16;

/** The HMAC key: raw bytes, a UTF-8 string (from `${env:…}` / `${file:…}` config), or a secret KeyObject. */
export type HashKey = string | Uint8Array | KeyObject;
export type Hasher = (value: string) => string;

/** Throws MaskRuleError when the key is shorter than MIN_HASH_KEY_BYTES. */
export function createHasher(key: HashKey): Hasher {
  const secret = key instanceof KeyObject ? key : createSecretKey(typeof key === 'string' ? Buffer.from(key, 'utf8') : Buffer.from(key));
  if (secret.type !== 'secret' || (secret.symmetricKeySize ?? 0) < MIN_HASH_KEY_BYTES) {
    throw new MaskRuleError(`the masking hash key must be a secret of at least ${MIN_HASH_KEY_BYTES} bytes`);
  }
  const bytes = HASH_HEX_CHARS / 2;
  return (value) => HASH_PREFIX + createHmac('sha256', secret).update(value, 'utf8').digest().toString('hex', 0, bytes);
}
