/**
 * What both backends share: the SQL that is the same in both dialects but for
 * placeholders, the approval row ↔ record mapping, the checks on an audit
 * batch, and the approval listener set.
 */
import type { Logger } from '../observability/logger.js';
import type { ApprovalQuery, ApprovalRecord, AuditQuery, AuditRecord, CheckpointRecord, MaskedColumnPlace, ScopedMaskedColumnPlace } from './store.js';

/** `?` for SQLite, `$1, $2, …` for PostgreSQL. */
export type Placeholder = (index: number) => string;

export interface Sql {
  text: string;
  params: unknown[];
}

/** Records per readAudit page: memory is O(page) however long the stream. */
export const AUDIT_PAGE_SIZE = 1000;

class Params {
  readonly values: unknown[] = [];
  constructor(private readonly placeholder: Placeholder) {}
  add(value: unknown): string {
    this.values.push(value);
    return this.placeholder(this.values.length);
  }
}

export interface AuditCursor {
  stream: string;
  seq: number;
}

/**
 * One page of readAudit, keyset-paginated on the (stream, seq) primary key:
 * each page is an index range scan starting after the last row seen, so no
 * page costs more than the one before and no server-side cursor is held.
 */
export function auditPageSql(placeholder: Placeholder, query: AuditQuery, after: AuditCursor | null, limit = AUDIT_PAGE_SIZE): Sql {
  const p = new Params(placeholder);
  const where: string[] = [];
  if (query.stream !== undefined) {
    where.push(`stream = ${p.add(query.stream)}`);
    const from = Math.max(query.afterSeq ?? 0, after?.seq ?? 0);
    if (from > 0) where.push(`seq > ${p.add(from)}`);
  } else if (after) {
    where.push(`(stream, seq) > (${p.add(after.stream)}, ${p.add(after.seq)})`);
  }
  if (query.since !== undefined) where.push(`time >= ${p.add(query.since)}`);
  if (query.until !== undefined) where.push(`time <= ${p.add(query.until)}`);
  const text =
    'SELECT stream, seq, prev, hash, time, event FROM audit_records' +
    (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
    ` ORDER BY stream, seq LIMIT ${p.add(limit)}`;
  return { text, params: p.values };
}

export function checkAuditQuery(query: AuditQuery): void {
  if (query.afterSeq !== undefined && query.stream === undefined) {
    throw new Error('readAudit: afterSeq needs a stream (sequence numbers are per stream)');
  }
}

/** Pages through `fetch` until a short page; the caller sees one record at a time. */
export async function* pagedAudit(fetch: (after: AuditCursor | null) => Promise<AuditRecord[]>, pageSize = AUDIT_PAGE_SIZE): AsyncGenerator<AuditRecord> {
  let after: AuditCursor | null = null;
  for (;;) {
    const page = await fetch(after);
    yield* page;
    const last = page.at(-1);
    if (page.length < pageSize || !last) return;
    after = { stream: last.stream, seq: last.seq };
  }
}

export const AUDIT_HEAD_SQL = (placeholder: Placeholder): string =>
  `SELECT seq, hash FROM audit_records WHERE stream = ${placeholder(1)} ORDER BY seq DESC LIMIT 1`;

/**
 * Distinct streams, of the records and of the checkpoints (a stream whose
 * records were all deleted still has the checkpoints that vouch for them,
 * which verify must see), each by a loose index scan (one index probe per
 * stream), since neither backend skips through an index for DISTINCT on
 * millions of rows.
 */
export const AUDIT_STREAMS_SQL = `
  WITH RECURSIVE r(stream) AS (
    SELECT min(stream) FROM audit_records
    UNION ALL
    SELECT (SELECT min(stream) FROM audit_records WHERE stream > r.stream) FROM r WHERE r.stream IS NOT NULL
  ), c(stream) AS (
    SELECT min(stream) FROM audit_checkpoints
    UNION ALL
    SELECT (SELECT min(stream) FROM audit_checkpoints WHERE stream > c.stream) FROM c WHERE c.stream IS NOT NULL
  )
  SELECT stream FROM r WHERE stream IS NOT NULL
  UNION
  SELECT stream FROM c WHERE stream IS NOT NULL
  ORDER BY stream`;

export const CHECKPOINTS_SQL = (placeholder: Placeholder): string =>
  `SELECT stream, seq, hash, time, jws FROM audit_checkpoints WHERE stream = ${placeholder(1)} ORDER BY seq, time, id`;

/** int8 columns arrive from pg as strings; sequence numbers and ms times fit a double. */
export function auditRecordFromRow(row: Record<string, unknown>): AuditRecord {
  return {
    stream: row['stream'] as string,
    seq: Number(row['seq']),
    prev: row['prev'] as string,
    hash: row['hash'] as string,
    time: Number(row['time']),
    event: row['event'] as string,
  };
}

export function checkpointFromRow(row: Record<string, unknown>): CheckpointRecord {
  return {
    stream: row['stream'] as string,
    seq: Number(row['seq']),
    hash: row['hash'] as string,
    time: Number(row['time']),
    jws: row['jws'] as string,
  };
}

/** The first record of each stream in a batch: the one that must link to what is stored. */
export interface BatchLink {
  stream: string;
  seq: number;
  prev: string;
}

/**
 * Checks what can be checked without the database: contiguous sequence
 * numbers and prev = previous hash within each stream of the batch. Returns,
 * per stream, the first record, which the backend links to the stored head.
 */
export function checkAuditBatch(records: readonly AuditRecord[]): BatchLink[] {
  const last = new Map<string, AuditRecord>();
  const firsts: BatchLink[] = [];
  for (const r of records) {
    if (!Number.isSafeInteger(r.seq) || r.seq < 1) throw new Error(`audit append: stream "${r.stream}" has an invalid seq ${r.seq}`);
    const before = last.get(r.stream);
    if (!before) {
      firsts.push({ stream: r.stream, seq: r.seq, prev: r.prev });
    } else if (r.seq !== before.seq + 1 || r.prev !== before.hash) {
      throw new Error(`audit append: stream "${r.stream}" seq ${r.seq} does not follow seq ${before.seq} in the same batch`);
    }
    last.set(r.stream, r);
  }
  return firsts;
}

export function notContinuingHead(link: BatchLink): Error {
  return new Error(
    `audit append: stream "${link.stream}" seq ${link.seq} does not continue the stored chain ` +
      `(no seq ${link.seq - 1} with hash ${link.prev}); another writer may share this stream`,
  );
}

export function duplicateAudit(cause: unknown): Error {
  return new Error('audit append: a record with the same (stream, seq) is already stored; another writer may share this stream', { cause });
}

// ---- approvals ----------------------------------------------------------

/** The indexed columns beside the JSON document. */
export interface ApprovalRow {
  id: string;
  status: string;
  requester_sub: string;
  action_hash: string;
  /** Normalised ISO-8601 UTC, so that text comparison is time order in SQLite. */
  expires_at: string;
  created_at: string;
  version: number;
  doc: string;
}

function isoUtc(value: string, field: string): string {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new Error(`approval: ${field} is not an ISO-8601 time: ${JSON.stringify(value)}`);
  return new Date(ms).toISOString();
}

export function approvalToRow(record: ApprovalRecord, version = record.version): ApprovalRow {
  return {
    id: record.id,
    status: record.status,
    requester_sub: record.requester.sub,
    action_hash: record.action_hash,
    expires_at: isoUtc(record.expires_at, 'expires_at'),
    created_at: isoUtc(record.created_at, 'created_at'),
    version,
    doc: JSON.stringify({ ...record, version }),
  };
}

/** The column order of {@link approvalToRow} for INSERT statements. */
export const APPROVAL_COLUMNS = ['id', 'status', 'requester_sub', 'action_hash', 'expires_at', 'created_at', 'version', 'doc'] as const;

export function approvalRowValues(row: ApprovalRow): unknown[] {
  return APPROVAL_COLUMNS.map((c) => row[c]);
}

/** SQLite hands back the document as text, PostgreSQL's jsonb as an object. */
export function approvalFromRow(row: Record<string, unknown>): ApprovalRecord {
  const doc = row['doc'];
  const record = (typeof doc === 'string' ? JSON.parse(doc) : doc) as ApprovalRecord;
  // The column is what compare-and-set checks, so it is the truth.
  return { ...record, version: Number(row['version']) };
}

export function insertApprovalSql(placeholder: Placeholder, row: ApprovalRow): Sql {
  const p = new Params(placeholder);
  const values = approvalRowValues(row).map((v) => p.add(v));
  return { text: `INSERT INTO approvals (${APPROVAL_COLUMNS.join(', ')}) VALUES (${values.join(', ')})`, params: p.values };
}

/** Compare-and-set: matches no row unless the stored version is still `expected`. */
export function updateApprovalSql(placeholder: Placeholder, row: ApprovalRow, expected: number): Sql {
  const p = new Params(placeholder);
  const sets = APPROVAL_COLUMNS.filter((c) => c !== 'id').map((c) => `${c} = ${p.add(row[c])}`);
  const text = `UPDATE approvals SET ${sets.join(', ')} WHERE id = ${p.add(row.id)} AND version = ${p.add(expected)} RETURNING doc, version`;
  return { text, params: p.values };
}

export const GET_APPROVAL_SQL = (placeholder: Placeholder): string => `SELECT doc, version FROM approvals WHERE id = ${placeholder(1)}`;

export const NOTE_APPROVAL_EVENT_SQL = (placeholder: Placeholder): string =>
  `INSERT INTO approval_events (approval_id, stream, seq) VALUES (${placeholder(1)}, ${placeholder(2)}, ${placeholder(3)}) ON CONFLICT DO NOTHING`;

export const APPROVAL_EVENT_REFS_SQL = (placeholder: Placeholder): string =>
  `SELECT stream, seq FROM approval_events WHERE approval_id = ${placeholder(1)} ORDER BY stream, seq`;

/**
 * Places to note, PLACES_PER_INSERT at a time: a rule's column can have
 * tens of thousands of places (a table per tenant, a partition per day),
 * and one statement holds at most 32,766 parameters in SQLite (65,535 in
 * PostgreSQL). Each insert stands alone: a place noted twice is kept once.
 */
export function noteMaskedColumnPlacesSql(placeholder: Placeholder, scope: string, places: readonly MaskedColumnPlace[]): Sql[] {
  const inserts: Sql[] = [];
  for (let start = 0; start < places.length; start += PLACES_PER_INSERT) {
    const p = new Params(placeholder);
    const rows = places.slice(start, start + PLACES_PER_INSERT)
      .map((place) => `(${p.add(scope)}, ${p.add(place.rule_column)}, ${p.add(place.table_oid)}, ${p.add(place.attnum)}, ${p.add(place.noted_at)})`);
    inserts.push({
      text: `INSERT INTO masked_column_places (scope, rule_column, table_oid, attnum, noted_at) VALUES ${rows.join(', ')} ON CONFLICT DO NOTHING`,
      params: p.values,
    });
  }
  return inserts;
}

const PLACES_PER_INSERT = 1000;

export const MASKED_COLUMN_PLACES_SQL = (placeholder: Placeholder): string =>
  `SELECT rule_column, table_oid, attnum, noted_at FROM masked_column_places WHERE scope = ${placeholder(1)} ORDER BY rule_column, table_oid, attnum`;

/** Both backends compare these text columns byte by byte (PostgreSQL's are COLLATE "C"), so both list in one order. */
export const LIST_MASKED_COLUMN_PLACES_SQL =
  'SELECT scope, rule_column, table_oid, attnum, noted_at FROM masked_column_places ORDER BY scope, rule_column, table_oid, attnum';

/** RETURNING gives no order: the backend sorts with {@link byRuleColumn}. */
export const FORGET_MASKED_COLUMN_PLACE_SQL = (placeholder: Placeholder): string =>
  `DELETE FROM masked_column_places WHERE scope = ${placeholder(1)} AND table_oid = ${placeholder(2)} AND attnum = ${placeholder(3)} ` +
  'RETURNING rule_column, table_oid, attnum, noted_at';

/** A stored place; PostgreSQL returns bigint columns as strings. */
export function maskedColumnPlaceFromRow(row: Record<string, unknown>): MaskedColumnPlace {
  return {
    rule_column: String(row.rule_column),
    table_oid: Number(row.table_oid),
    attnum: Number(row.attnum),
    noted_at: Number(row.noted_at),
  };
}

export function scopedMaskedColumnPlaceFromRow(row: Record<string, unknown>): ScopedMaskedColumnPlace {
  return { scope: String(row.scope), ...maskedColumnPlaceFromRow(row) };
}

/** UTF-16 code-unit order: the stores' byte order, for any name without characters past U+D7FF. */
export function byRuleColumn(a: MaskedColumnPlace, b: MaskedColumnPlace): number {
  return a.rule_column < b.rule_column ? -1 : a.rule_column > b.rule_column ? 1 : 0;
}

export function listApprovalsSql(placeholder: Placeholder, query: ApprovalQuery): Sql {
  const p = new Params(placeholder);
  const where: string[] = [];
  if (query.status !== undefined) where.push(`status = ${p.add(query.status)}`);
  if (query.requester_sub !== undefined) where.push(`requester_sub = ${p.add(query.requester_sub)}`);
  if (query.action_hash !== undefined) where.push(`action_hash = ${p.add(query.action_hash)}`);
  if (query.expires_before !== undefined) where.push(`expires_at <= ${p.add(isoUtc(query.expires_before, 'expires_before'))}`);
  if (query.after !== undefined) {
    const at = isoUtc(query.after.created_at, 'after.created_at');
    // A row value, not (created_at < … OR (created_at = … AND id < …)): both backends then seek to the
    // page's start in (status, created_at, id) or (created_at, id) instead of walking every newer entry.
    where.push(`(created_at, id) < (${p.add(at)}, ${p.add(query.after.id)})`);
  }
  let text = 'SELECT doc, version FROM approvals' + (where.length ? ` WHERE ${where.join(' AND ')}` : '') + ' ORDER BY created_at DESC, id DESC';
  if (query.limit !== undefined) {
    if (!Number.isSafeInteger(query.limit) || query.limit < 0) throw new Error(`listApprovals: limit must be a non-negative integer, got ${query.limit}`);
    text += ` LIMIT ${p.add(query.limit)}`;
  }
  return { text, params: p.values };
}

/**
 * The requester's pending requests still in their window, counted up to `atMost` (the cap's check needs to
 * know no more, and a store filled before the cap existed is not read to its end). A subject is unique only
 * within its issuer: `issuer` is the dialect's expression for the document's requester.iss.
 */
export function countPendingApprovalsSql(
  placeholder: Placeholder,
  issuer: string,
  requester: { sub: string; iss: string },
  now: string,
  atMost: number,
): Sql {
  if (!Number.isSafeInteger(atMost) || atMost < 0) throw new Error(`countPendingApprovals: atMost must be a non-negative integer, got ${atMost}`);
  const p = new Params(placeholder);
  const text = 'SELECT count(*) AS n FROM (SELECT 1 FROM approvals WHERE ' +
    `requester_sub = ${p.add(requester.sub)} AND status = 'pending' AND expires_at > ${p.add(isoUtc(now, 'now'))} AND ${issuer} = ${p.add(requester.iss)} ` +
    `LIMIT ${p.add(atMost)}) AS pending`;
  return { text, params: p.values };
}

/**
 * The approval-change subscribers of one store. A throwing listener is
 * logged and does not keep the others from hearing of the change.
 */
export class ApprovalListeners {
  readonly #listeners = new Set<(id: string) => void>();

  constructor(private readonly logger: Logger) {}

  add(listener: (id: string) => void): () => void {
    // A wrapper per subscription, so the same function subscribed twice is two subscriptions.
    const entry = (id: string) => listener(id);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  emit(id: string): void {
    for (const listener of this.#listeners) {
      try {
        listener(id);
      } catch (err) {
        this.logger.error({ err, approval: id }, 'approval change listener threw');
      }
    }
  }

  clear(): void {
    this.#listeners.clear();
  }
}
