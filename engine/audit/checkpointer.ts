import { randomBytes } from 'node:crypto';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { CheckpointRecord, Store } from '../store/store.js';
import { storedHashAt, type AuditLog } from './audit-log.js';
import { EMPTY_HEAD, type ChainHead } from './chain.js';
import { CheckpointInvalid, checkpointPayload, verifyCheckpoint, type CheckpointClaim } from './checkpoint.js';
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
  /** The newest head this checkpointer signed: it never signs one behind it, nor another hash at its seq. */
  private signed: ChainHead | null = null;

  constructor(private readonly options: CheckpointerOptions) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Takes a checkpoint now (anchoring the head this process starts from),
   * then one per interval. First, an existing export_file must still match
   * the store: throws AnchorMismatchError, and leaves the file as it is,
   * when the checkpoint in it vouches for a seq the store no longer holds
   * or for another hash there (a tail cut off, or records edited).
   */
  async start(): Promise<void> {
    if (this.options.exportFile) await checkAnchor(this.options.exportFile, this.options.store, this.options.key.publicKey);
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
    if (log.stopped) {
      logger.error({ stream: log.stream }, 'audit checkpoint refused: appends to the stream were stopped because the store lost records this gateway had made durable; nothing is signed or exported over it');
      return null;
    }
    if (!head) {
      logger.warn({ stream: log.stream }, 'audit checkpoint skipped: the head is being re-read after a failed write');
      return null;
    }
    const signed = this.signed;
    if (signed && (head.seq < signed.seq || (head.seq === signed.seq && head.hash !== signed.hash))) {
      logger.error(
        { stream: log.stream, signed_seq: signed.seq, signed_hash: signed.hash, head_seq: head.seq, head_hash: head.hash },
        'audit checkpoint refused: the head went back from the one this gateway signed; nothing is signed or exported over it',
      );
      return null;
    }
    const claim = { stream: log.stream, seq: head.seq, hash: head.hash, time: this.now() };
    const record: CheckpointRecord = { ...claim, jws: await key.sign(checkpointPayload(claim)) };
    await store.appendCheckpoint(record);
    this.signed = { seq: head.seq, hash: head.hash };
    if (exportFile) await writeAtomically(exportFile, `${JSON.stringify(record)}\n`);
    logger.debug({ stream: claim.stream, seq: claim.seq }, 'audit checkpoint');
    return record;
  }
}

/** The checkpoint in export_file no longer matches the store: the gateway must not start, nor overwrite it. */
export class AnchorMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AnchorMismatchError';
  }
}

/**
 * Checks the checkpoint already in `file` (the export_file a previous run
 * wrote, kept apart from the store) against the store: its signature with
 * this key, then that the store holds its stream's record at its seq with
 * its hash. A store behind it, or with another record there, was cut off
 * or edited since: signing the store's head and overwriting the file would
 * destroy the one thing that shows it. No file yet is fine (a first start).
 */
export async function checkAnchor(file: string, store: Store, publicKey: CheckpointKeySource['publicKey']): Promise<void> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new AnchorMismatchError(`cannot read the checkpoint export_file ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}) to check it against the store before overwriting it`);
  }
  const recover = `; the gateway will not start nor overwrite it. Investigate (gatehouse audit verify --anchor ${file}), and only then move ${file} away to start anew`;
  let jws: string | undefined;
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === 'object' && typeof (parsed as { jws?: unknown }).jws === 'string') jws = (parsed as { jws: string }).jws;
  } catch {
    if (/^[\w-]+\.[\w-]+\.[\w-]+$/.test(text.trim())) jws = text.trim();
  }
  if (!jws) throw new AnchorMismatchError(`the checkpoint export_file ${file} holds no checkpoint${recover}`);
  let claim: CheckpointClaim;
  try {
    claim = await verifyCheckpoint(jws, publicKey);
  } catch (err) {
    if (!(err instanceof CheckpointInvalid)) throw err;
    throw new AnchorMismatchError(`the checkpoint in export_file ${file} is not one this checkpoint key signed (${err.message})${recover}`);
  }
  const vouched = `the checkpoint in export_file ${file} vouches for stream "${claim.stream}" seq ${claim.seq} (hash ${claim.hash})`;
  const head = (await store.auditHead(claim.stream)) ?? EMPTY_HEAD;
  if (claim.seq > head.seq) {
    throw new AnchorMismatchError(`${vouched}, but the store holds that stream only up to seq ${head.seq} (hash ${head.hash}): its tail was cut off${recover}`);
  }
  const stored = claim.seq === 0 ? EMPTY_HEAD.hash : claim.seq === head.seq ? head.hash : await storedHashAt(store, claim.stream, claim.seq);
  if (stored !== claim.hash) {
    throw new AnchorMismatchError(`${vouched}, but the store holds ${stored === null ? 'no record' : `hash ${stored}`} at that seq (head seq ${head.seq}): records were edited or replaced${recover}`);
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
