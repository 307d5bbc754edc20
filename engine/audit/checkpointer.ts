import { randomBytes } from 'node:crypto';
import { rename, unlink, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { CheckpointRecord, Store } from '../store/store.js';
import type { AuditLog } from './audit-log.js';
import { checkpointPayload } from './checkpoint.js';
import type { CheckpointKeySource } from './key-source.js';

export interface CheckpointerOptions {
  store: Store;
  log: AuditLog;
  key: CheckpointKeySource;
  intervalSeconds: number;
  /** Also write each checkpoint here (atomically), e.g. on another volume, to anchor `audit verify`. */
  exportFile?: string;
  logger: Logger;
  now?: () => number;
}

/**
 * Signs the durable head of one stream on a fixed cadence, idle or not: a
 * checkpoint that keeps arriving with the same seq proves nothing was
 * appended and nothing was cut off since, and its absence is itself a sign.
 */
export class Checkpointer {
  private timer: NodeJS.Timeout | null = null;
  /** Checkpoints are taken one at a time, in order. */
  private last: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;

  constructor(private readonly options: CheckpointerOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Takes a checkpoint now (anchoring the head this process starts from), then one per interval. */
  async start(): Promise<void> {
    await this.checkpoint();
    this.timer = setInterval(() => {
      this.checkpoint().catch((err: unknown) => {
        this.options.logger.error({ stream: this.options.log.stream, err: (err as Error).message }, 'audit checkpoint failed');
      });
    }, this.options.intervalSeconds * 1000);
    this.timer.unref();
  }

  /** Stops the cadence and takes one final checkpoint; call after AuditLog.close(). */
  async stop(): Promise<CheckpointRecord | null> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    return this.checkpoint();
  }

  /** Signs and stores the current durable head; null when the head is unknown (after a failed write). */
  checkpoint(): Promise<CheckpointRecord | null> {
    const next = this.last.catch(() => undefined).then(() => this.take());
    this.last = next;
    return next;
  }

  private async take(): Promise<CheckpointRecord | null> {
    const { log, key, store, exportFile, logger } = this.options;
    const head = log.head;
    if (!head) {
      logger.warn({ stream: log.stream }, 'audit checkpoint skipped: the head is being re-read after a failed write');
      return null;
    }
    const claim = { stream: log.stream, seq: head.seq, hash: head.hash, time: this.now() };
    const record: CheckpointRecord = { ...claim, jws: await key.sign(checkpointPayload(claim)) };
    await store.appendCheckpoint(record);
    if (exportFile) await writeAtomically(exportFile, `${JSON.stringify(record)}\n`);
    logger.debug({ stream: claim.stream, seq: claim.seq }, 'audit checkpoint');
    return record;
  }
}

/** Write to a sibling temporary file, then rename: a reader sees the old checkpoint or the new one, never half of one. */
async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, text, { mode: 0o644, flush: true });
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
