/**
 * Bundle signature verification against bundles the real OPA builds and signs
 * (`opa build --signing-key`, `opa sign`), read back with readBundleArchive.
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CompactSign } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_BUNDLE_BYTES, readBundleArchive } from '../../engine/bundle/archive.js';
import { readBundleFiles } from '../../engine/bundle/bundle.js';
import { BundleError, type BundleRejection } from '../../engine/bundle/errors.js';
import { hashBundleFile } from '../../engine/bundle/file-hash.js';
import {
  verifyBundleSignature,
  type BundleVerificationKey,
  type SignatureCheckOptions,
} from '../../engine/bundle/signature.js';
import { buildBundle, makeTempDir, opa, packBundle, removeDir, writeTree } from '../helpers/opa.js';

type Files = Map<string, Buffer>;

const HMAC_SECRET = 'gatehouse-test-hmac-secret';

let dir: string;
const pem = { rsaPriv: '', rsaPub: '', ecPriv: '', ecPub: '', otherRsaPub: '' };
const bundles = {} as Record<'rs256' | 'es256' | 'es256Claims' | 'hs256' | 'unsigned' | 'signedAfter', Files>;

/** Writes a PEM to the temp dir and returns its path. */
function keyFile(name: string, body: string): string {
  const path = join(dir, name);
  writeTree(dir, { [name]: body });
  return path;
}

function rsaKey(id = 'default', key = pem.rsaPub): BundleVerificationKey {
  return { id, algorithm: 'RS256', key };
}
function ecKey(id = 'ec-1', key = pem.ecPub): BundleVerificationKey {
  return { id, algorithm: 'ES256', key };
}

async function roundTrip(files: Files): Promise<Files> {
  return readBundleArchive(await packBundle(files));
}

function edit(files: Files, changes: Record<string, Buffer | string | null>): Files {
  const out = new Map(files);
  for (const [name, body] of Object.entries(changes)) {
    if (body === null) out.delete(name);
    else out.set(name, Buffer.isBuffer(body) ? body : Buffer.from(body));
  }
  return out;
}

async function rejection(files: Files, options: SignatureCheckOptions): Promise<{ kind: BundleRejection; message: string }> {
  try {
    await verifyBundleSignature(files, options);
  } catch (err) {
    expect(err).toBeInstanceOf(BundleError);
    const e = err as BundleError;
    return { kind: e.kind, message: e.message };
  }
  throw new Error('expected the bundle to be refused');
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** A payload listing every file but the signatures file with its correct SHA-256 digest. */
function honestPayload(files: Files, algorithm = 'SHA-256'): { files: { name: string; hash: string; algorithm: string }[] } {
  return {
    files: [...files.keys()]
      .filter((name) => name !== '.signatures.json')
      .map((name) => ({ name, hash: hashBundleFile(name, files.get(name) as Buffer, algorithm), algorithm })),
  };
}

function withSignatures(files: Files, signatures: string[]): Files {
  return edit(files, { '.signatures.json': JSON.stringify({ signatures }) });
}

beforeAll(async () => {
  dir = makeTempDir('gatehouse-sig-test-');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
  pem.rsaPriv = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  pem.rsaPub = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  pem.ecPriv = ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  pem.ecPub = ec.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  pem.otherRsaPub = other.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const rsaPriv = keyFile('rsa.pem', pem.rsaPriv);
  const ecPriv = keyFile('ec.pem', pem.ecPriv);

  writeTree(join(dir, 'src'), {
    'policy.rego': [
      'package gatehouse.http',
      '',
      'default decision := {"action": "deny", "reasons": ["not an admin"]}',
      '',
      'decision := {"action": "allow", "reasons": []} if input.identity.sub in data.roles.admin',
      '',
    ].join('\n'),
    'data.json': '{"roles": {"admin": ["alice"], "dev": ["bob", "carol"]}}\n',
    'targets/data.yaml': 'prod:\n  env: prod\n  replicas: 3\n  ratio: 0.75\n',
  });
  writeTree(dir, { 'claims.json': JSON.stringify({ scope: 'prod', keyid: 'ec-1' }) });
  const base = ['-b', '-t', 'wasm', '-e', 'gatehouse/http/decision'];
  const build = async (args: string[]) => readBundleArchive(buildBundle('src', [...base, ...args], { cwd: dir }));

  bundles.rs256 = await build(['--signing-key', rsaPriv, '--signing-alg', 'RS256']);
  bundles.es256 = await build(['--signing-key', ecPriv, '--signing-alg', 'ES256', '--verification-key-id', 'ec-1']);
  bundles.es256Claims = await build(['--signing-key', ecPriv, '--signing-alg', 'ES256', '--claims-file', join(dir, 'claims.json')]);
  bundles.hs256 = await build(['--signing-key', HMAC_SECRET, '--signing-alg', 'HS256']);
  bundles.unsigned = await build([]);

  // Signed after the fact: unpack an unsigned build, `opa sign` its files, pack again.
  const after = join(dir, 'after');
  writeTree(after, bundles.unsigned);
  opa(['sign', '--bundle', '.', '--signing-key', rsaPriv, '--signing-alg', 'RS256', '-o', after], { cwd: after });
  bundles.signedAfter = await roundTrip(edit(bundles.unsigned, { '.signatures.json': readFileSync(join(after, '.signatures.json')) }));
});

afterAll(() => removeDir(dir));

describe('verifyBundleSignature: bundles OPA signed', () => {
  it('reads an opa build tarball with paths relative to the bundle root', () => {
    expect([...bundles.rs256.keys()].sort()).toEqual(['.manifest', '.signatures.json', 'data.json', 'policy.wasm', 'src/policy.rego']);
  });

  it('accepts RS256 (opa build, default key id)', async () => {
    await expect(verifyBundleSignature(bundles.rs256, { keys: [ecKey(), rsaKey()] })).resolves.toEqual({
      keyId: 'default',
      files: 4,
    });
  });

  it('accepts ES256 selected by the header kid', async () => {
    const res = await verifyBundleSignature(bundles.es256, { keys: [rsaKey(), ecKey('ec-1')] });
    expect(res.keyId).toBe('ec-1');
  });

  it('accepts ES256 selected by the payload keyid, with the scope from a claims file', async () => {
    const res = await verifyBundleSignature(bundles.es256Claims, { keys: [rsaKey(), ecKey('ec-1')], scope: 'prod' });
    expect(res.keyId).toBe('ec-1');
  });

  it('refuses a scope mismatch, including a scoped signature when no scope is configured', async () => {
    const keys = [ecKey('ec-1')];
    expect(await rejection(bundles.es256Claims, { keys, scope: 'staging' })).toMatchObject({
      kind: 'bad_signature',
      message: expect.stringContaining('scope mismatch'),
    });
    expect((await rejection(bundles.es256Claims, { keys })).kind).toBe('bad_signature');
  });

  it('accepts HS256 with the shared secret', async () => {
    const res = await verifyBundleSignature(bundles.hs256, { keys: [{ id: 'default', algorithm: 'HS256', key: HMAC_SECRET }] });
    expect(res).toEqual({ keyId: 'default', files: 4 });
  });

  it('refuses HS256 with the wrong secret', async () => {
    const r = await rejection(bundles.hs256, { keys: [{ id: 'default', algorithm: 'HS256', key: 'not-the-secret' }] });
    expect(r.kind).toBe('bad_signature');
  });

  it('accepts a bundle signed after the fact with opa sign (no key id, one configured key)', async () => {
    const res = await verifyBundleSignature(bundles.signedAfter, { keys: [rsaKey('ci-signer')] });
    expect(res).toEqual({ keyId: 'ci-signer', files: 4 });
  });

  it('refuses a signature without key id when several keys could apply', async () => {
    const r = await rejection(bundles.signedAfter, { keys: [rsaKey('a'), rsaKey('b')] });
    expect(r).toMatchObject({ kind: 'bad_signature', message: expect.stringContaining('no key id') });
  });

  it('reports an unsigned bundle as unsigned', async () => {
    expect(await rejection(bundles.unsigned, { keys: [rsaKey()] })).toMatchObject({
      kind: 'unsigned',
      message: expect.stringContaining('.signatures.json'),
    });
    expect((await rejection(withSignatures(bundles.unsigned, []), { keys: [rsaKey()] })).kind).toBe('unsigned');
  });
});

describe('verifyBundleSignature: tampering', () => {
  it('names data.json when one of its bytes changed', async () => {
    const data = bundles.rs256.get('data.json') as Buffer;
    const changed = Buffer.from(data.toString('utf8').replace('alice', 'alicf'));
    expect(changed.equals(data)).toBe(false);
    const r = await rejection(await roundTrip(edit(bundles.rs256, { 'data.json': changed })), { keys: [rsaKey()] });
    expect(r.kind).toBe('tampered');
    expect(r.message).toContain('"data.json"');
  });

  it('hashes data.json structurally: re-formatting it keeps the signature valid', async () => {
    const data = JSON.parse((bundles.rs256.get('data.json') as Buffer).toString('utf8')) as unknown;
    const reformatted = `${JSON.stringify(data, null, 4)}\n`;
    await expect(verifyBundleSignature(edit(bundles.rs256, { 'data.json': reformatted }), { keys: [rsaKey()] })).resolves.toBeTruthy();
  });

  it('names policy.wasm when it changed', async () => {
    const wasm = Buffer.from(bundles.es256.get('policy.wasm') as Buffer);
    wasm[wasm.length - 1] = (wasm[wasm.length - 1] as number) ^ 0xff;
    const r = await rejection(await roundTrip(edit(bundles.es256, { 'policy.wasm': wasm })), { keys: [ecKey()] });
    expect(r.kind).toBe('tampered');
    expect(r.message).toContain('"policy.wasm"');
  });

  it('names a file that was added', async () => {
    const files = await roundTrip(edit(bundles.rs256, { 'extra/data.json': '{"admin": ["mallory"]}' }));
    const r = await rejection(files, { keys: [rsaKey()] });
    expect(r).toMatchObject({ kind: 'tampered', message: expect.stringContaining('"extra/data.json" is not covered') });
  });

  it('skips files matching excludeFiles (Go filepath.Match patterns)', async () => {
    const files = edit(bundles.rs256, { 'notes/README.md': 'unsigned notes' });
    await expect(verifyBundleSignature(files, { keys: [rsaKey()], excludeFiles: ['notes/*.md'] })).resolves.toEqual({
      keyId: 'default',
      files: 4,
    });
    expect((await rejection(files, { keys: [rsaKey()], excludeFiles: ['*.md'] })).kind).toBe('tampered');
  });

  it('names a signed file that was removed', async () => {
    const files = await roundTrip(edit(bundles.rs256, { 'src/policy.rego': null }));
    const r = await rejection(files, { keys: [rsaKey()] });
    expect(r).toMatchObject({ kind: 'tampered', message: expect.stringContaining('"src/policy.rego" is missing') });
  });
});

describe('verifyBundleSignature: keys and algorithms', () => {
  it('refuses the wrong public key', async () => {
    const r = await rejection(bundles.rs256, { keys: [rsaKey('default', pem.otherRsaPub)] });
    expect(r).toMatchObject({ kind: 'bad_signature', message: expect.stringContaining('does not verify') });
  });

  it('refuses a bundle whose alg differs from the key configuration', async () => {
    const r = await rejection(bundles.rs256, { keys: [ecKey('default')] });
    expect(r).toMatchObject({ kind: 'bad_signature', message: expect.stringContaining('alg RS256') });
  });

  it('refuses an unknown key id, naming it', async () => {
    const r = await rejection(bundles.rs256, { keys: [rsaKey('prod-signer')] });
    expect(r).toMatchObject({ kind: 'bad_signature', message: expect.stringContaining('"default"') });
  });

  it('refuses a forged token with alg none', async () => {
    const token = `${b64url({ alg: 'none', kid: 'default' })}.${b64url(honestPayload(bundles.rs256))}.`;
    const r = await rejection(withSignatures(bundles.rs256, [token]), { keys: [rsaKey()] });
    expect(r).toMatchObject({ kind: 'bad_signature', message: expect.stringContaining('none') });
  });

  it('refuses HS256 forged with the RSA public key as the secret (alg confusion)', async () => {
    const token = await new CompactSign(Buffer.from(JSON.stringify(honestPayload(bundles.rs256))))
      .setProtectedHeader({ alg: 'HS256', kid: 'default' })
      .sign(Buffer.from(pem.rsaPub));
    const r = await rejection(withSignatures(bundles.rs256, [token]), { keys: [rsaKey()] });
    expect(r.kind).toBe('bad_signature');
  });

  it('refuses more than one signature', async () => {
    const sigs = JSON.parse((bundles.rs256.get('.signatures.json') as Buffer).toString('utf8')) as { signatures: string[] };
    const token = sigs.signatures[0] as string;
    const r = await rejection(withSignatures(bundles.rs256, [token, token]), { keys: [rsaKey()] });
    expect(r).toMatchObject({ kind: 'bad_signature', message: expect.stringContaining('exactly one') });
  });

  it('accepts other SHA-2 file digests but refuses MD5', async () => {
    const sign = (payload: unknown) =>
      new CompactSign(Buffer.from(JSON.stringify(payload)))
        .setProtectedHeader({ alg: 'RS256', kid: 'default' })
        .sign(createPrivateKey(pem.rsaPriv));
    const sha512 = await sign(honestPayload(bundles.rs256, 'SHA-512'));
    await expect(verifyBundleSignature(withSignatures(bundles.rs256, [sha512]), { keys: [rsaKey()] })).resolves.toBeTruthy();

    const md5Payload = honestPayload(bundles.rs256).files.map((f) => ({ ...f, algorithm: 'MD5' }));
    const md5 = await sign({ files: md5Payload });
    const r = await rejection(withSignatures(bundles.rs256, [md5]), { keys: [rsaKey()] });
    expect(r).toMatchObject({ kind: 'bad_signature', message: expect.stringContaining('unsupported hash algorithm "MD5"') });
  });
});

describe('hashBundleFile agrees with opa sign on awkward data', () => {
  it('verifies a directory of tricky JSON/YAML data signed by opa sign', async () => {
    const files: Files = new Map(
      Object.entries({
        '.manifest': '{"revision": "r1", "roots": ["a", "b", "c", "d", "e", "f", "g"]}',
        // numbers as written, sorting by UTF-8 bytes, Go string escapes, \uXXXX surrogates
        'a/data.json':
          '{"z": 1, "a": [1.0, -0, 1e2, 1E+2, 0.000001, 123456789012345678901234567890], "\u00e9": "x", ' +
          '"\\ud83d\\ude00": 1, "\uffff": 2, "s": "\\b\\f\\u0001\\u2028\\u2029<>&\\/\\ud800x\\udc00"}',
        // BOM, duplicate keys (last wins), nesting
        'b/data.json': '\ufeff  {"dup": 1, "dup": 2, "nested": {"b": null, "a": true, "c": false}}\n',
        // YAML 1.1 as go-yaml reads it: yes/on booleans, octal/hex ints, timestamps kept as strings, merges
        'c/data.yaml':
          'list: [1, 2.50, 3e3, 0x1F, 017, +5, -0.0]\nflags:\n  on: yes\n  off: no\n  1: int key\n' +
          'when: 2001-12-14t21:59:43.10-05:00\nbig: 9007199254740993\nanchor: &A {x: 1}\nmerged:\n  <<: *A\n  y: 2\n',
        // not valid JSON, so OPA reads it as YAML
        'd/data.json': '{"trailing": 1,}',
        // hashed raw: only data.json / data.yaml / .manifest are structured
        'e/data.yml': 'x: 1\n',
        'f/other.json': '{"raw":   true}',
        'g/data.json': '"just a string"',
      }).map(([name, body]) => [name, Buffer.from(body)]),
    );
    // Invalid UTF-8 inside a JSON string: Go replaces each bad byte with U+FFFD.
    files.set('c/x/data.json', Buffer.from([0x7b, 0x22, 0x62, 0x22, 0x3a, 0x22, 0xff, 0xe2, 0x82, 0x20, 0xe2, 0x82, 0xac, 0x22, 0x7d]));

    const signDir = join(dir, 'tricky');
    writeTree(signDir, files);
    opa(['sign', '--bundle', '.', '--signing-key', HMAC_SECRET, '--signing-alg', 'HS256', '-o', signDir], { cwd: signDir });
    const signed = edit(files, { '.signatures.json': readFileSync(join(signDir, '.signatures.json')) });

    const res = await verifyBundleSignature(await roundTrip(signed), { keys: [{ id: 'k', algorithm: 'HS256', key: HMAC_SECRET }] });
    expect(res.files).toBe(files.size);
  });
});

// Red-team round 26: a file source was read whole, unbounded, before its signature was checked.
describe('a bundle file over the size the gateway reads', () => {
  it('is refused from its size, before it is read', async () => {
    const big = join(makeTempDir('gatehouse-big-bundle-'), 'bundle.tar.gz');
    writeFileSync(big, '');
    truncateSync(big, DEFAULT_MAX_BUNDLE_BYTES + 1); // sparse: nothing is written
    try {
      await expect(readBundleFiles(big)).rejects.toMatchObject({ kind: 'unreadable', message: expect.stringContaining(`over the ${DEFAULT_MAX_BUNDLE_BYTES} the gateway reads`) });
    } finally {
      removeDir(dirname(big));
    }
  });
});
