/**
 * The shared store: PostgreSQL, for several gateway processes.
 *
 * Queries go through a pool. Two connections are kept apart from it because
 * their state is per session: the LISTEN for approval changes (listener.ts)
 * and the advisory locks that claim audit streams (stream-claims.ts).
 * synchronous_commit is left at the server's setting (on), so a commit is
 * acknowledged only once its WAL is flushed.
 */
import pg from 'pg';
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
  notContinuingHead,
  pagedAudit,
  updateApprovalSql,
  type BatchLink,
} from '../queries.js';
import {
  ENTRY_COLUMNS,
  GET_SESSION_SQL,
  SESSION_COLUMNS,
  checkRecordingBatch,
  entryFromRow,
  listSessionsSql,
  sessionEntriesSql,
  sessionFromRow,
  sessionUpsertSet,
} from '../recordings.js';
import type {
  ApprovalQuery,
  ApprovalRecord,
  AuditQuery,
  AuditRecord,
  AuditRef,
  CheckpointRecord,
  MaskedColumnPlace,
  RecordingBatch,
  ScopedMaskedColumnPlace,
  SessionEntryRecord,
  SessionQuery,
  SessionSummary,
  Store,
} from '../store.js';
import { PgListener } from './listener.js';
import { PgStreamClaims } from './stream-claims.js';

const $ = (n: number) => `$${n}`;
/** The requester's issuer in an approval's document (countPendingApprovals). */
const POSTGRES_REQUESTER_ISS = "(doc -> 'requester' ->> 'iss')";

export const APPROVALS_CHANNEL = 'gatehouse_approvals';

/** Serialises migrations across processes; a fixed key in the same namespace scheme as the stream claims. */
const MIGRATION_LOCK = "hashtextextended('gatehouse.migrations', 0)";

/**
 * One statement, so one implicit transaction: all rows or none. The batch
 * arrives as one array per column (a handful of parameters however many
 * rows), and is inserted only if each stream's first record links to the
 * stored row before it; otherwise nothing is inserted and the caller is told.
 */
const APPEND_SQL = `
  INSERT INTO audit_records (stream, seq, prev, hash, time, event)
  SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::int8[], $6::text[])
  WHERE NOT EXISTS (
    SELECT 1 FROM unnest($7::text[], $8::int8[], $9::text[]) AS link(stream, seq, prev)
    WHERE link.seq > 1 AND NOT EXISTS (
      SELECT 1 FROM audit_records r WHERE r.stream = link.stream AND r.seq = link.seq - 1 AND r.hash = link.prev))`;

/**
 * A recorder batch in one statement, so one transaction and one round trip:
 * the headers are upserted and the entries inserted (ones already stored are
 * left alone, so a retried batch is harmless), each from one array per
 * column. The two parts touch different tables, so neither needs to see the
 * other's rows.
 */
const SESSION_TYPES = ['text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'int8', 'int8', 'text', 'int4', 'text'] as const;
const ENTRY_TYPES = ['text', 'int8', 'int8', 'text', 'text'] as const;
const APPEND_RECORDINGS_SQL = `
  WITH sessions AS (
    INSERT INTO session_recordings (${SESSION_COLUMNS.join(', ')})
    SELECT * FROM unnest(${SESSION_TYPES.map((t, i) => `$${i + 1}::${t}[]`).join(', ')})
    ${sessionUpsertSet('GREATEST')}
  )
  INSERT INTO session_entries (${ENTRY_COLUMNS.join(', ')})
  SELECT * FROM unnest(${ENTRY_TYPES.map((t, i) => `$${SESSION_TYPES.length + i + 1}::${t}[]`).join(', ')})
  ON CONFLICT (session_id, seq) DO NOTHING`;

const AUDIT_AT_SQL = `
  SELECT r.stream, r.seq, r.prev, r.hash, r.time, r.event
  FROM unnest($1::text[], $2::int8[]) AS ref(stream, seq)
  JOIN audit_records r ON r.stream = ref.stream AND r.seq = ref.seq`;

export interface PostgresStoreOptions {
  connectionString: string;
  logger: Logger;
}

export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly #pool: pg.Pool;
  readonly #logger: Logger;
  readonly #listeners: ApprovalListeners;
  readonly #listener: PgListener;
  readonly #claims: PgStreamClaims;
  #closed = false;

  private constructor({ connectionString, logger }: PostgresStoreOptions) {
    this.#logger = logger;
    this.#pool = new pg.Pool({ connectionString });
    // An idle client's error would otherwise be an unhandled 'error' event and end the process.
    this.#pool.on('error', (err) => logger.warn({ err: { message: err.message } }, 'idle PostgreSQL store connection failed'));
    this.#listeners = new ApprovalListeners(logger);
    this.#listener = new PgListener({ connectionString, channel: APPROVALS_CHANNEL, logger, onNotify: (id) => this.#listeners.emit(id) });
    this.#claims = new PgStreamClaims(connectionString, logger);
  }

  /**
   * Connects, and LISTENs before resolving: a subscriber added after open()
   * hears every change committed from then on.
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore({ ...options, logger: options.logger.child({ store: 'postgres' }) });
    try {
      await store.#listener.start();
    } catch (err) {
      await store.close();
      throw new Error(`cannot connect to the PostgreSQL store: ${(err as Error).message}`, { cause: err });
    }
    return store;
  }

  async migrate(): Promise<void> {
    const client = await this.#pool.connect();
    try {
      await runMigrations(this.#migrationDriver(client));
    } finally {
      client.release();
    }
  }

  #migrationDriver(client: pg.PoolClient): MigrationDriver {
    return {
      dialect: 'postgres',
      // A session lock around the whole run: even CREATE TABLE IF NOT EXISTS
      // races with itself across sessions.
      exclusive: async (work) => {
        await client.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK})`);
        try {
          await work();
        } finally {
          await client.query(`SELECT pg_advisory_unlock(${MIGRATION_LOCK})`);
        }
      },
      ensureLedger: async () => {
        await client.query(LEDGER_SQL.postgres);
      },
      applied: async () => (await client.query<AppliedMigration>('SELECT version, name FROM schema_migrations ORDER BY version')).rows,
      apply: async (version, name, sql) => {
        await client.query('BEGIN');
        try {
          await client.query(sql);
          await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())', [version, name]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw err;
        }
        this.#logger.info({ version, name }, 'store migrated');
        return true;
      },
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    await Promise.all([this.#listener.close(), this.#claims.close()]);
    await this.#pool.end();
  }

  // ---- audit ----------------------------------------------------------

  async claimAuditStream(stream: string): Promise<void> {
    await this.#claims.claim(stream);
  }

  async auditHead(stream: string): Promise<{ seq: number; hash: string } | null> {
    const { rows } = await this.#pool.query(AUDIT_HEAD_SQL($), [stream]);
    const row = rows[0] as { seq: string; hash: string } | undefined;
    return row ? { seq: Number(row.seq), hash: row.hash } : null;
  }

  async appendAudit(records: readonly AuditRecord[]): Promise<void> {
    if (records.length === 0) return;
    const links = checkAuditBatch(records);
    await this.#claims.ensureHeld(links.map((l) => l.stream));
    let inserted: number;
    try {
      const result = await this.#pool.query(APPEND_SQL, [
        records.map((r) => r.stream),
        records.map((r) => r.seq),
        records.map((r) => r.prev),
        records.map((r) => r.hash),
        records.map((r) => r.time),
        records.map((r) => r.event),
        links.map((l) => l.stream),
        links.map((l) => l.seq),
        links.map((l) => l.prev),
      ]);
      inserted = result.rowCount ?? 0;
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw duplicateAudit(err);
      throw err;
    }
    if (inserted !== records.length) throw notContinuingHead(await this.#brokenLink(links));
  }

  /** Which link failed, for the error message; only on the failure path. */
  async #brokenLink(links: BatchLink[]): Promise<BatchLink> {
    for (const link of links) {
      if (link.seq === 1) continue;
      const { rowCount } = await this.#pool.query('SELECT 1 FROM audit_records WHERE stream = $1 AND seq = $2 AND hash = $3', [link.stream, link.seq - 1, link.prev]);
      if (!rowCount) return link;
    }
    return links[0]!;
  }

  readAudit(query: AuditQuery = {}): AsyncIterable<AuditRecord> {
    checkAuditQuery(query);
    return pagedAudit(async (after) => {
      const { text, params } = auditPageSql($, query, after);
      return (await this.#pool.query(text, params)).rows.map(auditRecordFromRow);
    });
  }

  async auditStreams(): Promise<string[]> {
    return (await this.#pool.query<{ stream: string }>(AUDIT_STREAMS_SQL)).rows.map((r) => r.stream);
  }

  async appendCheckpoint(c: CheckpointRecord): Promise<void> {
    await this.#pool.query('INSERT INTO audit_checkpoints (stream, seq, hash, time, jws) VALUES ($1, $2, $3, $4, $5)', [c.stream, c.seq, c.hash, c.time, c.jws]);
  }

  async checkpoints(stream: string): Promise<CheckpointRecord[]> {
    return (await this.#pool.query(CHECKPOINTS_SQL($), [stream])).rows.map(checkpointFromRow);
  }

  // ---- approvals ------------------------------------------------------

  async createApproval(approval: ApprovalRecord): Promise<void> {
    const { text, params } = insertApprovalSql($, approvalToRow(approval));
    await this.#pool.query(text, params);
  }

  async getApproval(id: string): Promise<ApprovalRecord | null> {
    const { rows } = await this.#pool.query(GET_APPROVAL_SQL($), [id]);
    return rows[0] ? approvalFromRow(rows[0]) : null;
  }

  async listApprovals(query: ApprovalQuery = {}): Promise<ApprovalRecord[]> {
    const { text, params } = listApprovalsSql($, query);
    return (await this.#pool.query(text, params)).rows.map(approvalFromRow);
  }

  async countPendingApprovals(requester: { sub: string; iss: string }, now: string, atMost: number): Promise<number> {
    const { text, params } = countPendingApprovalsSql($, POSTGRES_REQUESTER_ISS, requester, now, atMost);
    return Number((await this.#pool.query(text, params)).rows[0].n);
  }

  /**
   * One statement, so the update and its NOTIFY commit together (a listener
   * never hears of a change it cannot read yet) in one round trip.
   */
  async updateApproval(next: ApprovalRecord, expectedVersion: number): Promise<ApprovalRecord | null> {
    const update = updateApprovalSql($, approvalToRow(next, expectedVersion + 1), expectedVersion);
    const n = update.params.length;
    const text = `WITH updated AS (${update.text}) SELECT doc, version, pg_notify(${$(n + 1)}, ${$(n + 2)}) FROM updated`;
    const { rows } = await this.#pool.query(text, [...update.params, APPROVALS_CHANNEL, next.id]);
    return rows[0] ? approvalFromRow(rows[0]) : null;
  }

  onApprovalChange(listener: (id: string) => void): () => void {
    return this.#listeners.add(listener);
  }

  async noteApprovalEvent(approvalId: string, ref: AuditRef): Promise<void> {
    await this.#pool.query(NOTE_APPROVAL_EVENT_SQL($), [approvalId, ref.stream, ref.seq]);
  }

  async approvalEventRefs(approvalId: string): Promise<AuditRef[]> {
    const { rows } = await this.#pool.query<{ stream: string; seq: string }>(APPROVAL_EVENT_REFS_SQL($), [approvalId]);
    return rows.map(({ stream, seq }) => ({ stream, seq: Number(seq) }));
  }

  // ---- masked columns -------------------------------------------------

  async noteMaskedColumnPlaces(scope: string, places: readonly MaskedColumnPlace[]): Promise<void> {
    for (const { text, params } of noteMaskedColumnPlacesSql($, scope, places)) await this.#pool.query(text, params);
  }

  async maskedColumnPlaces(scope: string): Promise<MaskedColumnPlace[]> {
    const { rows } = await this.#pool.query(MASKED_COLUMN_PLACES_SQL($), [scope]);
    return rows.map(maskedColumnPlaceFromRow);
  }

  async listMaskedColumnPlaces(): Promise<ScopedMaskedColumnPlace[]> {
    return (await this.#pool.query(LIST_MASKED_COLUMN_PLACES_SQL)).rows.map(scopedMaskedColumnPlaceFromRow);
  }

  async forgetMaskedColumnPlace(scope: string, tableOid: number, attnum: number): Promise<MaskedColumnPlace[]> {
    const { rows } = await this.#pool.query(FORGET_MASKED_COLUMN_PLACE_SQL($), [scope, tableOid, attnum]);
    return rows.map(maskedColumnPlaceFromRow).sort(byRuleColumn);
  }

  // ---- session recordings ---------------------------------------------

  async appendRecordings(batch: RecordingBatch): Promise<void> {
    if (batch.sessions.length === 0 && batch.entries.length === 0) return;
    checkRecordingBatch(batch);
    const s = batch.sessions;
    const e = batch.entries;
    await this.#pool.query(APPEND_RECORDINGS_SQL, [
      s.map((r) => r.id),
      s.map((r) => r.protocol),
      s.map((r) => r.format),
      s.map((r) => r.target),
      s.map((r) => r.target_kind),
      s.map((r) => r.sub),
      s.map((r) => r.act_sub),
      s.map((r) => JSON.stringify(r.groups)),
      s.map((r) => r.source_ip),
      s.map((r) => r.gateway),
      s.map((r) => r.started_at),
      s.map((r) => r.ended_at),
      s.map((r) => r.end_reason),
      s.map((r) => r.dropped_entries),
      s.map((r) => r.iss),
      e.map((r) => r.session_id),
      e.map((r) => r.seq),
      e.map((r) => r.time),
      e.map((r) => r.decision),
      e.map((r) => r.entry),
    ]);
  }

  async listSessions(query: SessionQuery = {}): Promise<SessionSummary[]> {
    const { text, params } = listSessionsSql($, query);
    return (await this.#pool.query(text, params)).rows.map(sessionFromRow);
  }

  async getSession(id: string): Promise<SessionSummary | null> {
    const { rows } = await this.#pool.query(GET_SESSION_SQL($), [id]);
    return rows[0] ? sessionFromRow(rows[0]) : null;
  }

  async sessionEntries(id: string, page: { afterSeq?: number; limit?: number } = {}): Promise<SessionEntryRecord[]> {
    const { text, params } = sessionEntriesSql($, id, page);
    return (await this.#pool.query(text, params)).rows.map(entryFromRow);
  }

  async auditRecordsAt(refs: readonly AuditRef[]): Promise<AuditRecord[]> {
    if (refs.length === 0) return [];
    const { rows } = await this.#pool.query(AUDIT_AT_SQL, [refs.map((r) => r.stream), refs.map((r) => r.seq)]);
    return rows.map(auditRecordFromRow);
  }
}
