/**
 * The Postgres statement transcript (format "gatehouse.postgres-transcript.v1"):
 * one entry per statement the client sent, with the decision, its audit link,
 * timings, row counts, the error (SQLSTATE and primary message) and masking
 * counts. Never a row value.
 */
import type { DecisionAction, PostgresStatementRecord, PostgresTranscriptEntry } from './types.js';
import type { RecordingFormat } from './format.js';

export const POSTGRES_TRANSCRIPT = 'gatehouse.postgres-transcript.v1';

/** Longer statements are kept up to here and marked statement_truncated (the audit event has the whole text). */
export const MAX_STATEMENT_CHARS = 65_536;
const MAX_MESSAGE_CHARS = 2000;
const MAX_REASON_CHARS = 2000;
const MAX_NAME_CHARS = 256;

const DECISIONS: ReadonlySet<string> = new Set<DecisionAction>(['allow', 'deny', 'approve']);
const SQLSTATE = /^[0-9A-Z]{5}$/;
/**
 * A CommandComplete tag: words, then up to two counts ("SELECT 3", "INSERT 0 1",
 * "ALTER TEXT SEARCH CONFIGURATION"). Checked so the field cannot carry anything else.
 */
const COMMAND_TAG = /^[A-Z][A-Z ]{0,62}(?: \d{1,20}){0,2}$/;

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isId = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_NAME_CHARS;

/**
 * Checks one statement record and copies the known fields into a transcript
 * entry; returns what is wrong instead when a field is not what its type
 * says (a proxy bug: the entry is dropped rather than stored half-checked).
 */
export function postgresEntry(input: PostgresStatementRecord, seq: number, now: number): PostgresTranscriptEntry | { invalid: string } {
  if (input === null || typeof input !== 'object') return { invalid: 'the entry is not an object' };
  if (typeof input.statement !== 'string') return { invalid: 'statement is not a string' };
  if (!DECISIONS.has(input.decision)) return { invalid: 'decision is not allow, deny or approve' };
  if (!Array.isArray(input.reasons) || !input.reasons.every((r) => typeof r === 'string')) return { invalid: 'reasons is not a list of strings' };
  if (!isId(input.decision_id)) return { invalid: 'decision_id is missing' };
  const audit = input.audit;
  if (audit !== null && (typeof audit !== 'object' || !isId(audit.stream) || !isCount(audit.seq) || audit.seq < 1)) {
    return { invalid: 'audit is not {stream, seq} or null' };
  }
  const approvalId = input.approval_id ?? null;
  if (approvalId !== null && !isId(approvalId)) return { invalid: 'approval_id is not an id' };
  if (typeof input.duration_ms !== 'number' || !Number.isFinite(input.duration_ms) || input.duration_ms < 0) return { invalid: 'duration_ms is not a duration' };
  // Appended when the statement finished: it arrived duration_ms before.
  const time = input.time ?? Math.round(now - input.duration_ms);
  if (typeof time !== 'number' || !Number.isFinite(time)) return { invalid: 'time is not a number of ms' };
  if (input.rows !== null && !isCount(input.rows)) return { invalid: 'rows is not a count or null' };
  const tag = input.command_tag ?? null;
  if (tag !== null && (typeof tag !== 'string' || !COMMAND_TAG.test(tag))) return { invalid: 'command_tag is not a CommandComplete tag' };
  const error = input.error ?? null;
  if (error !== null && (typeof error !== 'object' || typeof error.sqlstate !== 'string' || !SQLSTATE.test(error.sqlstate) || typeof error.message !== 'string')) {
    return { invalid: 'error is not {sqlstate, message}' };
  }
  if (!Array.isArray(input.masked)) return { invalid: 'masked is not a list' };
  const masked: PostgresTranscriptEntry['masked'] = [];
  for (const m of input.masked) {
    if (m === null || typeof m !== 'object' || !isId(m.column) || (m.detector !== null && !isId(m.detector)) || !isCount(m.count)) {
      return { invalid: 'masked is not a list of {column, detector, count}' };
    }
    masked.push({ column: m.column, detector: m.detector, count: m.count });
  }

  const entry: PostgresTranscriptEntry = {
    seq,
    time,
    statement: input.statement.length > MAX_STATEMENT_CHARS ? input.statement.slice(0, MAX_STATEMENT_CHARS) : input.statement,
    decision: input.decision,
    reasons: input.reasons.map((r) => (r.length > MAX_REASON_CHARS ? r.slice(0, MAX_REASON_CHARS) : r)),
    decision_id: input.decision_id,
    audit: audit === null ? null : { stream: audit.stream, seq: audit.seq },
    approval_id: approvalId,
    duration_ms: input.duration_ms,
    rows: input.rows,
    command_tag: tag,
    error: error === null ? null : { sqlstate: error.sqlstate, message: error.message.length > MAX_MESSAGE_CHARS ? error.message.slice(0, MAX_MESSAGE_CHARS) : error.message },
    masked,
  };
  if (input.statement.length > MAX_STATEMENT_CHARS) entry.statement_truncated = true;
  return entry;
}

export const postgresTranscript: RecordingFormat<'postgres'> = {
  protocol: 'postgres',
  id: POSTGRES_TRANSCRIPT,
  unit: 'statements',
  entry: postgresEntry,
  decision: (entry) => entry.decision,
  time: (entry) => entry.time,
  render: renderPostgresEntry,
};

const LABELS: Record<DecisionAction, string> = { allow: 'ALLOW', deny: 'DENY', approve: 'HELD' };

/**
 * One entry as text, e.g.
 * `[+0.012s] ALLOW  SELECT id, email FROM customers  (3 rows, 12 ms; masked public.customers.email×3)`.
 * A statement of several lines keeps its lines, indented under the first.
 */
export function renderPostgresEntry(entry: PostgresTranscriptEntry, startedAt: number): string {
  const offset = `[+${((entry.time - startedAt) / 1000).toFixed(3)}s]`;
  const label = (LABELS[entry.decision] ?? String(entry.decision).toUpperCase()).padEnd(6);
  const head = `${offset} ${label} `;
  const statement = entry.statement.trim().split('\n').map((line, i) => (i === 0 ? line : `${' '.repeat(head.length)}${line}`)).join('\n');
  const truncated = entry.statement_truncated ? ' …(truncated)' : '';
  return `${head}${statement}${truncated}  (${outcome(entry)})`;
}

function outcome(entry: PostgresTranscriptEntry): string {
  const ms = `${formatMs(entry.duration_ms)} ms`;
  if (entry.decision !== 'allow') {
    const reasons = entry.reasons.length ? entry.reasons.join('; ') : 'no reason given';
    return entry.approval_id ? `${reasons}; approval ${entry.approval_id}` : reasons;
  }
  const parts: string[] = [];
  if (entry.error) parts.push(`error ${entry.error.sqlstate}: ${entry.error.message}`);
  else if (entry.rows !== null) parts.push(`${entry.rows} ${entry.rows === 1 ? 'row' : 'rows'}`);
  else if (entry.command_tag) parts.push(entry.command_tag);
  parts.push(ms);
  let text = parts.join(', ');
  const masked = entry.masked.filter((m) => m.count > 0);
  if (masked.length) text += `; masked ${masked.map((m) => `${m.column}${m.detector ? `[${m.detector}]` : ''}×${m.count}`).join(', ')}`;
  if (entry.approval_id) text += `; approved by ${entry.approval_id}`;
  return text;
}

function formatMs(ms: number): string {
  return ms >= 10 || Number.isInteger(ms) ? String(Math.round(ms)) : ms.toFixed(1);
}
