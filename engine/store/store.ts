/**
 * The gateway's persistent state behind one interface: the audit chain, its
 * signed checkpoints, approval requests, and session recordings. Two backends implement it:
 * SQLite (embedded, the default) and PostgreSQL (shared by several gateway
 * processes). Both run the same test suite (tests/integration/store.test.ts).
 *
 * The store knows nothing of hashing or signing: the audit log computes the
 * chain and hands over finished records, so both backends store bytes, not
 * meaning.
 */

/** One link of an audit chain, as stored. */
export interface AuditRecord {
  /** The chain this record belongs to; each gateway process writes its own. */
  stream: string;
  /** 1, 2, 3, … within the stream, with no gaps. */
  seq: number;
  /** The previous record's hash (hex), or the stream's genesis hash for seq 1. */
  prev: string;
  /** SHA-256 (hex) over the canonical record; see engine/audit/chain.ts. */
  hash: string;
  /** Event time, milliseconds since the epoch (for --since/--until). */
  time: number;
  /** The event as canonical JSON text, byte for byte as it was hashed. */
  event: string;
}

/** A signed statement that a stream's chain had `hash` at `seq`. */
export interface CheckpointRecord {
  stream: string;
  seq: number;
  hash: string;
  time: number;
  /** Compact JWS over {stream, seq, hash, time}. */
  jws: string;
}

export interface AuditQuery {
  stream?: string;
  /** Only records with seq > afterSeq (requires stream). */
  afterSeq?: number;
  /** Event time bounds in ms since the epoch, inclusive. */
  since?: number;
  until?: number;
}

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'revoked' | 'consumed';

/** One approver's vote. */
export interface ApprovalVote {
  sub: string;
  /** The voter's issuer (votes taken before it was kept have none). */
  iss?: string;
  decision: 'approve' | 'deny';
  comment: string | null;
  at: string;
  /** HMAC of the vote and what it approves, when approvals.seal_key is set (vote-seal.ts). */
  seal?: string;
}

export interface ApprovalRecord {
  id: string;
  status: ApprovalStatus;
  /** Bumped on every update; updates compare-and-set on it. */
  version: number;
  /**
   * Who asked: sub of the caller, and the human it acts for; prior_actors, when the token's act chain was
   * nested, names the earlier actors (RFC 8693 §4.1), who had a hand in the request too. Absent on requests
   * made before it was kept.
   */
  requester: { sub: string; iss: string; act: { sub: string } | null; groups: string[]; prior_actors?: string[] };
  target: string;
  /** The action in canonical JSON, and its SHA-256 (hex). */
  action: string;
  action_hash: string;
  reasons: string[];
  groups: string[];
  min: number;
  mode: 'hold' | 'ticket';
  created_at: string;
  expires_at: string;
  votes: ApprovalVote[];
  /** Why it ended: the denier's reason, "expired", the revoker, … */
  resolution: string | null;
  resolved_at: string | null;
  decision_id: string;
  session_id: string;
  policy_revision: string | null;
}

export interface ApprovalQuery {
  status?: ApprovalStatus;
  /** Only requests by this requester with this action hash. */
  requester_sub?: string;
  action_hash?: string;
  /** Only records that expire at or before this ISO time. */
  expires_before?: string;
  /** Only records listed after this one (newest first): the next page. */
  after?: { created_at: string; id: string };
  limit?: number;
}

/** Where an audit event is stored: its stream and sequence number. */
export interface AuditRef {
  stream: string;
  seq: number;
}

/**
 * One recorded session's header, as stored. Written when the session opens
 * and written again (an upsert) when it closes or loses entries; only the
 * mutable fields (ended_at, end_reason, dropped_entries) change.
 */
export interface SessionRecordingRow {
  /** The session id, as in the audit events' actor.session.uid. */
  id: string;
  /** The wire protocol: "postgres" (later "ssh", "http"). */
  protocol: string;
  /** The entries' format, e.g. "gatehouse.postgres-transcript.v1". */
  format: string;
  target: string;
  target_kind: string;
  sub: string;
  /** The issuer of sub (and of act_sub: the token named both); null for sessions recorded before it was kept. */
  iss: string | null;
  /** The human the agent acts for, if any. */
  act_sub: string | null;
  groups: string[];
  source_ip: string | null;
  /** The audit stream of the gateway process that recorded it (where its decisions are). */
  gateway: string;
  /** ms since the epoch. */
  started_at: number;
  ended_at: number | null;
  end_reason: string | null;
  /** Entries the recorder had to drop (store unavailable too long, invalid input): gaps in seq. */
  dropped_entries: number;
}

/** One transcript entry, as stored: the entry is JSON in the session's format. */
export interface SessionEntryRecord {
  session_id: string;
  /** 1, 2, 3, … within the session. */
  seq: number;
  /** ms since the epoch. */
  time: number;
  /** The decision the entry records, when its format has one (for the deny counts). */
  decision: 'allow' | 'deny' | 'approve' | null;
  entry: string;
}

/** What the recorder writes in one transaction. Idempotent: a retried batch changes nothing twice. */
export interface RecordingBatch {
  sessions: readonly SessionRecordingRow[];
  entries: readonly SessionEntryRecord[];
}

/** A session header with counts over its entries. */
export interface SessionSummary extends SessionRecordingRow {
  entries: number;
  denies: number;
}

/**
 * Where a masked column of a Postgres database was found: its table's OID
 * and its attribute number, which stay with the column when it or its
 * table is renamed.
 */
export interface MaskedColumnPlace {
  /** The mask rule's column, "schema.table.column". */
  rule_column: string;
  /** The OID of the rule's table, or of a table inheriting it or inherited by it. */
  table_oid: number;
  attnum: number;
  /** ms since the epoch. */
  noted_at: number;
}

/** A place with the database it is in: OIDs mean something only within their scope. */
export interface ScopedMaskedColumnPlace extends MaskedColumnPlace {
  scope: string;
}

export interface SessionQuery {
  target?: string;
  /** Sessions of this caller: its sub, or the human it acted for; with `iss`, only as named by that issuer. */
  who?: { sub: string; iss?: string };
  /** Newest first; at most this many. */
  limit?: number;
}

/** Thrown when a stream is already being written by another live process. */
export class StreamBusyError extends Error {
  constructor(readonly stream: string) {
    super(`audit stream "${stream}" is being written by another gateway process; give each process its own audit.stream`);
    this.name = 'StreamBusyError';
  }
}

export interface Store {
  /** Which backend, for logs and /health. */
  readonly kind: 'sqlite' | 'postgres';

  /** Applies the versioned migrations this build knows, in order, once each. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  // ---- audit ----------------------------------------------------------
  /**
   * Makes this process the only writer of `stream` until close(): a
   * PostgreSQL advisory lock; on SQLite, a check among the stores of this
   * process (SQLite serves one process; a second one's appends would still
   * be refused by the chain check). Throws StreamBusyError when it is taken.
   */
  claimAuditStream(stream: string): Promise<void>;
  /** The last record of a stream, or null when the stream is empty. */
  auditHead(stream: string): Promise<{ seq: number; hash: string } | null>;
  /**
   * Appends records in one transaction and resolves only once it is durable
   * (fsync'd). All or nothing. Records must continue the stream's head.
   */
  appendAudit(records: readonly AuditRecord[]): Promise<void>;
  /** Records in (stream, seq) order, streamed in pages. */
  readAudit(query?: AuditQuery): AsyncIterable<AuditRecord>;
  auditStreams(): Promise<string[]>;
  appendCheckpoint(checkpoint: CheckpointRecord): Promise<void>;
  /** A stream's checkpoints in seq order (then time). */
  checkpoints(stream: string): Promise<CheckpointRecord[]>;

  // ---- approvals ------------------------------------------------------
  createApproval(approval: ApprovalRecord): Promise<void>;
  getApproval(id: string): Promise<ApprovalRecord | null>;
  /** Newest first. */
  listApprovals(query?: ApprovalQuery): Promise<ApprovalRecord[]>;
  /**
   * How many pending requests by this requester (sub and issuer) are still in their window at `now`,
   * counted up to `atMost`: approvals.max_pending_per_requester's check.
   */
  countPendingApprovals(requester: { sub: string; iss: string }, now: string, atMost: number): Promise<number>;
  /**
   * Replaces the record if its version is still `expectedVersion`, storing
   * it with version + 1, and wakes every process's approval listeners.
   * Returns the stored record, or null if someone else updated it first.
   */
  updateApproval(next: ApprovalRecord, expectedVersion: number): Promise<ApprovalRecord | null>;
  /**
   * Calls `listener` with the id of every approval updated by any process
   * sharing this store (LISTEN/NOTIFY on PostgreSQL, in-process on SQLite).
   * Returns an unsubscribe function.
   */
  onApprovalChange(listener: (id: string) => void): () => void;
  /** Notes where one of an approval's audit events is; noting the same place again changes nothing. */
  noteApprovalEvent(approvalId: string, ref: AuditRef): Promise<void>;
  /** Where the approval's audit events are, as noted, in (stream, seq) order. */
  approvalEventRefs(approvalId: string): Promise<AuditRef[]>;

  // ---- masked columns -------------------------------------------------
  /**
   * Notes places of masked columns in one database (`scope` names it); a
   * place noted already is left as it is.
   */
  noteMaskedColumnPlaces(scope: string, places: readonly MaskedColumnPlace[]): Promise<void>;
  /** Every place noted in a scope. */
  maskedColumnPlaces(scope: string): Promise<MaskedColumnPlace[]>;
  /** Every place of every scope, in (scope, rule_column, table_oid, attnum) order. */
  listMaskedColumnPlaces(): Promise<ScopedMaskedColumnPlace[]>;
  /**
   * Deletes a place, whatever rule columns were noted there, and returns
   * the rows deleted in rule_column order (none when there was no such place).
   */
  forgetMaskedColumnPlace(scope: string, tableOid: number, attnum: number): Promise<MaskedColumnPlace[]>;

  // ---- session recordings ---------------------------------------------
  /**
   * Writes session headers (upserted) and entries (inserted once; an entry
   * already stored is left as it is) in one durable transaction. Safe to
   * retry after a failure whose outcome is unknown.
   */
  appendRecordings(batch: RecordingBatch): Promise<void>;
  /** Newest first (started_at, then id). */
  listSessions(query?: SessionQuery): Promise<SessionSummary[]>;
  getSession(id: string): Promise<SessionSummary | null>;
  /** One page of a session's entries in seq order, after `afterSeq` (default 0). */
  sessionEntries(id: string, page?: { afterSeq?: number; limit?: number }): Promise<SessionEntryRecord[]>;
  /** The audit records at these places (those that exist), for linking entries to their decisions. */
  auditRecordsAt(refs: readonly AuditRef[]): Promise<AuditRecord[]>;
}
