/**
 * Sessions as the API and the CLI show them (the same JSON in both), and
 * their entries linked to the audit events of their decisions.
 */
import type { AuditRef, SessionEntryRecord, SessionSummary, Store } from '../store/store.js';
import { formatById } from './formats.js';
import { sameMethod } from './http-exchange.js';

export interface SessionView {
  id: string;
  protocol: string;
  format: string;
  target: string;
  target_kind: string;
  /** iss is null for sessions recorded before the issuer was kept. */
  identity: { sub: string; iss: string | null; act: { sub: string } | null; groups: string[] };
  source_ip: string | null;
  /** The audit stream of the gateway process that recorded the session. */
  gateway: string;
  started_at: string;
  ended_at: string | null;
  end_reason: string | null;
  /** Transcript entries recorded; `unit` says what they are ("statements"). */
  entries: number;
  unit: string;
  denies: number;
  /** Entries the recorder lost (seq has gaps where): non-zero means the transcript is incomplete. */
  dropped_entries: number;
}

export function sessionView(s: SessionSummary): SessionView {
  return {
    id: s.id,
    protocol: s.protocol,
    format: s.format,
    target: s.target,
    target_kind: s.target_kind,
    identity: { sub: s.sub, iss: s.iss, act: s.act_sub === null ? null : { sub: s.act_sub }, groups: s.groups },
    source_ip: s.source_ip,
    gateway: s.gateway,
    started_at: new Date(s.started_at).toISOString(),
    ended_at: s.ended_at === null ? null : new Date(s.ended_at).toISOString(),
    end_reason: s.end_reason,
    entries: s.entries,
    unit: formatById(s.format)?.unit ?? 'entries',
    denies: s.denies,
    dropped_entries: s.dropped_entries,
  };
}

/** One entry as JSON: the stored entry, with its time as ISO-8601 and its offset from the session's start. */
export function entryView(record: SessionEntryRecord, startedAt: number): Record<string, unknown> {
  const entry = JSON.parse(record.entry) as Record<string, unknown>;
  return { ...entry, seq: record.seq, time: new Date(record.time).toISOString(), offset_ms: record.time - startedAt };
}

/** What the audit trail says about an entry's decision. */
export interface AuditLink {
  stream: string;
  seq: number;
  /** The OCSF event, or null when no record is stored at (stream, seq). */
  event: Record<string, unknown> | null;
  /** Why the event does not back the entry (missing, another decision or session), or null when it does. */
  problem: string | null;
}

export interface LinkedEntry {
  record: SessionEntryRecord;
  /** The stored entry, parsed. */
  entry: Record<string, unknown>;
  /** Null when the entry names no audit event (its event was lost on a fail-open target, or the format has none). */
  audit: AuditLink | null;
}

/**
 * A session's entries in order, each with the audit event of its decision,
 * read a page at a time (memory is O(page)). Each link is checked: the
 * event must exist, carry the entry's decision id and the session's id.
 */
export async function* linkedEntries(
  store: Pick<Store, 'sessionEntries' | 'auditRecordsAt'>,
  sessionId: string,
  pageSize = 500,
): AsyncGenerator<LinkedEntry> {
  let afterSeq = 0;
  for (;;) {
    const page = await store.sessionEntries(sessionId, { afterSeq, limit: pageSize });
    const parsed = page.map((record) => ({ record, entry: JSON.parse(record.entry) as Record<string, unknown> }));
    const refs = parsed.map((p) => auditRefOf(p.entry)).filter((r): r is AuditRef => r !== null);
    const events = new Map<string, Record<string, unknown>>();
    for (const r of await store.auditRecordsAt(refs)) events.set(refKey(r), JSON.parse(r.event) as Record<string, unknown>);
    for (const { record, entry } of parsed) {
      const ref = auditRefOf(entry);
      if (!ref) {
        yield { record, entry, audit: null };
        continue;
      }
      const event = events.get(refKey(ref)) ?? null;
      yield { record, entry, audit: { ...ref, event, problem: linkProblem(event, entry, sessionId) } };
    }
    const last = page.at(-1);
    if (!last || page.length < pageSize) return;
    afterSeq = last.seq;
  }
}

function auditRefOf(entry: Record<string, unknown>): AuditRef | null {
  const audit = entry['audit'] as { stream?: unknown; seq?: unknown } | null | undefined;
  if (!audit || typeof audit.stream !== 'string' || typeof audit.seq !== 'number') return null;
  return { stream: audit.stream, seq: audit.seq };
}

function refKey(ref: AuditRef): string {
  return `${ref.stream}\0${ref.seq}`;
}

function linkProblem(event: Record<string, unknown> | null, entry: Record<string, unknown>, sessionId: string): string | null {
  if (!event) return 'no audit record at that place';
  const decisionId = (event['policy'] as { uid?: unknown } | undefined)?.uid;
  if (decisionId !== entry['decision_id']) return `the audit record is decision ${String(decisionId)}, not ${String(entry['decision_id'])}`;
  const session = ((event['actor'] as { session?: { uid?: unknown } } | undefined)?.session)?.uid;
  if (session !== sessionId) return `the audit record belongs to session ${String(session)}`;
  const decision = (event['unmapped'] as { decision?: unknown } | undefined)?.decision;
  if (entry['decision'] !== undefined && decision !== entry['decision']) return `the audit record says ${String(decision)}, the transcript ${String(entry['decision'])}`;
  return requestMismatch(event, entry);
}

/**
 * What the entry says ran, against what the decision's audit record says
 * was asked: the statement (the transcript may keep only its start), or the
 * HTTP method and path (the query may differ: Check can set or drop
 * parameters, and credential ones are redacted; the method is recorded as
 * sent, escaped and maybe cut, the audit event has it upper-cased).
 */
function requestMismatch(event: Record<string, unknown>, entry: Record<string, unknown>): string | null {
  const query = (event['query_info'] as { query_string?: unknown } | undefined)?.query_string;
  const statement = entry['statement'];
  if (typeof statement === 'string' && typeof query === 'string') {
    const same = entry['statement_truncated'] === true ? query.startsWith(statement) : query === statement;
    return same ? null : 'the transcript\'s statement is not the one the audit record decided';
  }
  const http = event['http_request'] as { http_method?: unknown; url?: { path?: unknown } } | undefined;
  const har = (entry['har'] as { request?: { method?: unknown; url?: unknown } } | undefined)?.request;
  if (http && har) {
    const methodsMatch = typeof har.method === 'string' && typeof http.http_method === 'string'
      ? sameMethod(har.method, entry['request_method_truncated'] === true, http.http_method)
      : har.method === http.http_method;
    if (!methodsMatch) return `the transcript's request is ${String(har.method)}, the audit record's ${String(http.http_method)}`;
    const recordedPath = typeof har.url === 'string' ? pathOf(har.url) : null;
    const decidedPath = typeof http.url?.path === 'string' ? http.url.path.split('?')[0] : null;
    if (recordedPath !== decidedPath) return `the transcript's request is for ${String(recordedPath)}, the audit record's for ${String(decidedPath)}`;
  }
  return null;
}

function pathOf(url: string): string | null {
  const match = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([^?#]*)/i.exec(url);
  return match ? match[1] || '/' : null;
}
