/**
 * The SQLite store's writes, as the connection that makes them runs them:
 * the writer thread's (writer-thread.ts) for a file, the store's own for
 * ":memory:". Also the connection settings both connections share, and how
 * an error crosses from the writer thread to the caller's promise.
 */
import Database from 'better-sqlite3';
import type { BatchLink } from '../queries.js';
import { notContinuingHead } from '../queries.js';
import { ENTRY_COLUMNS, SESSION_COLUMNS, entryRowValues, sessionRowValues, sessionUpsertSet } from '../recordings.js';
import type { AuditRecord, RecordingBatch } from '../store.js';

/** How long a write waits for another connection's lock before SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5000;

/**
 * Durable commits (synchronous=FULL: with WAL, each COMMIT fsyncs the WAL
 * before it returns), the busy timeout, and no foreign keys (the schema has
 * none). journal_mode is the file's, set by the store's own connection.
 */
export function configureConnection(db: Database.Database): void {
  db.pragma('synchronous = FULL');
  // macOS: a plain fsync does not reach the platter; F_FULLFSYNC does. No-op elsewhere.
  db.pragma('fullfsync = ON');
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  db.pragma('foreign_keys = OFF');
}

/** One write, as the store hands it to the connection that makes it. */
export type WriteRequest =
  /** The batch's records and, per stream, its first record, which must continue the stored head. */
  | { op: 'appendAudit'; records: readonly AuditRecord[]; links: readonly BatchLink[] }
  | { op: 'appendRecordings'; batch: RecordingBatch }
  /** One statement, in its own (autocommit) transaction. */
  | { op: 'run'; text: string; params: unknown[] }
  /** One statement whose first row (RETURNING) is the result, or null. */
  | { op: 'get'; text: string; params: unknown[] }
  /** One statement whose rows (RETURNING) are the result. */
  | { op: 'all'; text: string; params: unknown[] };

type AppendAudit = Database.Transaction<(records: readonly AuditRecord[], links: readonly BatchLink[]) => void>;
type AppendRecordings = Database.Transaction<(batch: RecordingBatch) => void>;

/** The writes of one connection. Each call is one transaction, committed durably before it returns. */
export class SqliteWrites {
  readonly #db: Database.Database;
  /** The append transactions, prepared on first use and kept: they run once per batch. */
  #appendAudit: AppendAudit | null = null;
  #appendRecordings: AppendRecordings | null = null;

  constructor(db: Database.Database) {
    this.#db = db;
  }

  execute(request: WriteRequest): unknown {
    switch (request.op) {
      case 'appendAudit':
        this.#appendAudit ??= this.#prepareAppendAudit();
        // BEGIN IMMEDIATE … COMMIT: one durable transaction per batch.
        this.#appendAudit.immediate(request.records, request.links);
        return undefined;
      case 'appendRecordings':
        this.#appendRecordings ??= this.#prepareAppendRecordings();
        this.#appendRecordings.immediate(request.batch);
        return undefined;
      case 'run':
        this.#db.prepare(request.text).run(...request.params);
        return undefined;
      case 'get':
        return this.#db.prepare(request.text).get(...request.params) ?? null;
      case 'all':
        return this.#db.prepare(request.text).all(...request.params);
    }
  }

  #prepareAppendAudit(): AppendAudit {
    const link = this.#db.prepare('SELECT 1 FROM audit_records WHERE stream = ? AND seq = ? AND hash = ?');
    const insert = this.#db.prepare('INSERT INTO audit_records (stream, seq, prev, hash, time, event) VALUES (?, ?, ?, ?, ?, ?)');
    return this.#db.transaction((records: readonly AuditRecord[], links: readonly BatchLink[]) => {
      // The chain check runs inside the write transaction, so no other writer can move the head between check and insert.
      for (const l of links) {
        if (l.seq > 1 && !link.get(l.stream, l.seq - 1, l.prev)) throw notContinuingHead(l);
      }
      for (let i = 0; i < records.length; i++) {
        const r = records[i]!;
        insert.run(r.stream, r.seq, r.prev, r.hash, r.time, r.event);
      }
    });
  }

  #prepareAppendRecordings(): AppendRecordings {
    const upsert = this.#db.prepare(
      `INSERT INTO session_recordings (${SESSION_COLUMNS.join(', ')}) VALUES (${SESSION_COLUMNS.map(() => '?').join(', ')}) ${sessionUpsertSet('max')}`,
    );
    const insert = this.#db.prepare(
      `INSERT INTO session_entries (${ENTRY_COLUMNS.join(', ')}) VALUES (${ENTRY_COLUMNS.map(() => '?').join(', ')}) ON CONFLICT (session_id, seq) DO NOTHING`,
    );
    return this.#db.transaction((batch: RecordingBatch) => {
      for (const s of batch.sessions) upsert.run(...sessionRowValues(s));
      for (const e of batch.entries) insert.run(...entryRowValues(e));
    });
  }
}

// ---- the writer thread's protocol -----------------------------------------

/** The store → writer thread messages, answered in the order they are sent. */
export type WriterMessage = (WriteRequest & { id: number }) | { id: number; op: 'close' };

/** An error as it crosses the thread boundary: structured clone would drop SqliteError's class and code. */
export interface WireError {
  name: string;
  message: string;
  code?: string;
  stack?: string;
}

/** The writer thread → store messages: one per message received, once its transaction has committed (or failed). */
export type WriterReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: WireError };

export function errorToWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const code = (err as { code?: unknown }).code;
  return { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}), ...(err.stack ? { stack: err.stack } : {}) };
}

const BUILTIN_ERRORS: Record<string, new (message: string) => Error> = { TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError };

/**
 * The error the write would have thrown on the caller's thread: SQLite's
 * errors as better-sqlite3's SqliteError with their code (callers map
 * SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_BUSY, …), built-in errors as their
 * class, anything else as an Error with the same name and message. The stack
 * is the writer thread's, which is where it was thrown.
 */
export function errorFromWire(wire: WireError): Error {
  let err: Error;
  if (wire.name === 'SqliteError' && wire.code !== undefined) {
    err = new Database.SqliteError(wire.message, wire.code);
  } else {
    const Builtin = BUILTIN_ERRORS[wire.name];
    err = Builtin ? new Builtin(wire.message) : new Error(wire.message);
    if (!Builtin && wire.name !== 'Error') err.name = wire.name;
    if (wire.code !== undefined) (err as Error & { code?: string }).code = wire.code;
  }
  if (wire.stack) err.stack = wire.stack;
  return err;
}
