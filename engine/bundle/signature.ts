/**
 * Verification of OPA bundle signatures (`.signatures.json`), compatible with
 * what `opa build --signing-key` and `opa sign` produce and with how OPA itself
 * verifies them. References are to github.com/open-policy-agent/opa, v1/bundle:
 *
 * - `.signatures.json` is `{"signatures": ["<JWS compact>"], "plugin"?}`. OPA
 *   accepts exactly one JWS (verify.go, DefaultVerifier.VerifyBundleSignature).
 * - The JWS payload is `{"files": [{name, hash, algorithm}], "keyid"?, "scope"?, ...}`
 *   (bundle.go, DecodedSignature). The key id is taken from the protected
 *   header `kid`, else from the deprecated payload claim `keyid` (verify.go,
 *   verifyJWTSignature). OPA compares `scope` for equality with the configured
 *   scope, an empty one included.
 * - File names are bundle paths without the leading `/` (bundle.go,
 *   Reader.Read: `strings.TrimPrefix(path, "/")`; sign.go / cmd/sign.go write
 *   them the same way).
 * - Digests are computed as OPA computes them: see file-hash.ts.
 * - Every file except the signatures file must be listed and match; listed
 *   files must exist; files matching an exclude pattern (Go filepath.Match
 *   syntax, as OPA's `exclude_files`) are not hashed (bundle.go, Reader.Read).
 *
 * Deliberately stricter than OPA: only `.signatures.json` at the bundle root
 * is the signatures file (OPA treats any path ending in `signatures.json` as
 * one and skips it), the header `alg` must equal the configured key's
 * algorithm, MD5 and SHA-1 file digests are refused, and a payload listing a
 * file twice is refused.
 */
import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { BundleError } from './errors.js';
import { HASH_ALGORITHMS, hashBundleFile, stripBom } from './file-hash.js';

export const SIGNATURES_FILE = '.signatures.json';

export interface BundleVerificationKey {
  id: string;
  /** JWS algorithm the key signs with: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA, HS256/384/512. */
  algorithm: string;
  /** PEM public key (SPKI, PKCS#1 or an X.509 certificate), or the HMAC secret for HS*. */
  key: string;
}

export interface SignatureCheckOptions {
  keys: readonly BundleVerificationKey[];
  /**
   * The scope the signature must carry. As in OPA, the comparison is exact:
   * when unset, a signature that names a scope is refused too.
   */
  scope?: string;
  /** Go filepath.Match patterns of files that are not hashed (OPA's `exclude_files`). */
  excludeFiles?: readonly string[];
}

export interface VerifiedSignature {
  /** Id of the configured key that verified the signature. */
  keyId: string;
  /** Number of bundle files whose digest was checked. */
  files: number;
}

const HMAC_ALGORITHMS = new Set(['HS256', 'HS384', 'HS512']);
const ASYMMETRIC_ALGORITHMS = new Set([
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519',
]);

interface SignedFile {
  name: string;
  hash: string;
  algorithm: string;
}

/**
 * Verifies the signature of a bundle and every file it covers.
 *
 * @param files every file of the bundle incl. `.signatures.json`, keyed by path
 *   without leading slash (see archive.ts bundlePath)
 * @throws BundleError kind `unsigned` (no signature), `bad_signature` (the
 *   signature or its payload is unacceptable) or `tampered` (the files differ
 *   from what was signed)
 */
export async function verifyBundleSignature(
  files: ReadonlyMap<string, Buffer>,
  options: SignatureCheckOptions,
): Promise<VerifiedSignature> {
  const token = readSignaturesFile(files.get(SIGNATURES_FILE));
  const key = selectKey(token, options.keys);
  const payload = await verifyJws(token, key);
  const signed = parsePayload(payload, options.scope);

  const excludes = (options.excludeFiles ?? []).map(globToRegExp);
  const isExcluded = (path: string) => excludes.some((re) => re?.test(path) ?? false);

  let checked = 0;
  for (const path of [...files.keys()].sort()) {
    if (path === SIGNATURES_FILE || isExcluded(path)) continue;
    const entry = signed.get(path);
    if (!entry) throw new BundleError('tampered', `bundle file "${path}" is not covered by the bundle signature`);
    const body = files.get(path) as Buffer;
    let actual: string;
    try {
      actual = hashBundleFile(path, body, entry.algorithm);
    } catch (err) {
      throw new BundleError('tampered', `bundle file "${path}" cannot be hashed: ${(err as Error).message}`);
    }
    if (actual !== entry.hash.toLowerCase()) {
      throw new BundleError(
        'tampered',
        `bundle file "${path}" does not match the signature (${entry.algorithm} signed ${entry.hash.toLowerCase()}, got ${actual})`,
      );
    }
    checked++;
  }
  for (const name of [...signed.keys()].sort()) {
    if (!files.has(name)) throw new BundleError('tampered', `signed file "${name}" is missing from the bundle`);
  }
  return { keyId: key.id, files: checked };
}

function readSignaturesFile(raw: Buffer | undefined): string {
  if (raw === undefined) throw new BundleError('unsigned', `bundle has no ${SIGNATURES_FILE}`);
  let doc: unknown;
  try {
    doc = JSON.parse(stripBom(raw).toString('utf8'));
  } catch (err) {
    throw new BundleError('bad_signature', `${SIGNATURES_FILE} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isRecord(doc)) throw new BundleError('bad_signature', `${SIGNATURES_FILE} is not a JSON object`);
  const plugin = doc['plugin'];
  if (plugin !== undefined && plugin !== '' && plugin !== '_default') {
    throw new BundleError('bad_signature', `${SIGNATURES_FILE} needs signing plugin "${String(plugin)}", which is not supported`);
  }
  const signatures = doc['signatures'];
  if (signatures === undefined || signatures === null || (Array.isArray(signatures) && signatures.length === 0)) {
    throw new BundleError('unsigned', `${SIGNATURES_FILE} contains no signature`);
  }
  if (!Array.isArray(signatures) || !signatures.every((s) => typeof s === 'string')) {
    throw new BundleError('bad_signature', `${SIGNATURES_FILE}: "signatures" must be an array of JWS strings`);
  }
  if (signatures.length !== 1) {
    throw new BundleError('bad_signature', `${SIGNATURES_FILE} holds ${signatures.length} signatures; exactly one is supported`);
  }
  return signatures[0] as string;
}

/** Picks the configured key the token names (header `kid`, else payload `keyid`). */
function selectKey(token: string, keys: readonly BundleVerificationKey[]): BundleVerificationKey {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch (err) {
    throw new BundleError('bad_signature', `bundle signature is not a valid JWS: ${(err as Error).message}`);
  }
  let keyId: string | undefined = typeof header.kid === 'string' && header.kid !== '' ? header.kid : undefined;
  if (keyId === undefined) {
    // Unverified at this point: used only to choose the key, then verified with it.
    const claim = unverifiedPayload(token)?.['keyid'];
    if (typeof claim === 'string' && claim !== '') keyId = claim;
  }

  let key: BundleVerificationKey | undefined;
  if (keyId !== undefined) {
    key = keys.find((k) => k.id === keyId);
    if (!key) {
      const known = keys.map((k) => `"${k.id}"`).join(', ') || 'none';
      throw new BundleError('bad_signature', `bundle is signed with unknown key id "${keyId}" (configured: ${known})`);
    }
  } else if (keys.length === 1) {
    key = keys[0] as BundleVerificationKey;
  } else if (keys.length === 0) {
    throw new BundleError('bad_signature', 'bundle is signed but no verification key is configured');
  } else {
    throw new BundleError('bad_signature', `bundle signature names no key id and ${keys.length} keys are configured`);
  }

  const alg = header.alg;
  if (typeof alg !== 'string' || alg === '' || alg.toLowerCase() === 'none') {
    throw new BundleError('bad_signature', `bundle signature uses alg "${String(alg ?? '')}"; unsigned tokens are refused`);
  }
  if (alg !== key.algorithm) {
    throw new BundleError(
      'bad_signature',
      `bundle signature uses alg ${alg} but key "${key.id}" is configured for ${key.algorithm}`,
    );
  }
  if (header.b64 === false) {
    throw new BundleError('bad_signature', 'bundle signature uses an unencoded payload (b64: false), which OPA does not produce');
  }
  return key;
}

async function verifyJws(token: string, key: BundleVerificationKey): Promise<Uint8Array> {
  const material = importKey(key);
  try {
    const { payload } = await compactVerify(token, material, { algorithms: [key.algorithm] });
    return payload;
  } catch (err) {
    const e = err as Error & { code?: string };
    const why = e.code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' ? 'signature verification failed' : e.message;
    throw new BundleError('bad_signature', `bundle signature does not verify with key "${key.id}" (${key.algorithm}): ${why}`);
  }
}

function importKey(key: BundleVerificationKey): KeyObject | Uint8Array {
  if (HMAC_ALGORITHMS.has(key.algorithm)) {
    if (key.key === '') throw new BundleError('bad_signature', `key "${key.id}": empty HMAC secret`);
    return new TextEncoder().encode(key.key);
  }
  if (!ASYMMETRIC_ALGORITHMS.has(key.algorithm)) {
    throw new BundleError('bad_signature', `key "${key.id}": unsupported algorithm "${key.algorithm}"`);
  }
  try {
    if (key.key.includes('-----BEGIN CERTIFICATE-----')) return new X509Certificate(key.key).publicKey;
    // Accepts SPKI "PUBLIC KEY" and PKCS#1 "RSA PUBLIC KEY"; a private key yields its public half.
    return createPublicKey(key.key);
  } catch (err) {
    throw new BundleError('bad_signature', `key "${key.id}" is not a usable PEM public key: ${(err as Error).message}`);
  }
}

function unverifiedPayload(token: string): Record<string, unknown> | undefined {
  const part = token.split('.')[1];
  if (part === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return isRecord(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function parsePayload(payload: Uint8Array, scope: string | undefined): Map<string, SignedFile> {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch (err) {
    throw new BundleError('bad_signature', `bundle signature payload is not JSON: ${(err as Error).message}`);
  }
  if (!isRecord(doc)) throw new BundleError('bad_signature', 'bundle signature payload is not a JSON object');

  const signedScope = doc['scope'] ?? '';
  if (typeof signedScope !== 'string') throw new BundleError('bad_signature', 'bundle signature "scope" is not a string');
  const wantScope = scope ?? '';
  if (signedScope !== wantScope) {
    throw new BundleError(
      'bad_signature',
      `bundle signature scope mismatch: signed for ${signedScope ? `"${signedScope}"` : 'no scope'}, expected ${wantScope ? `"${wantScope}"` : 'no scope'}`,
    );
  }

  const list = doc['files'];
  if (!Array.isArray(list)) throw new BundleError('bad_signature', 'bundle signature payload has no "files" list');
  const signed = new Map<string, SignedFile>();
  for (const item of list) {
    if (!isRecord(item) || typeof item['name'] !== 'string' || typeof item['hash'] !== 'string') {
      throw new BundleError('bad_signature', 'bundle signature lists a file without a string "name" and "hash"');
    }
    const file: SignedFile = {
      name: item['name'],
      hash: item['hash'],
      algorithm: typeof item['algorithm'] === 'string' ? item['algorithm'] : '',
    };
    if (file.name === SIGNATURES_FILE) {
      throw new BundleError('bad_signature', `bundle signature lists ${SIGNATURES_FILE} itself`);
    }
    if (signed.has(file.name)) throw new BundleError('bad_signature', `bundle signature lists "${file.name}" twice`);
    if (!HASH_ALGORITHMS.has(file.algorithm)) {
      throw new BundleError(
        'bad_signature',
        `bundle signature uses unsupported hash algorithm "${file.algorithm}" for "${file.name}" (supported: ${[...HASH_ALGORITHMS.keys()].join(', ')})`,
      );
    }
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(file.hash)) {
      throw new BundleError('bad_signature', `bundle signature has a malformed digest for "${file.name}"`);
    }
    signed.set(file.name, file);
  }
  return signed;
}

/**
 * Go filepath.Match on '/'-separated paths, compiled to a RegExp. A malformed
 * pattern matches nothing (OPA ignores the error), so the file stays verified.
 */
function globToRegExp(pattern: string): RegExp | undefined {
  // Escapes valid in a unicode-mode RegExp, outside and inside a character class.
  const escOut = (c: string) => c.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
  const escIn = (c: string) => c.replace(/[\\^\][-]/g, '\\$&');
  const chars = [...pattern];
  let re = '';
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i] as string;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\') {
      const next = chars[++i];
      if (next === undefined) return undefined;
      re += escOut(next);
    } else if (c === '[') {
      // Go: '[' ['^'] { lo ['-' hi] } ']'; lo/hi may be '\\'-escaped, never a bare '-' or ']'.
      const item = (): string | undefined => {
        let ch = chars[i];
        if (ch === '\\') ch = chars[++i];
        else if (ch === '-' || ch === ']') return undefined;
        if (ch === undefined) return undefined;
        i++;
        return ch;
      };
      let cls = '';
      i++;
      if (chars[i] === '^') {
        cls += '^';
        i++;
      }
      for (let ranges = 0; ; ranges++) {
        if (chars[i] === ']' && ranges > 0) break;
        const lo = item();
        if (lo === undefined) return undefined;
        cls += escIn(lo);
        if (chars[i] === '-') {
          i++;
          const hi = item();
          if (hi === undefined) return undefined;
          cls += `-${escIn(hi)}`;
        }
      }
      re += `[${cls}]`;
    } else re += escOut(c);
  }
  try {
    return new RegExp(`^${re}$`, 'su');
  } catch {
    return undefined;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
