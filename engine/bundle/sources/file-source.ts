import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readBundleFiles } from '../bundle.js';
import { BundleError } from '../errors.js';
import type { BundleReceiver, BundleSource } from './source.js';

export interface FileSourceOptions {
  /** How often to look for changes. */
  intervalMs?: number;
}

/**
 * Watches a bundle file or unpacked bundle directory by polling its stat
 * fingerprint. Polling rather than inotify because builds replace files by
 * rename, `make clean` deletes and recreates the folder, and editors and
 * network filesystems each report changes differently; a stat a few times a
 * second survives all of them. A change is delivered only once the
 * fingerprint has held still for one interval, so a half-written bundle is
 * never read.
 */
export class FileBundleSource implements BundleSource {
  private timer: NodeJS.Timeout | undefined;
  private delivered: string | undefined;
  private pending: string | undefined;
  private lastError: string | undefined;
  private running: Promise<void> = Promise.resolve();
  private readonly intervalMs: number;

  constructor(
    readonly location: string,
    options: FileSourceOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 250;
  }

  start(receiver: BundleReceiver): void {
    const tick = (): void => {
      this.running = this.check(receiver).finally(() => {
        if (this.timer !== undefined) this.timer = setTimeout(tick, this.intervalMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private async check(receiver: BundleReceiver): Promise<void> {
    let fingerprint: string;
    try {
      fingerprint = await fingerprintOf(this.location);
    } catch (err) {
      this.report(receiver, new BundleError('unreadable', `cannot read bundle ${this.location}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`));
      return;
    }
    if (fingerprint === this.delivered) return;
    // First sight of a new state: wait one interval for the writer to finish.
    // At start-up there is nothing to protect yet, so load at once.
    if (this.delivered !== undefined && fingerprint !== this.pending) {
      this.pending = fingerprint;
      return;
    }
    this.pending = undefined;
    try {
      const files = await readBundleFiles(this.location);
      this.delivered = fingerprint;
      this.lastError = undefined;
      await receiver.deliver(files);
    } catch (err) {
      this.report(receiver, err instanceof BundleError ? err : new BundleError('unreadable', (err as Error).message));
      this.delivered = fingerprint; // do not re-read a broken bundle until it changes again
    }
  }

  /** The same failure every tick would flood the log; report each distinct one once. */
  private report(receiver: BundleReceiver, error: BundleError): void {
    if (error.message === this.lastError) return;
    this.lastError = error.message;
    receiver.fail(error);
  }
}

async function fingerprintOf(path: string): Promise<string> {
  const info = await stat(path);
  if (!info.isDirectory()) return `${info.ino}:${info.size}:${info.mtimeMs}`;
  const parts: string[] = [];
  for (const entry of await readdir(path, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    const s = await stat(full);
    parts.push(`${full}:${s.ino}:${s.size}:${s.mtimeMs}`);
  }
  return parts.sort().join('|');
}
