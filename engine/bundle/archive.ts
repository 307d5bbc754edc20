import { Parser, type ReadEntry } from 'tar';
import { gunzipSync } from 'node:zlib';
import { BundleError } from './errors.js';

/** The files of a bundle, keyed by their path inside it (no leading slash). */
export type BundleFiles = ReadonlyMap<string, Buffer>;

/** Bundles are small (policy.wasm + data); anything bigger is a mistake or an attack. */
export const DEFAULT_MAX_BUNDLE_BYTES = 64 * 1024 * 1024;

/**
 * Normalises a path the way OPA names bundle files in `.signatures.json`:
 * relative, forward slashes, no `./` or leading `/`. Paths that climb out of
 * the bundle are refused rather than normalised away.
 */
export function bundlePath(raw: string): string {
  const trimmed = raw.replace(/\\/g, '/').replace(/^(\.\/|\/)+/, '');
  if (trimmed.split('/').some((part) => part === '..')) {
    throw new BundleError('corrupt', `bundle file path "${raw}" escapes the bundle`);
  }
  return trimmed;
}

/**
 * Reads a gzipped tarball (what `opa build` writes) into memory.
 * Only regular files are kept; directories and links carry nothing a bundle needs.
 */
export async function readBundleArchive(
  gzipped: Buffer,
  maxBytes = DEFAULT_MAX_BUNDLE_BYTES,
): Promise<Map<string, Buffer>> {
  let tarball: Buffer;
  try {
    tarball = gunzipSync(gzipped, { maxOutputLength: maxBytes });
  } catch (err) {
    throw new BundleError('corrupt', `bundle is not a readable .tar.gz: ${(err as Error).message}`);
  }

  const files = new Map<string, Buffer>();
  const pending: Promise<void>[] = [];
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      if (entry.type !== 'File' && entry.type !== 'OldFile') {
        entry.resume();
        return;
      }
      const done = collect(entry).then((body) => {
        const path = bundlePath(entry.path);
        if (files.has(path)) throw new BundleError('corrupt', `bundle contains "${path}" twice`);
        files.set(path, body);
      });
      // Observed by Promise.all below; this keeps a rejection that lands before
      // then from being reported as unhandled (which would crash the process).
      done.catch(() => undefined);
      pending.push(done);
    },
  });

  await new Promise<void>((resolve, reject) => {
    parser.on('error', (err: Error) => reject(new BundleError('corrupt', `bundle tarball is malformed: ${err.message}`)));
    parser.on('end', () => resolve());
    parser.end(tarball);
  });
  await Promise.all(pending);
  if (files.size === 0) throw new BundleError('corrupt', 'bundle tarball contains no files');
  return files;
}

function collect(entry: ReadEntry): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    entry.on('data', (chunk: Buffer) => chunks.push(chunk));
    entry.on('end', () => resolve(Buffer.concat(chunks)));
    entry.on('error', reject);
  });
}
