/**
 * Helpers for tests that drive the real OPA binary (`.tools/bin/opa`, or
 * `$OPA_BIN` when set) and handle bundle tarballs.
 *
 * Importing this module fails loudly when the binary is missing: tests that
 * need OPA must fail, never silently skip.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { create as createTar } from 'tar';

/** Repository root (absolute). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function locateOpa(): string {
  const bin = process.env['OPA_BIN'] ? resolve(process.env['OPA_BIN']) : join(repoRoot, '.tools/bin/opa');
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new Error(
      `OPA binary not found or not executable at ${bin}. Install OPA v1.19.1 there (see the Makefile) or set OPA_BIN.`,
    );
  }
  return bin;
}

/** Absolute path of the OPA binary. */
export const opaBin: string = locateOpa();

export interface OpaResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Working directory; defaults to the repository root. */
  cwd?: string;
}

/** Runs `opa <args>` and returns its exit code and output; never throws on a non-zero exit. */
export function runOpa(args: readonly string[], options: RunOptions = {}): OpaResult {
  const res = spawnSync(opaBin, args, {
    cwd: options.cwd ?? repoRoot,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (res.error) throw res.error;
  return { code: res.status ?? -1, stdout: res.stdout, stderr: res.stderr };
}

/** Runs `opa <args>`, returns stdout, throws with OPA's output if it fails. */
export function opa(args: readonly string[], options: RunOptions = {}): string {
  const res = runOpa(args, options);
  if (res.code !== 0) {
    throw new Error(`opa ${args.join(' ')} exited ${res.code}:\n${res.stderr}${res.stdout}`);
  }
  return res.stdout;
}

/**
 * `opa build <args> <inputs> -o <tmp>` and returns the bundle tarball bytes.
 * Pass flags such as `-t wasm`, `-e gatehouse/http/decision`, `-b`,
 * `--signing-key`, `--capabilities` in `args`; `-o` is supplied here.
 */
export function buildBundle(
  inputs: string | readonly string[],
  args: readonly string[] = [],
  options: RunOptions = {},
): Buffer {
  const out = makeTempDir('gatehouse-build-');
  try {
    const target = join(out, 'bundle.tar.gz');
    opa(['build', ...args, '-o', target, ...(typeof inputs === 'string' ? [inputs] : inputs)], options);
    return readFileSync(target);
  } finally {
    removeDir(out);
  }
}

/** A fresh directory under the OS temp dir. Remove it with {@link removeDir}. */
export function makeTempDir(prefix = 'gatehouse-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Files keyed by '/'-separated relative path. */
export type FileTree = ReadonlyMap<string, Buffer | string> | Readonly<Record<string, Buffer | string>>;

function entriesOf(files: FileTree): [string, Buffer | string][] {
  return files instanceof Map ? [...files.entries()] : Object.entries(files);
}

/** Writes `files` under `dir`, creating directories as needed. */
export function writeTree(dir: string, files: FileTree): void {
  for (const [name, body] of entriesOf(files)) {
    const path = join(dir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, body);
  }
}

/**
 * Packs files into a gzipped tarball the way a bundle is shipped, e.g. to
 * re-pack a bundle after tampering with it. Entries are written in sorted order.
 */
export async function packBundle(files: FileTree): Promise<Buffer> {
  const dir = makeTempDir('gatehouse-pack-');
  try {
    writeTree(dir, files);
    const target = join(dir, '..', `${dir.split('/').pop()}.tar.gz`);
    const names = entriesOf(files).map(([name]) => name).sort();
    await createTar({ gzip: true, portable: true, cwd: dir, file: target }, names);
    const bytes = readFileSync(target);
    rmSync(target, { force: true });
    return bytes;
  } finally {
    removeDir(dir);
  }
}
