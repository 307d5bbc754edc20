/**
 * The embedded store: one SQLite file, for a gateway that runs as one process.
 *
 * Durability: WAL with synchronous=FULL, so a commit returns only after the
 * WAL is fsync'd; an acknowledged append survives kill -9 and power loss.
 * better-sqlite3 is synchronous, so each commit blocks the event loop for one
 * fsync; the audit log batches appends to pay that once per batch.
 *
 * One process: approval notifications and stream claims are in-process. Two
 * Store instances on the same file in one process do see each other's
 * approval changes and claims (a registry keyed by the file's real path);
 * another process writing the same file is neither notified nor excluded,
 * beyond the append checks that refuse a forked chain. Processes that share
 * state use the PostgreSQL store.
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
  listApprovalsSql,
  notContinuingHead,
  pagedAudit,
  updateApprovalSql,
  type AuditCursor,
  type BatchLink,
} from '../queries.js';
import {
  ENTRY_COLUMNS,
  GET_SESSION_SQL,
  SESSION_COLUMNS,
  checkRecordingBatch,
  entryFromRow,
  entryRowValues,
  listSessionsSql,
  sessionEntriesSql,
  sessionFromRow,
  sessionRowValues,
  sessionUpsertSet,
} from '../recordings.js';
import {
  StreamBusyError,
  type ApprovalQuery,
  type ApprovalRecord,
  type AuditQuery,
  type AuditRecord,
  type AuditRef,
  type CheckpointRecord,
  type RecordingBatch,
  type SessionEntryRecord,
  type SessionQuery,
  type SessionSummary,
  type Store,
} from '../store.js';

const q = () => '?';

type AppendAuditTransaction = Database.Transaction<(records: readonly AuditRecord[], links: readonly BatchLink[]) => void>;
type AppendRecordingsTransaction = Database.Transaction<(batch: RecordingBatch) => void>;

/** How long a write waits for another connection's lock before SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

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
  readonly #db: Database.Database;
  readonly #logger: Logger;
  readonly #listeners: ApprovalListeners;
  readonly #shared: SharedFile;
  readonly #key: string;
  #closed = false;
  /** The audit append transaction, prepared on first use and kept: the audit log calls it once per batch. */
  #appendAudit: AppendAuditTransaction | null = null;
  /** The recordings append transaction, prepared on first use: the recorder calls it once per batch. */
  #appendRecordings: AppendRecordingsTransaction | null = null;

  private constructor(db: Database.Database, key: string, logger: Logger) {
    this.#db = db;
    this.#key = key;
    this.#logger = logger;
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
      db.pragma('synchronous = FULL');
      // macOS: a plain fsync does not reach the platter; F_FULLFSYNC does. No-op elsewhere.
      db.pragma('fullfsync = ON');
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.pragma('foreign_keys = OFF');
    } catch (err) {
      db.close();
      throw err;
    }
    const key = path === ':memory:' ? `:memory:${Math.random()}` : realpathSync(path);
    return new SqliteStore(db, key, logger.child({ store: 'sqlite' }));
  }

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

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    for (const [stream, owner] of this.#shared.claims) {
      if (owner === this) this.#shared.claims.delete(stream);
    }
    this.#shared.stores.delete(this);
    if (this.#shared.stores.size === 0) openFiles.delete(this.#key);
    this.#db.close();
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
    this.#appendAudit ??= this.#prepareAppendAudit();
    try {
      // BEGIN IMMEDIATE … COMMIT: one durable transaction per batch.
      this.#appendAudit.immediate(records, links);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw duplicateAudit(err);
      throw err;
    }
  }

  #prepareAppendAudit(): AppendAuditTransaction {
    const link = this.#db.prepare('SELECT 1 FROM audit_records WHERE stream = ? AND seq = ? AND hash = ?');
    const insert = this.#db.prepare('INSERT INTO audit_records (stream, seq, prev, hash, time, event) VALUES (?, ?, ?, ?, ?, ?)');
    return this.#db.transaction((records: readonly AuditRecord[], links: readonly BatchLink[]) => {
      for (const l of links) {
        if (l.seq > 1 && !link.get(l.stream, l.seq - 1, l.prev)) throw notContinuingHead(l);
      }
      for (let i = 0; i < records.length; i++) {
        const r = records[i]!;
        insert.run(r.stream, r.seq, r.prev, r.hash, r.time, r.event);
      }
    });
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
    this.#db.prepare('INSERT INTO audit_checkpoints (stream, seq, hash, time, jws) VALUES (?, ?, ?, ?, ?)').run(c.stream, c.seq, c.hash, c.time, c.jws);
  }

  async checkpoints(stream: string): Promise<CheckpointRecord[]> {
    return (this.#db.prepare(CHECKPOINTS_SQL(q)).all(stream) as Record<string, unknown>[]).map(checkpointFromRow);
  }

  // ---- approvals ------------------------------------------------------

  async createApproval(approval: ApprovalRecord): Promise<void> {
    const { text, params } = insertApprovalSql(q, approvalToRow(approval));
    this.#db.prepare(text).run(...params);
  }

  async getApproval(id: string): Promise<ApprovalRecord | null> {
    const row = this.#db.prepare(GET_APPROVAL_SQL(q)).get(id) as Record<string, unknown> | undefined;
    return row ? approvalFromRow(row) : null;
  }

  async listApprovals(query: ApprovalQuery = {}): Promise<ApprovalRecord[]> {
    const { text, params } = listApprovalsSql(q, query);
    return (this.#db.prepare(text).all(...params) as Record<string, unknown>[]).map(approvalFromRow);
  }

  async updateApproval(next: ApprovalRecord, expectedVersion: number): Promise<ApprovalRecord | null> {
    const { text, params } = updateApprovalSql(q, approvalToRow(next, expectedVersion + 1), expectedVersion);
    const row = this.#db.prepare(text).get(...params) as Record<string, unknown> | undefined;
    if (!row) return null;
    // Listeners run after the caller's await resumes, as they would for a
    // PostgreSQL NOTIFY, never inside this call.
    for (const store of this.#shared.stores) setImmediate(() => store.#listeners.emit(next.id));
    return approvalFromRow(row);
  }

  onApprovalChange(listener: (id: string) => void): () => void {
    return this.#listeners.add(listener);
  }

  // ---- session recordings ---------------------------------------------

  async appendRecordings(batch: RecordingBatch): Promise<void> {
    if (batch.sessions.length === 0 && batch.entries.length === 0) return;
    checkRecordingBatch(batch);
    this.#appendRecordings ??= this.#prepareAppendRecordings();
    // One durable (fsync'd) transaction per batch, like the audit append.
    this.#appendRecordings.immediate(batch);
  }

  #prepareAppendRecordings(): AppendRecordingsTransaction {
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
