/**
 * What the proxies hand the session recorder, per protocol.
 *
 * No type here has a free-form payload: every field is a fixed name with a
 * primitive meaning (a count, a duration, an identifier, the statement the
 * client sent, the policy's reasons). A proxy cannot hand over row values
 * because there is no field to put them in; the recorder also copies only
 * these fields, checked, at run time (see postgres-transcript.ts), so a
 * wider object that TypeScript's structural typing lets through loses its
 * extra keys.
 *
 * HTTP is the one exception: a recorded exchange carries bodies
 * (RecordedBody), because a HAR entry without them shows little. The
 * ExternalProcessor hands over only the bodies it sent on, masked by the
 * decision's rules, and never a credential header; the format still drops
 * the well-known credential headers and caps every body (http-exchange.ts).
 *
 * Adding a protocol (SSH as asciicast v2)
 * means adding its input and entry types to the two maps below and a format
 * (like postgres-transcript.ts) to formats.ts; the recorder, the store, the
 * API and the CLI stay as they are.
 */
import type { DecisionAction, MaskCount } from '../audit/events.js';
import type { AuditRef } from '../store/store.js';

export type { AuditRef, DecisionAction, MaskCount };

/** The protocols that record sessions today. */
export type RecordingProtocol = 'postgres' | 'http';

/** Who the session belongs to: the verified caller (engine Identity fits). */
export interface SessionIdentity {
  sub: string;
  /** The token's issuer: a subject names someone only within it. */
  iss: string;
  groups: readonly string[];
  /** The human the agent acts for (RFC 8693), if any. */
  act?: { sub: string } | null;
}

/** What a proxy knows when a session starts. */
export interface SessionOpen<P extends RecordingProtocol = RecordingProtocol> {
  /** The id every decision of the session carries (audit actor.session.uid); unique, e.g. a UUID. */
  session_id: string;
  /** The configured target's name. */
  target: string;
  target_kind: 'postgres' | 'ssh' | 'http';
  identity: SessionIdentity;
  source_ip: string | null;
  protocol: P;
  /** ms since the epoch (Date.now()). */
  started_at: number;
}

export interface SessionClose {
  /** ms since the epoch (Date.now()). */
  ended_at: number;
  /** One line, e.g. "client closed", "terminated by the gateway", "upstream lost". */
  reason?: string;
}

/** An error the server (or the proxy) answered a statement with: the primary message only, never DETAIL, HINT, WHERE or CONTEXT. */
export interface StatementError {
  /** Five-character SQLSTATE, e.g. "23505" or "42501". */
  sqlstate: string;
  message: string;
}

/**
 * One statement as the Postgres proxy saw it through. Everything here is
 * either the client's own input (the SQL text), the gateway's decision, or a
 * count; nothing is taken from the rows the server sent back.
 */
export interface PostgresStatementRecord {
  /** When the statement arrived, ms since the epoch; when absent, now minus duration_ms (append() is called as it finishes). */
  time?: number;
  /** The SQL text exactly as the client sent it (simple Query, or Parse for extended). */
  statement: string;
  decision: DecisionAction;
  /** The policy's reasons, as audited. */
  reasons: readonly string[];
  /** The decision's id: the audit event's policy.uid. */
  decision_id: string;
  /** Where the decision's audit event landed (AuthorizeResult.audit); null when it was lost (a fail-open target). */
  audit: AuditRef | null;
  approval_id?: string | null;
  /** From receiving the statement to the end of its answer (for a deny: to the error). */
  duration_ms: number;
  /** Rows returned or affected; null when unknown or the statement did not run. */
  rows: number | null;
  /** The server's CommandComplete tag, e.g. "SELECT 3", "INSERT 0 1". */
  command_tag?: string | null;
  error?: StatementError | null;
  /** How many values each mask rule changed: counts only. */
  masked: readonly MaskCount[];
}

/** A Postgres transcript entry as stored and shown. Every key is always present. */
export interface PostgresTranscriptEntry {
  seq: number;
  /** ms since the epoch. */
  time: number;
  statement: string;
  /** Set when the statement was longer than the recorder keeps (MAX_STATEMENT_CHARS). */
  statement_truncated?: true;
  decision: DecisionAction;
  reasons: string[];
  decision_id: string;
  audit: AuditRef | null;
  approval_id: string | null;
  duration_ms: number;
  rows: number | null;
  command_tag: string | null;
  error: StatementError | null;
  masked: MaskCount[];
}

/** A header as HAR writes it. */
export interface HarHeader {
  name: string;
  value: string;
}

/**
 * A body as recorded: already masked by the caller with the decision's
 * rules (the format cannot tell masked text from unmasked, so it is the
 * caller's job, and the ExternalProcessor records only what it sent on).
 */
export interface RecordedBody {
  /** The Content-Type, or "" when there was none. */
  mime_type: string;
  /** Bytes of the body after content decoding. */
  size: number;
  /** The body as text; absent when it is binary (it is described, never stored). */
  text?: string;
}

/**
 * One HTTP exchange as the ExternalProcessor saw it through: the request
 * (method, URL, headers without credentials, body if Envoy sent it) and the
 * response the client received, both masked. Only allowed requests reach
 * ext_proc, so there is no decision field: it is always "allow".
 */
export interface HttpExchangeRecord {
  /** When the request's headers reached the gateway, ms since the epoch. */
  started_at: number;
  /** From the request's headers to the end of the response, ms. */
  duration_ms: number;
  /** From the request's headers to the response's (HAR timings.wait), ms; null when no response came. */
  wait_ms: number | null;
  /** The Check decision's id: the audit event's policy.uid. */
  decision_id: string;
  /** Where the Check decision's audit event landed; null when it was lost (a fail-open target). */
  audit: AuditRef | null;
  request: {
    method: string;
    url: string;
    /** "HTTP/1.1", "HTTP/2"; "" when Envoy did not say. */
    http_version: string;
    /** Without credentials (Authorization, Cookie, the injected credential header, …). */
    headers: readonly HarHeader[];
    body: RecordedBody | null;
  };
  /** What the client received; null when the exchange ended before a response (status 0 in HAR). */
  response: {
    status: number;
    http_version: string;
    /** Without Set-Cookie. */
    headers: readonly HarHeader[];
    body: RecordedBody | null;
  } | null;
  /** How many values each field rule changed: counts only. */
  masked: readonly MaskCount[];
  /** Why the gateway answered in the upstream's place, or what cut the exchange short. One line, never a value. */
  error?: string | null;
}

/** A HAR 1.2 entry (http://www.softwareishard.com/blog/har-12-spec/#entries). */
export interface HarEntry {
  startedDateTime: string;
  /** Total time of the exchange, ms. */
  time: number;
  request: {
    method: string;
    url: string;
    httpVersion: string;
    cookies: [];
    headers: HarHeader[];
    queryString: HarHeader[];
    postData?: { mimeType: string; text: string };
    headersSize: -1;
    bodySize: number;
    /** What the recorder cut (a long method, header lines past MAX_HEADERS). */
    comment?: string;
  };
  response: {
    status: number;
    statusText: string;
    httpVersion: string;
    cookies: [];
    headers: HarHeader[];
    content: { size: number; mimeType: string; text?: string };
    redirectURL: string;
    headersSize: -1;
    bodySize: number;
    comment?: string;
  };
  cache: Record<string, never>;
  timings: { send: number; wait: number; receive: number };
}

/**
 * An HTTP exchange as stored: Gatehouse's fields at the top, as every
 * format has them (the decision, its audit link, masking counts), and the
 * exchange itself as a HAR 1.2 entry that `gatehouse sessions replay --har`
 * exports unchanged.
 */
export interface HttpExchangeEntry {
  seq: number;
  /** When the request arrived, ms since the epoch. */
  time: number;
  decision: 'allow';
  decision_id: string;
  audit: AuditRef | null;
  masked: MaskCount[];
  error: string | null;
  /** Set when the method was longer than the recorder keeps (MAX_METHOD_CHARS, after escaping). */
  request_method_truncated?: true;
  /** Set when there were more header lines than the recorder keeps (MAX_HEADERS); the HAR comment says how many. */
  request_headers_truncated?: true;
  response_headers_truncated?: true;
  /** Set when a body was longer than the recorder keeps (MAX_BODY_CHARS). */
  request_body_truncated?: true;
  response_body_truncated?: true;
  har: HarEntry;
}

/** What a proxy appends, per protocol. */
export interface EntryInputs {
  postgres: PostgresStatementRecord;
  http: HttpExchangeRecord;
}

/** What is stored, per protocol. */
export interface Entries {
  postgres: PostgresTranscriptEntry;
  http: HttpExchangeEntry;
}

/** One open session's recording: what a proxy holds for the life of a connection. */
export interface SessionRecording<P extends RecordingProtocol = RecordingProtocol> {
  readonly session_id: string;
  /** False when the target has `recording.enabled: false` (or the recorder is stopping): append and close do nothing. */
  readonly enabled: boolean;
  /** Entries accepted so far (the last seq given out). */
  readonly appended: number;
  /**
   * Records one entry. Never throws and never waits: the entry is checked,
   * copied and queued, and written with others in the background. An entry
   * that fails the checks is dropped, logged and counted, and the session
   * is marked as having lost entries.
   */
  append(entry: EntryInputs[P]): void;
  /** Ends the session. Idempotent; entries appended afterwards are dropped (and counted). */
  close(end: SessionClose): void;
}
