import type { Hash } from 'node:crypto';
import type { Logger } from 'pino';
import { Histogram, type Registry } from 'prom-client';
import type { AuditRecord, Store } from '../store/store.js';
import { canonicalJson } from './canonical.js';
import { EMPTY_HEAD, finishRecordHash, startRecordHash, type ChainHead } from './chain.js';

export interface AuditLogOptions {
  store: Store;
  /** This process's chain (audit.stream). */
  stream: string;
  /** At most this many events per durable write (audit.max_batch). */
  maxBatch: number;
  logger: Logger;
  /** Where the write metrics go (the engine's registry in the gateway). */
  registry?: Registry;
}

/** Where an event landed: it is durable when append() resolves with this. */
export interface AppendedEvent {
  stream: string;
  seq: number;
  hash: string;
}

/** An append that did not become durable; the event is not in the chain. */
export class AuditWriteError extends Error {
  constructor(message: string, options?: { cause: unknown }) {
    super(message, options);
    this.name = 'AuditWriteError';
  }
}

interface Pending {
  event: string;
  time: number;
  /** The record hash with the event already in it (startRecordHash); write() adds seq and prev. */
  hash: Hash;
  resolve: (appended: AppendedEvent) => void;
  reject: (err: Error) => void;
}

/**
 * The writer of one audit stream, with group commit: appends queue up while
 * a write is in flight, and the next write takes up to `maxBatch` of them in
 * one durable transaction. One write is in flight at a time, so the chain is
 * always computed from the durable head and never forks; throughput comes
 * from batching, not from concurrent writes.
 */
export class AuditLog {
  readonly stream: string;
  private readonly store: Store;
  private readonly maxBatch: number;
  private readonly logger: Logger;
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  /** The last durable record; null until start(), and after a failed write until re-read. */
  private durable: ChainHead | null = null;
  /**
   * The newest head this process knows to be durable (read at start(),
   * written by it, or re-read ahead of it): a head re-read from the store
   * may move ahead of it (another writer, or a write whose acknowledgement
   * was lost) but never behind it, nor to another hash at its seq.
   */
  private known: ChainHead | null = null;
  /** Why appends to this stream stopped (the store lost or changed what this process had made durable); null while writing. */
  private stoppedBy: string | null = null;
  private state: 'new' | 'open' | 'closing' | 'closed' = 'new';
  /** Every decision waits for its event's write: its latency is the floor of every decision's. */
  private readonly writeSeconds: Histogram | null;
  private readonly batchEvents: Histogram | null;

  constructor(options: AuditLogOptions) {
    this.store = options.store;
    this.stream = options.stream;
    this.maxBatch = options.maxBatch;
    this.logger = options.logger;
    const registers = options.registry ? [options.registry] : null;
    this.writeSeconds = registers && new Histogram({
      name: 'gatehouse_audit_write_seconds',
      help: 'Time to write one batch of audit events durably (group commit); every decision in the batch waited for it.',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.batchEvents = registers && new Histogram({
      name: 'gatehouse_audit_batch_events',
      help: 'Audit events per durable write.',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
      registers,
    });
  }

  /** Claims the stream for this process and loads its head. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('AuditLog.start() was already called');
    await this.store.claimAuditStream(this.stream);
    this.durable = this.known = await this.readHead();
    this.state = 'open';
    this.logger.info({ stream: this.stream, seq: this.durable.seq }, 'audit stream opened');
  }

  /**
   * The last durable record (seq 0 and the genesis hash for an empty
   * stream): what checkpoints sign. Null before start() and while a failed
   * write has left the head to be re-read from the store, and for good once
   * the stream is stopped (see `stopped`): nothing may be signed over it.
   */
  get head(): ChainHead | null {
    return this.stoppedBy ? null : this.durable;
  }

  /**
   * Why appends to this stream were stopped, or null: the store no longer
   * holds what this process had made durable (its head went back, or its
   * record at that seq has another hash), i.e. records were cut off or
   * edited. Every later append fails as a failed write does (so decisions
   * needing an event are denied unless the target's audit.fail_open), and
   * the checkpointer signs nothing, until an operator has looked and
   * restarted the gateway.
   */
  get stopped(): string | null {
    return this.stoppedBy;
  }

  /**
   * Appends one event. Resolves once it is durable; rejects with
   * AuditWriteError if the write failed, in which case the event is not in
   * the chain and the caller must treat the decision as unaudited.
   */
  append(event: object): Promise<AppendedEvent> {
    if (this.state !== 'open') {
      return Promise.reject(new AuditWriteError(`audit stream "${this.stream}" is ${this.state === 'new' ? 'not started' : 'closed'}`));
    }
    if (this.stoppedBy) return Promise.reject(new AuditWriteError(this.stoppedBy));
    let text: string;
    try {
      text = canonicalJson(event);
    } catch (err) {
      return Promise.reject(new AuditWriteError(`event is not JSON: ${(err as Error).message}`, { cause: err }));
    }
    // Hash the event's bytes now rather than in write(): besides spreading
    // the work, hashing flattens the text in place, so the queue holds one
    // string per event instead of the hundreds of small pieces canonicalJson
    // concatenated, which the GC would otherwise copy and promote while the
    // event waits for its batch (that was most of the GC time in
    // bench/audit.ts), and the store binds it without flattening it again.
    const hash = startRecordHash(text);
    const t = (event as { time?: unknown }).time;
    const time = typeof t === 'number' && Number.isFinite(t) ? t : Date.now();
    return new Promise((resolve, reject) => {
      this.queue.push({ event: text, time, hash, resolve, reject });
      this.flushing ??= this.drain();
    });
  }

  /** Resolves when every event appended so far has been written (or has failed). */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  /** Writes what is queued, then refuses new events. Does not close the store. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closing';
    await this.flush();
    this.state = 'closed';
  }

  private async drain(): Promise<void> {
    // Let every append made in the current tick join the first batch.
    await Promise.resolve();
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.length <= this.maxBatch ? this.queue : this.queue.slice(0, this.maxBatch);
        this.queue = batch === this.queue ? [] : this.queue.slice(this.maxBatch);
        await this.write(batch);
      }
    } finally {
      this.flushing = null;
    }
  }

  private async write(batch: Pending[]): Promise<void> {
    if (this.stoppedBy) {
      const error = new AuditWriteError(this.stoppedBy);
      for (const p of batch) p.reject(error);
      return;
    }
    let head: ChainHead;
    try {
      head = this.durable ?? (this.durable = await this.resync());
    } catch (err) {
      this.fail(batch, err);
      return;
    }

    const records: AuditRecord[] = new Array(batch.length);
    let { seq, hash } = head;
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      const prev = hash;
      seq += 1;
      hash = finishRecordHash(p.hash, this.stream, seq, prev);
      records[i] = { stream: this.stream, seq, prev, hash, time: p.time, event: p.event };
    }

    const started = performance.now();
    try {
      await this.store.appendAudit(records);
    } catch (err) {
      // The store is the truth: the write may or may not have landed (a lost
      // commit acknowledgement), so the head is re-read before the next write.
      // A head behind the one this process made durable is no other writer's
      // doing: resync() stops the stream rather than write over the gap.
      this.durable = null;
      this.durable = await this.resync().catch(() => null);
      this.fail(batch, this.stoppedBy ? new AuditWriteError(this.stoppedBy, { cause: err }) : err);
      return;
    }
    this.durable = this.known = { seq, hash };
    this.writeSeconds?.observe((performance.now() - started) / 1000);
    this.batchEvents?.observe(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const r = records[i]!;
      batch[i]!.resolve({ stream: this.stream, seq: r.seq, hash: r.hash });
    }
  }

  private fail(batch: Pending[], err: unknown): void {
    const message = (err as Error)?.message ?? String(err);
    this.logger.error({ stream: this.stream, events: batch.length, err: message }, 'audit write failed');
    const error = new AuditWriteError(`audit write to stream "${this.stream}" failed: ${message}`, { cause: err });
    for (const p of batch) p.reject(error);
  }

  /**
   * Re-reads the head after a failed write. Ahead of the head this process
   * knows, with that record still in place: another writer's records or this
   * process's own write whose acknowledgement was lost, so the chain carries
   * on from it. Behind it, or another hash at its seq (or at its place in a
   * head ahead): the store lost or changed records this process had made
   * durable, so the stream is stopped and this throws.
   */
  private async resync(): Promise<ChainHead> {
    const stored = await this.readHead();
    const known = this.known;
    if (!known || (stored.seq === known.seq && stored.hash === known.hash)) return stored;
    let found: string;
    if (stored.seq < known.seq) found = `the store now holds seq ${stored.seq} (hash ${stored.hash}) as its head`;
    else if (stored.seq === known.seq) found = `the store now holds another record at seq ${stored.seq} (hash ${stored.hash})`;
    else {
      const then = known.seq === 0 ? EMPTY_HEAD.hash : await storedHashAt(this.store, this.stream, known.seq);
      if (then === known.hash) {
        this.known = stored;
        return stored;
      }
      found = `the store now holds seq ${stored.seq} (hash ${stored.hash}) as its head, but ${then === null ? 'no record' : `hash ${then}`} at seq ${known.seq}`;
    }
    this.stoppedBy =
      `audit stream "${this.stream}" was cut off or edited in the store: this gateway had made seq ${known.seq} (hash ${known.hash}) durable, ` +
      `but ${found}; that is not another writer appending. Appends to the stream are stopped and no checkpoint is signed over it: ` +
      'keep the checkpoint export_file, run gatehouse audit verify --anchor <export_file>, and investigate before restarting';
    this.logger.error(
      { stream: this.stream, durable_seq: known.seq, durable_hash: known.hash, stored_seq: stored.seq, stored_hash: stored.hash },
      this.stoppedBy,
    );
    throw new AuditWriteError(this.stoppedBy);
  }

  private async readHead(): Promise<ChainHead> {
    return (await this.store.auditHead(this.stream)) ?? EMPTY_HEAD;
  }
}

/** The stored hash of a stream's record at `seq`, or null when there is none. */
export async function storedHashAt(store: Pick<Store, 'readAudit'>, stream: string, seq: number): Promise<string | null> {
  for await (const record of store.readAudit({ stream, afterSeq: seq - 1 })) return record.seq === seq ? record.hash : null;
  return null;
}
