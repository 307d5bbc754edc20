import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { OPA_YAML_OPTIONS } from './file-hash.js';
import { bundlePath, DEFAULT_MAX_BUNDLE_BYTES, readBundleArchive, type BundleFiles } from './archive.js';
import { BundleError } from './errors.js';
import { verifyBundleSignature, type SignatureCheckOptions } from './signature.js';

const MANIFEST = '.manifest';
const SIGNATURES = '.signatures.json';

/** How a bundle's signature is checked. Without keys, signatures are not checked. */
export interface BundleVerification extends SignatureCheckOptions {
  /** Refuse bundles that carry no `.signatures.json`. */
  required: boolean;
}

export type SignatureStatus =
  | { state: 'verified'; keyId: string }
  | { state: 'unsigned' }
  | { state: 'not_checked' }; // signed, but no verification keys were configured

export interface Bundle {
  revision: string;
  roots: string[];
  /** Entrypoint path (e.g. `gatehouse/http/decision`) → WASM module path in the bundle. */
  entrypoints: ReadonlyMap<string, string>;
  wasm: Buffer;
  data: Record<string, unknown>;
  signature: SignatureStatus;
  /** SHA-256 over every file; equal digests mean an identical bundle. */
  digest: string;
  files: BundleFiles;
}

interface WasmManifestEntry {
  entrypoint: string;
  module: string;
}

/** Reads a bundle from a `.tar.gz` file or from a directory holding an unpacked bundle. */
export async function loadBundle(path: string, verification?: BundleVerification): Promise<Bundle> {
  return parseBundle(await readBundleFiles(path), verification);
}

export async function readBundleFiles(path: string): Promise<BundleFiles> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    throw new BundleError('unreadable', `cannot read bundle ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (info.isDirectory()) return readBundleDirectory(path);
  // Read whole before its signature is checked: bounded as the unpacked tarball is, and as a fetched one.
  if (info.size > DEFAULT_MAX_BUNDLE_BYTES) {
    throw new BundleError('unreadable', `bundle ${path} is ${info.size} bytes, over the ${DEFAULT_MAX_BUNDLE_BYTES} the gateway reads`);
  }
  return readBundleArchive(await readFile(path));
}

async function readBundleDirectory(root: string): Promise<BundleFiles> {
  const files = new Map<string, Buffer>();
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    files.set(bundlePath(relative(root, full)), await readFile(full));
  }
  if (files.size === 0) throw new BundleError('corrupt', `bundle directory ${root} is empty`);
  return files;
}

/**
 * Checks the signature first, so nothing from an unverified bundle is parsed
 * beyond the tarball itself, then reads the manifest, data and WASM module.
 */
export async function parseBundle(files: BundleFiles, verification?: BundleVerification): Promise<Bundle> {
  const signature = await checkSignature(files, verification);
  const manifest = parseManifest(files.get(MANIFEST));
  const entrypoints = new Map(manifest.wasm.map((e) => [e.entrypoint, bundlePath(e.module)]));
  const modules = new Set(entrypoints.values());
  if (modules.size !== 1) {
    throw new BundleError(
      'invalid_policy',
      modules.size === 0
        ? 'bundle has no WASM policy: build it with `opa build -t wasm -e <entrypoint>`'
        : `bundle has ${modules.size} WASM modules; Gatehouse evaluates one (build all entrypoints together)`,
    );
  }
  const [modulePath] = modules as unknown as [string];
  const wasm = files.get(modulePath);
  if (!wasm) throw new BundleError('corrupt', `manifest names WASM module ${modulePath}, which the bundle does not contain`);

  return {
    revision: manifest.revision,
    roots: manifest.roots,
    entrypoints,
    wasm,
    data: mergeDataDocuments(files),
    signature,
    digest: digestOf(files),
    files,
  };
}

async function checkSignature(files: BundleFiles, verification?: BundleVerification): Promise<SignatureStatus> {
  const signed = files.has(SIGNATURES);
  if (!verification || verification.keys.length === 0) {
    if (verification?.required) throw new BundleError('unsigned', 'signatures are required but no verification keys are configured');
    return signed ? { state: 'not_checked' } : { state: 'unsigned' };
  }
  if (!signed) {
    if (verification.required) throw new BundleError('unsigned', 'bundle is not signed (no .signatures.json) and signatures are required');
    return { state: 'unsigned' };
  }
  const verified = await verifyBundleSignature(files, verification);
  return { state: 'verified', keyId: verified.keyId };
}

function parseManifest(raw: Buffer | undefined): { revision: string; roots: string[]; wasm: WasmManifestEntry[] } {
  if (!raw) throw new BundleError('corrupt', 'bundle has no .manifest; build it with `opa build -t wasm`');
  let manifest: unknown;
  try {
    manifest = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new BundleError('corrupt', `.manifest is not JSON: ${(err as Error).message}`);
  }
  if (typeof manifest !== 'object' || manifest === null) throw new BundleError('corrupt', '.manifest is not a JSON object');
  const { revision = '', roots = [''], wasm = [] } = manifest as Record<string, unknown>;
  if (typeof revision !== 'string') throw new BundleError('corrupt', '.manifest revision must be a string');
  if (!Array.isArray(roots) || !roots.every((r) => typeof r === 'string')) {
    throw new BundleError('corrupt', '.manifest roots must be a list of strings');
  }
  if (!Array.isArray(wasm) || !wasm.every(isWasmEntry)) {
    throw new BundleError('corrupt', '.manifest wasm must be a list of {entrypoint, module}');
  }
  return { revision, roots, wasm };
}

function isWasmEntry(value: unknown): value is WasmManifestEntry {
  const entry = value as Partial<WasmManifestEntry> | null;
  return typeof entry?.entrypoint === 'string' && typeof entry.module === 'string';
}

/**
 * OPA places `a/b/data.json` (or `data.yaml`) at `data.a.b`. `opa build`
 * writes one merged `/data.json`, but hand-made bundles may split it.
 */
function mergeDataDocuments(files: BundleFiles): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [path, body] of files) {
    const match = /^(?:(.*)\/)?data\.(json|yaml)$/.exec(path);
    if (!match) continue;
    let doc: unknown;
    try {
      doc = match[2] === 'json' ? JSON.parse(body.toString('utf8')) : parseYaml(body.toString('utf8'), OPA_YAML_OPTIONS);
    } catch (err) {
      throw new BundleError('corrupt', `${path} is not valid ${match[2]?.toUpperCase()}: ${(err as Error).message}`);
    }
    const segments = match[1] ? match[1].split('/') : [];
    placeDocument(root, segments, doc ?? {}, path);
  }
  return root;
}

function placeDocument(root: Record<string, unknown>, segments: string[], doc: unknown, path: string): void {
  let node = root;
  for (const segment of segments) {
    const next = node[segment] ?? {};
    if (!isPlainObject(next)) throw new BundleError('corrupt', `${path} overlaps a non-object value at ${segment}`);
    node[segment] = next;
    node = next;
  }
  if (!isPlainObject(doc)) throw new BundleError('corrupt', `${path} must hold a JSON object`);
  for (const [key, value] of Object.entries(doc)) {
    if (key in node) throw new BundleError('corrupt', `${path} redefines data key ${[...segments, key].join('.')}`);
    node[key] = value;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function digestOf(files: BundleFiles): string {
  const hash = createHash('sha256');
  for (const path of [...files.keys()].sort()) {
    hash.update(path).update('\0').update(files.get(path)!).update('\0');
  }
  return hash.digest('hex');
}
