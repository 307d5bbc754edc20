/**
 * Session recordings in the store: the SQL both backends share (but for
 * placeholders) and the row ↔ record mapping. The recorder
 * (engine/recording/) decides what goes in an entry; the store only keeps
 * bytes and a few indexed columns.
 */
import type { Placeholder, Sql } from './queries.js';
import type { RecordingBatch, SessionEntryRecord, SessionQuery, SessionRecordingRow, SessionSummary } from './store.js';

/** The column order of session_recordings for INSERT statements. */
export const SESSION_COLUMNS = [
  'id', 'protocol', 'format', 'target', 'target_kind', 'sub', 'act_sub', 'groups',
  'source_ip', 'gateway', 'started_at', 'ended_at', 'end_reason', 'dropped_entries', 'iss',
] as const;

export const ENTRY_COLUMNS = ['session_id', 'seq', 'time', 'decision', 'entry'] as const;

export const MAX_SESSION_PAGE = 10_000;

/** A row as bound: groups as JSON text. */
export function sessionRowValues(row: SessionRecordingRow): unknown[] {
  return SESSION_COLUMNS.map((c) => (c === 'groups' ? JSON.stringify(row.groups) : row[c]));
}

export function entryRowValues(row: SessionEntryRecord): unknown[] {
  return [row.session_id, row.seq, row.time, row.decision, row.entry];
}

/**
 * The upsert's conflict clause: a session's header only ever gains an end
 * and more dropped entries, so replaying an older write cannot undo a newer
 * one.
 */
export function sessionUpsertSet(greatest: 'max' | 'GREATEST'): string {
  return `ON CONFLICT (id) DO UPDATE SET
    ended_at = COALESCE(excluded.ended_at, session_recordings.ended_at),
    end_reason = COALESCE(excluded.end_reason, session_recordings.end_reason),
    dropped_entries = ${greatest}(excluded.dropped_entries, session_recordings.dropped_entries)`;
}

/** Checks what can be checked before writing: positive whole seqs, one header per session. */
export function checkRecordingBatch(batch: RecordingBatch): void {
  const ids = new Set<string>();
  for (const s of batch.sessions) {
    if (ids.has(s.id)) throw new Error(`recording append: session "${s.id}" appears twice in one batch`);
    ids.add(s.id);
  }
  for (const e of batch.entries) {
    if (!Number.isSafeInteger(e.seq) || e.seq < 1) throw new Error(`recording append: session "${e.session_id}" has an invalid seq ${e.seq}`);
  }
}

const SUMMARY_SELECT = `SELECT s.id, s.protocol, s.format, s.target, s.target_kind, s.sub, s.act_sub, s.groups, s.source_ip,
  s.gateway, s.started_at, s.ended_at, s.end_reason, s.dropped_entries, s.iss,
  (SELECT count(*) FROM session_entries e WHERE e.session_id = s.id) AS entries,
  (SELECT count(*) FROM session_entries e WHERE e.session_id = s.id AND e.decision = 'deny') AS denies
  FROM session_recordings s`;

export function listSessionsSql(placeholder: Placeholder, query: SessionQuery): Sql {
  const params: unknown[] = [];
  const add = (v: unknown): string => {
    params.push(v);
    return placeholder(params.length);
  };
  const where: string[] = [];
  if (query.target !== undefined) where.push(`s.target = ${add(query.target)}`);
  if (query.who !== undefined) {
    where.push(`(s.sub = ${add(query.who.sub)} OR s.act_sub = ${add(query.who.sub)})`);
    if (query.who.iss !== undefined) where.push(`s.iss = ${add(query.who.iss)}`);
  }
  const limit = query.limit ?? 100;
  if (!Number.isSafeInteger(limit) || limit < 0) throw new Error(`listSessions: limit must be a non-negative integer, got ${limit}`);
  const text = `${SUMMARY_SELECT}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY s.started_at DESC, s.id DESC LIMIT ${add(limit)}`;
  return { text, params };
}

export const GET_SESSION_SQL = (placeholder: Placeholder): string => `${SUMMARY_SELECT} WHERE s.id = ${placeholder(1)}`;

export function sessionEntriesSql(placeholder: Placeholder, id: string, page: { afterSeq?: number; limit?: number }): Sql {
  const afterSeq = page.afterSeq ?? 0;
  const limit = page.limit ?? 1000;
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw new Error(`sessionEntries: afterSeq must be a non-negative integer, got ${afterSeq}`);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_SESSION_PAGE) throw new Error(`sessionEntries: limit must be 1 to ${MAX_SESSION_PAGE}, got ${limit}`);
  return {
    text: `SELECT session_id, seq, time, decision, entry FROM session_entries WHERE session_id = ${placeholder(1)} AND seq > ${placeholder(2)} ORDER BY seq LIMIT ${placeholder(3)}`,
    params: [id, afterSeq, limit],
  };
}

/** int8 columns and count(*) arrive from pg as strings; groups is JSON text in both backends. */
export function sessionFromRow(row: Record<string, unknown>): SessionSummary {
  const nullableNumber = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
  return {
    id: row['id'] as string,
    protocol: row['protocol'] as string,
    format: row['format'] as string,
    target: row['target'] as string,
    target_kind: row['target_kind'] as string,
    sub: row['sub'] as string,
    act_sub: (row['act_sub'] as string | null) ?? null,
    groups: JSON.parse(row['groups'] as string) as string[],
    source_ip: (row['source_ip'] as string | null) ?? null,
    gateway: row['gateway'] as string,
    started_at: Number(row['started_at']),
    ended_at: nullableNumber(row['ended_at']),
    end_reason: (row['end_reason'] as string | null) ?? null,
    dropped_entries: Number(row['dropped_entries']),
    iss: (row['iss'] as string | null) ?? null,
    entries: Number(row['entries']),
    denies: Number(row['denies']),
  };
}

export function entryFromRow(row: Record<string, unknown>): SessionEntryRecord {
  return {
    session_id: row['session_id'] as string,
    seq: Number(row['seq']),
    time: Number(row['time']),
    decision: (row['decision'] as SessionEntryRecord['decision']) ?? null,
    entry: row['entry'] as string,
  };
}
