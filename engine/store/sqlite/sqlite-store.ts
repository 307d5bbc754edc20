/**
 * The embedded store: one SQLite file, for a gateway that runs as one process.
 *
 * Durability: WAL with synchronous=FULL, so a commit returns only after the
 * WAL is fsync'd; an acknowledged append survives kill -9 and power loss.
 *
 * Two connections to the file. better-sqlite3 is synchronous, so a commit on
 * the main thread would block the event loop, and with it every session of
 * the gateway, for a whole fsync. So every write (audit and recording
 * appends, checkpoints, approvals) runs on a writer thread (writer-thread.ts,
 * started on the first write by writer.ts) that owns its own connection: the
 * store's promise resolves once that thread's commit has returned, i.e. once
 * it is durable, and meanwhile the event loop keeps serving, and the audit
 * log's next group commit fills up. The thread takes writes one at a time in
 * the order they were made; errors come back as the same classes (SQLite's
 * as SqliteError with its code) and reject the write's promise. Reads run
 * on the store's own connection on the main thread: in WAL mode readers
 * neither wait for the writer nor block it, and a read made after a write
 * resolved sees it. That connection never writes once the store is in use
 * (migrate() writes on it, before any write is made), so the event loop
 * never waits on the writer thread's lock. close() waits for the writes
 * already made, then closes and joins the thread; an idle thread does not
 * keep the process alive. A ":memory:" database (tests) is private to its
 * connection, so its writes run inline on the store's connection.
 *
 * One process: approval notifications and stream claims are in-process. Two
 * Store instances on the same file in one process do see each other's
 * approval changes and claims (a registry keyed by the file's real path);
 * each has its own writer thread, and SQLite serialises their writes (a
 * thread waits up to busy_timeout for the lock). Another process writing the
 * same file is neither notified nor excluded, beyond the append checks that
 * refuse a forked chain. Processes that share state use the PostgreSQL store.
 */
import { realpathSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Logger } from '../../observability/logger.js';
import { LEDGER_SQL, runMigrations, type AppliedMigration, type MigrationDriver } from '../migrations.js';
import {
  ApprovalListeners,
  AUDIT_HEAD_SQL,
  AUDIT_STREAMS_SQL,
  CHECKPOINTS_SQL,
  GET_APPROVAL_SQL,
  approvalFromRow,
  approvalToRow,
  auditPageSql,
  auditRecordFromRow,
  checkAuditBatch,
  checkAuditQuery,
  checkpointFromRow,
  duplicateAudit,
  insertApprovalSql,
  NOTE_APPROVAL_EVENT_SQL,
  APPROVAL_EVENT_REFS_SQL,
  MASKED_COLUMN_PLACES_SQL,
  LIST_MASKED_COLUMN_PLACES_SQL,
  FORGET_MASKED_COLUMN_PLACE_SQL,
  byRuleColumn,
  maskedColumnPlaceFromRow,
  noteMaskedColumnPlacesSql,
  scopedMaskedColumnPlaceFromRow,
  listApprovalsSql,
  countPendingApprovalsSql,
  pagedAudit,
  updateApprovalSql,
  type AuditCursor,
} from '../queries.js';
import {
  GET_SESSION_SQL,
  checkRecordingBatch,
  entryFromRow,
  listSessionsSql,
  sessionEntriesSql,
  sessionFromRow,
} from '../recordings.js';
import {
  StreamBusyError,
  type ApprovalQuery,
  type ApprovalRecord,
  type AuditQuery,
  type AuditRecord,
  type AuditRef,
  type CheckpointRecord,
  type MaskedColumnPlace,
  type ScopedMaskedColumnPlace,
  type RecordingBatch,
  type SessionEntryRecord,
  type SessionQuery,
  type SessionSummary,
  type Store,
} from '../store.js';
import { configureConnection } from './sqlite-writes.js';
import { InlineWriter, ThreadWriter, type Writer } from './writer.js';

const q = () => '?';
/** The requester's issuer in an approval's document (countPendingApprovals). */
const SQLITE_REQUESTER_ISS = "json_extract(doc, '$.requester.iss')";

/** The stores of this process open on one file. */
interface SharedFile {
  stores: Set<SqliteStore>;
  claims: Map<string, SqliteStore>;
}
const openFiles = new Map<string, SharedFile>();

export interface SqliteStoreOptions {
  /** A file path, or ":memory:" (tests). */
  path: string;
  logger: Logger;
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  /** The main thread's connection: reads, and migrations. */
  readonly #db: Database.Database;
  /** Where every other write runs: the writer thread (see the file comment). */
  readonly #writer: Writer;
  readonly #logger: Logger;
  readonly #listeners: ApprovalListeners;
  readonly #shared: SharedFile;
  readonly #key: string;
  #closing: Promise<void> | null = null;

  private constructor(db: Database.Database, key: string, memory: boolean, logger: Logger) {
    this.#db = db;
    this.#key = key;
    this.#logger = logger;
    this.#writer = memory ? new InlineWriter(db) : new ThreadWriter(key, logger);
    this.#listeners = new ApprovalListeners(logger);
    let shared = openFiles.get(key);
    if (!shared) {
      shared = { stores: new Set(), claims: new Map() };
      openFiles.set(key, shared);
    }
    shared.stores.add(this);
    this.#shared = shared;
  }

  /** Opens (creating if needed) the database file; call migrate() before use. */
  static open({ path, logger }: SqliteStoreOptions): SqliteStore {
    let db: Database.Database;
    try {
      db = new Database(path);
    } catch (err) {
      throw new Error(`cannot open the SQLite store at ${path}: ${(err as Error).message} (does the directory exist and is it writable?)`, { cause: err });
    }
    try {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (path !== ':memory:' && mode !== 'wal') {
        logger.warn({ path, journal_mode: mode }, 'SQLite store could not switch to WAL; appends will be slower');
      }
      configureConnection(db);
    } catch (err) {
      db.close();
      throw err;
    }
    const memory = path === ':memory:';
    const key = memory ? `:memory:${Math.random()}` : realpathSync(path);
    return new SqliteStore(db, key, memory, logger.child({ store: 'sqlite' }));
  }

  /**
   * Runs on the main thread's connection: it is called once, at start-up,
   * before any write (which would start the writer thread) is made.
   */
  async migrate(): Promise<void> {
    await runMigrations(this.#migrationDriver());
  }

  #migrationDriver(): MigrationDriver {
    const db = this.#db;
    return {
      dialect: 'sqlite',
      // Each apply() takes SQLite's write lock and re-checks the ledger, which
      // excludes other processes as well as a lock held around the loop would.
      exclusive: (work) => work(),
      ensureLedger: async () => {
        db.exec(LEDGER_SQL.sqlite);
      },
      applied: async () => db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all() as AppliedMigration[],
      apply: async (version, name, sql) =>
        db
          .transaction(() => {
            if (db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?').get(version)) return false;
            db.exec(sql);
            db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(version, name, new Date().toISOString());
            this.#logger.info({ version, name }, 'store migrated');
            return true;
          })
          .immediate(),
    };
  }

  /**
   * Refuses new writes, waits for those already made (each settles as it
   * would have), joins the writer thread, then closes the main connection.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#listeners.clear();
    try {
      await this.#writer.close();
    } finally {
      for (const [stream, owner] of this.#shared.claims) {
        if (owner === this) this.#shared.claims.delete(stream);
      }
      this.#shared.stores.delete(this);
      if (this.#shared.stores.size === 0) openFiles.delete(this.#key);
      this.#db.close();
    }
  }

  // ---- audit ----------------------------------------------------------

  /** In-process only: SQLite has no lock that outlives a transaction. See the file comment. */
  async claimAuditStream(stream: string): Promise<void> {
    const owner = this.#shared.claims.get(stream);
    if (owner && owner !== this) throw new StreamBusyError(stream);
    this.#shared.claims.set(stream, this);
  }

  async auditHead(stream: string): Promise<{ seq: number; hash: string } | null> {
    const row = this.#db.prepare(AUDIT_HEAD_SQL(q)).get(stream) as { seq: number; hash: string } | undefined;
    return row ? { seq: row.seq, hash: row.hash } : null;
  }

  async appendAudit(records: readonly AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    const links = checkAuditBatch(records);
    try {
      // On the writer thread: BEGIN IMMEDIATE, the link check, the inserts, COMMIT (fsync'd).
      await this.#writer.write({ op: 'appendAudit', records, links });
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw duplicateAudit(err);
      throw err;
    }
  }

  readAudit(query: AuditQuery = {}): AsyncIterable<AuditRecord> {
    checkAuditQuery(query);
    return pagedAudit(async (after: AuditCursor | null) => {
      const { text, params } = auditPageSql(q, query, after);
      return (this.#db.prepare(text).all(...params) as Record<string, unknown>[]).map(auditRecordFromRow);
    });
  }

  async auditStreams(): Promise<string[]> {
    return (this.#db.prepare(AUDIT_STREAMS_SQL).all() as { stream: string }[]).map((r) => r.stream);
  }

  async appendCheckpoint(c: CheckpointRecord): Promise<void> {
    await this.#writer.write({
      op: 'run',
      text: 'INSERT INTO audit_checkpoints (stream, seq, hash, time, jws) VALUES (?, ?, ?, ?, ?)',
      params: [c.stream, c.seq, c.hash, c.time, c.jws],
    });
  }

  async checkpoints(stream: string): Promise<CheckpointRecord[]> {
    return (this.#db.prepare(CHECKPOINTS_SQL(q)).all(stream) as Record<string, unknown>[]).map(checkpointFromRow);
  }

  // ---- approvals ------------------------------------------------------

  async createApproval(approval: ApprovalRecord): Promise<void> {
    const { text, params } = insertApprovalSql(q, approvalToRow(approval));
    await this.#writer.write({ op: 'run', text, params });
  }

  async getApproval(id: string): Promise<ApprovalRecord | null> {
    const row = this.#db.prepare(GET_APPROVAL_SQL(q)).get(id) as Record<string, unknown> | undefined;
    return row ? approvalFromRow(row) : null;
  }

  async listApprovals(query: ApprovalQuery = {}): Promise<ApprovalRecord[]> {
    const { text, params } = listApprovalsSql(q, query);
    return (this.#db.prepare(text).all(...params) as Record<string, unknown>[]).map(approvalFromRow);
  }

  async countPendingApprovals(requester: { sub: string; iss: string }, now: string, atMost: number): Promise<number> {
    const { text, params } = countPendingApprovalsSql(q, SQLITE_REQUESTER_ISS, requester, now, atMost);
    return Number((this.#db.prepare(text).get(...params) as { n: number }).n);
  }

  async updateApproval(next: ApprovalRecord, expectedVersion: number): Promise<ApprovalRecord | null> {
    const { text, params } = updateApprovalSql(q, approvalToRow(next, expectedVersion + 1), expectedVersion);
    const row = (await this.#writer.write({ op: 'get', text, params })) as Record<string, unknown> | null;
    if (!row) return null;
    // The update has committed. Listeners run after the caller's await
    // resumes, as they would for a PostgreSQL NOTIFY, never inside this call.
    for (const store of this.#shared.stores) setImmediate(() => store.#listeners.emit(next.id));
    return approvalFromRow(row);
  }

  onApprovalChange(listener: (id: string) => void): () => void {
    return this.#listeners.add(listener);
  }

  async noteApprovalEvent(approvalId: string, ref: AuditRef): Promise<void> {
    await this.#writer.write({ op: 'run', text: NOTE_APPROVAL_EVENT_SQL(q), params: [approvalId, ref.stream, ref.seq] });
  }

  async approvalEventRefs(approvalId: string): Promise<AuditRef[]> {
    return (this.#db.prepare(APPROVAL_EVENT_REFS_SQL(q)).all(approvalId) as Array<{ stream: string; seq: number }>).map(({ stream, seq }) => ({ stream, seq }));
  }

  // ---- masked columns -------------------------------------------------

  async noteMaskedColumnPlaces(scope: string, places: readonly MaskedColumnPlace[]): Promise<void> {
    for (const { text, params } of noteMaskedColumnPlacesSql(q, scope, places)) await this.#writer.write({ op: 'run', text, params });
  }

  async maskedColumnPlaces(scope: string): Promise<MaskedColumnPlace[]> {
    return (this.#db.prepare(MASKED_COLUMN_PLACES_SQL(q)).all(scope) as Record<string, unknown>[]).map(maskedColumnPlaceFromRow);
  }

  async listMaskedColumnPlaces(): Promise<ScopedMaskedColumnPlace[]> {
    return (this.#db.prepare(LIST_MASKED_COLUMN_PLACES_SQL).all() as Record<string, unknown>[]).map(scopedMaskedColumnPlaceFromRow);
  }

  async forgetMaskedColumnPlace(scope: string, tableOid: number, attnum: number): Promise<MaskedColumnPlace[]> {
    const rows = (await this.#writer.write({ op: 'all', text: FORGET_MASKED_COLUMN_PLACE_SQL(q), params: [scope, tableOid, attnum] })) as Record<string, unknown>[];
    return rows.map(maskedColumnPlaceFromRow).sort(byRuleColumn);
  }

  // ---- session recordings ---------------------------------------------

  async appendRecordings(batch: RecordingBatch): Promise<void> {
    if (batch.sessions.length === 0 && batch.entries.length === 0) return;
    checkRecordingBatch(batch);
    // One durable (fsync'd) transaction per batch on the writer thread, like the audit append.
    await this.#writer.write({ op: 'appendRecordings', batch });
  }

  async listSessions(query: SessionQuery = {}): Promise<SessionSummary[]> {
    const { text, params } = listSessionsSql(q, query);
    return (this.#db.prepare(text).all(...params) as Record<string, unknown>[]).map(sessionFromRow);
  }

  async getSession(id: string): Promise<SessionSummary | null> {
    const row = this.#db.prepare(GET_SESSION_SQL(q)).get(id) as Record<string, unknown> | undefined;
    return row ? sessionFromRow(row) : null;
  }

  async sessionEntries(id: string, page: { afterSeq?: number; limit?: number } = {}): Promise<SessionEntryRecord[]> {
    const { text, params } = sessionEntriesSql(q, id, page);
    return (this.#db.prepare(text).all(...params) as Record<string, unknown>[]).map(entryFromRow);
  }

  async auditRecordsAt(refs: readonly AuditRef[]): Promise<AuditRecord[]> {
    const get = this.#db.prepare('SELECT stream, seq, prev, hash, time, event FROM audit_records WHERE stream = ? AND seq = ?');
    const out: AuditRecord[] = [];
    for (const ref of refs) {
      const row = get.get(ref.stream, ref.seq) as Record<string, unknown> | undefined;
      if (row) out.push(auditRecordFromRow(row));
    }
    return out;
  }
}
