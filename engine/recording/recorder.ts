import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { RecordingsConfig } from '../config/schema.js';
import type { SessionEntryRecord, SessionRecordingRow, Store } from '../store/store.js';
import type { RecordingFormat } from './format.js';
import { FORMATS } from './formats.js';
import { RecordingMetrics, type DropReason } from './metrics.js';
import type { DecisionAction, Entries, EntryInputs, RecordingProtocol, SessionClose, SessionOpen, SessionRecording } from './types.js';

export interface SessionRecorderOptions {
  /** Where recordings go: the gateway's store. */
  store: Pick<Store, 'appendRecordings'>;
  /** The `recordings` section of gatehouse.yaml. */
  settings: RecordingsConfig;
  /** The configured targets: a target with `recording.enabled: false` is never recorded. */
  targets: readonly { name: string; recording: { enabled: boolean } }[];
  /** This process's audit stream, stored with each session: where its decisions' events are. */
  gateway: string;
  logger: Logger;
  /** Prometheus registry for the recorder's metrics (the engine's in the gateway). */
  registry: Registry;
  /** How long close() keeps retrying a failing store before giving up on what is queued. */
  closeTimeoutMs?: number;
  /** The clock (ms since the epoch), for entries that do not say when they happened. */
  now?: () => number;
}

interface Queued {
  recording: ActiveRecording<RecordingProtocol>;
  seq: number;
  time: number;
  decision: DecisionAction | null;
  entry: object;
}

/** What a recording needs of its recorder. */
interface Sink {
  now(): number;
  enqueue(recording: ActiveRecording<RecordingProtocol>, entry: Queued): void;
  drop(recording: ActiveRecording<RecordingProtocol>, reason: DropReason, detail?: string): void;
  ended(recording: ActiveRecording<RecordingProtocol>): void;
}

const MAX_REASON_CHARS = 500;
const MAX_RETRY_MS = 30_000;
const FIRST_RETRY_MS = 250;
/** Drops are logged at most this often (with how many since the last line). */
const DROP_LOG_INTERVAL_MS = 5000;

/**
 * Records sessions for the proxies: `open()` when a session starts, then
 * `append()` per statement (command, exchange) and `close()` at the end.
 *
 * Off the hot path: `append()` checks and copies the entry and queues it,
 * nothing more. A full batch (`max_batch`) is written on the next turn of
 * the event loop, a partial one after `flush_interval_ms`; one write is in
 * flight at a time, in one store transaction with the headers of the
 * sessions opened, closed or changed since the last write.
 *
 * Failures are loud and never reach the proxy or the audit trail: a failed
 * write is logged (error) and counted, and retried with back-off (the
 * store's write is idempotent); while the store is down entries wait in
 * memory up to `max_queue`, and past that new entries are dropped, counted
 * and logged, and their sessions marked with how many they lost (the gaps
 * in seq show where). The audit log writes on its own path, so a recording
 * failure cannot cost a decision its audit event.
 */
export class SessionRecorder {
  readonly settings: RecordingsConfig;
  readonly #store: Pick<Store, 'appendRecordings'>;
  readonly #targets: Map<string, boolean>;
  readonly #gateway: string;
  readonly #logger: Logger;
  readonly #metrics: RecordingMetrics;
  readonly #closeTimeoutMs: number;
  readonly #now: () => number;
  readonly #sink: Sink;

  /** Sessions open in this process. */
  readonly #open = new Map<string, ActiveRecording<RecordingProtocol>>();
  /** Sessions whose header must be (re)written with the next batch. */
  #dirty = new Set<ActiveRecording<RecordingProtocol>>();
  #queue: Queued[] = [];
  #timer: NodeJS.Timeout | null = null;
  #immediate: NodeJS.Immediate | null = null;
  #retry: NodeJS.Timeout | null = null;
  #draining: Promise<boolean> | null = null;
  /** Consecutive failed writes: the back-off, and whether the recorder is healthy. */
  #failures = 0;
  #dropsSinceLog = 0;
  #lastDropLog = 0;
  #state: 'open' | 'closing' | 'closed' = 'open';

  constructor(options: SessionRecorderOptions) {
    this.settings = options.settings;
    this.#store = options.store;
    this.#targets = new Map(options.targets.map((t) => [t.name, t.recording.enabled]));
    this.#gateway = options.gateway;
    this.#logger = options.logger.child({ component: 'recorder' });
    this.#metrics = new RecordingMetrics(options.registry, () => this.#queue.length);
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 5000;
    this.#now = options.now ?? Date.now;
    this.#sink = {
      now: () => this.#now(),
      enqueue: (recording, queued) => this.#enqueue(recording, queued),
      drop: (recording, reason, detail) => this.#drop(recording, reason, detail),
      ended: (recording) => {
        this.#open.delete(recording.session_id);
        this.#markDirty(recording);
      },
    };
  }

  /**
   * Starts recording a session. Returns a disabled recording (append and
   * close do nothing) when the target has `recording.enabled: false` or the
   * recorder is stopping. A target the config does not name is recorded.
   * Throws on malformed metadata or a session id already being recorded:
   * both are proxy bugs, found at connection set-up rather than per statement.
   */
  open<P extends RecordingProtocol>(meta: SessionOpen<P>): SessionRecording<P> {
    const problem = checkOpen(meta);
    if (problem) throw new TypeError(`SessionRecorder.open: ${problem}`);
    if (this.#targets.get(meta.target) === false) return disabledRecording(meta.session_id);
    if (this.#state !== 'open') {
      this.#logger.warn({ session_id: meta.session_id, target: meta.target }, 'session opened while the recorder is stopping; not recorded');
      return disabledRecording(meta.session_id);
    }
    if (this.#open.has(meta.session_id)) throw new Error(`SessionRecorder.open: session ${meta.session_id} is already being recorded`);
    const format = FORMATS[meta.protocol] as RecordingFormat<P> | undefined;
    if (!format) throw new TypeError(`SessionRecorder.open: no recording format for protocol ${String(meta.protocol)}`);
    const row: SessionRecordingRow = {
      id: meta.session_id,
      protocol: meta.protocol,
      format: format.id,
      target: meta.target,
      target_kind: meta.target_kind,
      sub: meta.identity.sub,
      iss: meta.identity.iss,
      act_sub: meta.identity.act?.sub ?? null,
      groups: [...meta.identity.groups],
      source_ip: meta.source_ip,
      gateway: this.#gateway,
      started_at: meta.started_at,
      ended_at: null,
      end_reason: null,
      dropped_entries: 0,
    };
    const recording = new ActiveRecording<P>(this.#sink, format, row);
    const stored = recording as unknown as ActiveRecording<RecordingProtocol>;
    this.#open.set(meta.session_id, stored);
    this.#metrics.sessions.inc();
    this.#markDirty(stored);
    return recording;
  }

  /** False while writes are failing (entries are then held in memory, up to max_queue). */
  get healthy(): boolean {
    return this.#failures === 0;
  }

  /** Whether a new entry would be kept: false once max_queue entries wait for a failing store. */
  get accepting(): boolean {
    return this.#queue.length < this.settings.max_queue;
  }

  /** Entries waiting to be written. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Writes everything queued now, without waiting for the interval or a
   * back-off. Resolves true once it is all in the store, false if a write
   * failed (it stays queued and is retried). Never rejects.
   */
  async flush(): Promise<boolean> {
    if (this.#draining) await this.#draining;
    this.#clearRetry();
    return this.#startDrain(true);
  }

  /**
   * Ends every open session ("gateway stopped"), writes what is queued, and
   * stops. A store that keeps failing is retried for closeTimeoutMs; what
   * is still unwritten then is logged as lost and counted. Call it before
   * the store closes and after the proxies have stopped.
   */
  async close(): Promise<void> {
    if (this.#state !== 'open') return;
    this.#state = 'closing';
    const now = this.#now();
    for (const recording of [...this.#open.values()]) recording.close({ ended_at: now, reason: 'gateway stopped' });
    const deadline = Date.now() + this.#closeTimeoutMs;
    while (!(await this.flush())) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      await new Promise((resolve) => setTimeout(resolve, Math.min(left, 500)));
    }
    this.#clearTimers();
    if (this.#pending()) {
      const entries = this.#queue.length;
      this.#logger.error(
        { entries, sessions: this.#dirty.size },
        'SESSION RECORDINGS LOST: the store could not be written before shutdown; the decisions are in the audit trail, their transcript entries are not',
      );
      this.#metrics.dropped.labels('shutdown').inc(entries);
      this.#queue = [];
      this.#dirty.clear();
    }
    this.#state = 'closed';
  }

  // ---- the write path -------------------------------------------------

  #enqueue(recording: ActiveRecording<RecordingProtocol>, queued: Queued): void {
    if (this.#queue.length >= this.settings.max_queue) {
      this.#drop(recording, 'queue_full');
      return;
    }
    this.#queue.push(queued);
    this.#kick();
  }

  #drop(recording: ActiveRecording<RecordingProtocol>, reason: DropReason, detail?: string): void {
    this.#metrics.dropped.labels(reason).inc();
    recording.dropped += 1;
    this.#markDirty(recording);
    this.#dropsSinceLog += 1;
    const now = Date.now();
    if (reason === 'invalid' || now - this.#lastDropLog >= DROP_LOG_INTERVAL_MS) {
      this.#logger.error(
        { session_id: recording.session_id, reason, detail, dropped: this.#dropsSinceLog, queued: this.#queue.length },
        reason === 'invalid' ? 'recording entry refused: the proxy passed a malformed entry' : 'recording entries dropped',
      );
      this.#lastDropLog = now;
      this.#dropsSinceLog = 0;
    }
  }

  #markDirty(recording: ActiveRecording<RecordingProtocol>): void {
    this.#dirty.add(recording);
    this.#kick();
  }

  #pending(): boolean {
    return this.#queue.length > 0 || this.#dirty.size > 0;
  }

  /** Arms the next write: at once (next turn) for a full batch, else after the interval; nothing while one runs or a retry waits. */
  #kick(): void {
    if (this.#state === 'closed' || this.#draining || this.#retry || this.#immediate) return;
    if (this.#queue.length >= this.settings.max_batch) {
      // Never write inside append(): SQLite writes synchronously, on the caller's stack.
      this.#immediate = setImmediate(() => {
        this.#immediate = null;
        void this.#startDrain(false);
      });
      return;
    }
    this.#timer ??= setTimeout(() => {
      this.#timer = null;
      void this.#startDrain(false);
    }, this.settings.flush_interval_ms).unref();
  }

  #startDrain(force: boolean): Promise<boolean> {
    if (this.#draining) return this.#draining;
    this.#clearTimers();
    const run = this.#drain(force).finally(() => {
      this.#draining = null;
      if (this.#pending()) this.#kick();
    });
    this.#draining = run;
    return run;
  }

  /** Writes batches: all of them when forced, else while full batches are waiting. */
  async #drain(force: boolean): Promise<boolean> {
    while (this.#pending()) {
      if (!(await this.#writeOnce())) {
        if (this.#state === 'open') this.#armRetry();
        return false;
      }
      if (!force && this.#queue.length < this.settings.max_batch) break;
    }
    return true;
  }

  async #writeOnce(): Promise<boolean> {
    const recordings = [...this.#dirty];
    this.#dirty = new Set();
    const max = this.settings.max_batch;
    const items = this.#queue.length <= max ? this.#queue : this.#queue.slice(0, max);
    this.#queue = items === this.#queue ? [] : this.#queue.slice(max);
    const entries: SessionEntryRecord[] = new Array(items.length);
    for (let i = 0; i < items.length; i++) {
      const q = items[i]!;
      entries[i] = { session_id: q.recording.session_id, seq: q.seq, time: q.time, decision: q.decision, entry: JSON.stringify(q.entry) };
    }
    const started = performance.now();
    try {
      await this.#store.appendRecordings({ sessions: recordings.map((r) => r.row()), entries });
    } catch (err) {
      // Back at the head, in order; the store's write is idempotent, so a
      // batch that landed despite the error is harmless to write again.
      this.#queue = this.#queue.length === 0 ? items : items.concat(this.#queue);
      for (const r of recordings) this.#dirty.add(r);
      this.#failures += 1;
      this.#metrics.failures.inc();
      this.#logger.error(
        { err: { message: (err as Error)?.message ?? String(err) }, entries: items.length, sessions: recordings.length, queued: this.#queue.length, failures: this.#failures, retry_in_ms: this.#retryDelay() },
        'session recording write failed; retrying (decisions and their audit events are unaffected)',
      );
      return false;
    }
    this.#metrics.writeSeconds.observe((performance.now() - started) / 1000);
    this.#metrics.entries.inc(items.length);
    if (this.#failures > 0) this.#logger.info({ failures: this.#failures }, 'session recording writes recovered');
    this.#failures = 0;
    return true;
  }

  #retryDelay(): number {
    return Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.min(Math.max(this.#failures - 1, 0), 10));
  }

  #armRetry(): void {
    this.#clearRetry();
    this.#retry = setTimeout(() => {
      this.#retry = null;
      void this.#startDrain(false);
    }, this.#retryDelay()).unref();
  }

  #clearRetry(): void {
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = null;
  }

  #clearTimers(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#timer = null;
    this.#immediate = null;
  }
}

/** One open session's recording. */
class ActiveRecording<P extends RecordingProtocol> implements SessionRecording<P> {
  readonly enabled = true;
  readonly session_id: string;
  dropped = 0;
  #seq = 0;
  #closed = false;
  readonly #sink: Sink;
  readonly #format: RecordingFormat<P>;
  readonly #row: SessionRecordingRow;

  constructor(sink: Sink, format: RecordingFormat<P>, row: SessionRecordingRow) {
    this.#sink = sink;
    this.#format = format;
    this.#row = row;
    this.session_id = row.id;
  }

  get appended(): number {
    return this.#seq;
  }

  append(input: EntryInputs[P]): void {
    const self = this as unknown as ActiveRecording<RecordingProtocol>;
    if (this.#closed) {
      this.#sink.drop(self, 'closed');
      return;
    }
    const seq = ++this.#seq;
    let entry: Entries[P] | { invalid: string };
    try {
      entry = this.#format.entry(input, seq, this.#sink.now());
    } catch (err) {
      // A getter on a proxy's object could throw; append() never does.
      entry = { invalid: `reading the entry threw: ${(err as Error)?.message ?? String(err)}` };
    }
    if ('invalid' in entry) {
      this.#sink.drop(self, 'invalid', entry.invalid);
      return;
    }
    this.#sink.enqueue(self, { recording: self, seq, time: this.#format.time(entry), decision: this.#format.decision(entry), entry });
  }

  close(end: SessionClose): void {
    if (this.#closed) return;
    this.#closed = true;
    const endedAt = end?.ended_at;
    this.#row.ended_at = typeof endedAt === 'number' && Number.isFinite(endedAt) ? endedAt : this.#sink.now();
    const reason = end?.reason;
    this.#row.end_reason = typeof reason === 'string' && reason.length > 0 ? reason.slice(0, MAX_REASON_CHARS) : 'closed';
    this.#sink.ended(this as unknown as ActiveRecording<RecordingProtocol>);
  }

  /** The header as it stands now. */
  row(): SessionRecordingRow {
    return { ...this.#row, dropped_entries: this.dropped };
  }
}

function disabledRecording<P extends RecordingProtocol>(sessionId: string): SessionRecording<P> {
  return { session_id: sessionId, enabled: false, appended: 0, append: () => undefined, close: () => undefined };
}

const KINDS: ReadonlySet<string> = new Set(['postgres', 'ssh', 'http']);

function checkOpen(meta: SessionOpen<RecordingProtocol>): string | null {
  if (meta === null || typeof meta !== 'object') return 'expected {session_id, target, target_kind, identity, source_ip, protocol, started_at}';
  if (typeof meta.session_id !== 'string' || meta.session_id.length === 0 || meta.session_id.length > 200) return 'session_id must be a non-empty string of at most 200 characters';
  if (typeof meta.target !== 'string' || meta.target.length === 0) return 'target must be the target\'s name';
  if (!KINDS.has(meta.target_kind)) return 'target_kind must be postgres, ssh or http';
  const identity = meta.identity;
  if (identity === null || typeof identity !== 'object' || typeof identity.sub !== 'string' || identity.sub.length === 0) return 'identity.sub is missing';
  if (typeof identity.iss !== 'string' || identity.iss.length === 0) return 'identity.iss is missing';
  if (!Array.isArray(identity.groups) || !identity.groups.every((g) => typeof g === 'string')) return 'identity.groups must be a list of strings';
  if (identity.act != null && (typeof identity.act !== 'object' || typeof identity.act.sub !== 'string')) return 'identity.act must be {sub} or null';
  if (meta.source_ip !== null && typeof meta.source_ip !== 'string') return 'source_ip must be a string or null';
  if (typeof meta.started_at !== 'number' || !Number.isFinite(meta.started_at)) return 'started_at must be ms since the epoch';
  return null;
}
