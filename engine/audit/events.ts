import { randomUUID } from 'node:crypto';
import type { Identity } from '../identity/identity.js';
import type { FailureKind } from '../policy/decision.js';
import type { ApprovalRecord, MaskedColumnPlace } from '../store/store.js';

/**
 * OCSF-shaped audit events (https://schema.ocsf.io, 1.3.0). Standard
 * attributes carry what OCSF has a name for; Gatehouse's own facts (the human
 * an agent acts for, masking counts, the approval id, the action hash) go in
 * `unmapped`, where OCSF says source-specific data belongs, so a strict OCSF
 * validator still accepts the events.
 *
 * Every decision event has the same keys whatever the outcome: a field that
 * does not apply is null or empty, never missing, so queries over allows and
 * denies look alike (AU-3).
 */

export const OCSF_VERSION = '1.3.0';
/** Kept in step with package.json's version. */
export const GATEHOUSE_VERSION = '0.1.0';

export type Protocol = 'http' | 'postgres' | 'ssh';
export type DecisionAction = 'allow' | 'deny' | 'approve';

export interface HttpRequestFacts {
  protocol: 'http';
  method: string;
  path: string;
  host: string | null;
  /** The x-request-id header Envoy generated: joins the event to Envoy's access log line. */
  request_id?: string | null;
}

export interface PostgresRequestFacts {
  protocol: 'postgres';
  database: string;
  role: string;
  /** The statement text as the client sent it. */
  text: string;
  /** The parser's statement kinds, in order: "select", "insert", … */
  statement_kinds: string[];
}

export interface SshRequestFacts {
  protocol: 'ssh';
  user: string;
  /** "exec", "shell", "sftp", "forward", … */
  request: string;
  command: string | null;
}

export type RequestFacts = HttpRequestFacts | PostgresRequestFacts | SshRequestFacts;

/** How many values one mask rule changed. Only counts: never a value. */
export interface MaskCount {
  /** The column (postgres) or field (http) the rule matched. */
  column: string;
  /** The detector that matched, or null when the rule masks the whole column. */
  detector: string | null;
  count: number;
}

export interface DecisionFacts {
  /** The event's own id (metadata.uid); a new UUID when absent. */
  event_id?: string;
  /** When the decision was made, ms since the epoch; now when absent. */
  time?: number;
  /** The verified caller, or null when no identity could be established (the decision is then a deny). */
  identity: Identity | null;
  /** The caller's address, when the front end knows it. */
  source_ip: string | null;
  /** kind is null when the target named in the request is not configured. */
  target: { name: string; kind: Protocol | null; labels: Record<string, string> };
  /** Null when the request was refused before it could be read (e.g. an unknown target or a malformed action). */
  request: RequestFacts | null;
  /** One line a person reads: "GET /orders/42", "SELECT … FROM customers", "exec: ls -la". */
  summary: string;
  action: DecisionAction;
  policy: {
    /** Null when no policy was asked (the request was refused before evaluation). */
    entrypoint: string | null;
    bundle_revision: string | null;
    decision_id: string;
    reasons: string[];
    /** Set when the engine denied on the policy's behalf (fail closed). */
    failure?: FailureKind | string | null;
  };
  masked: MaskCount[];
  approval_id: string | null;
  session_id: string;
  /** SHA-256 (hex) of the canonical action, as in approval records. */
  action_hash: string | null;
}

export type ApprovalTransition = 'requested' | 'vote' | 'approved' | 'denied' | 'expired' | 'revoked' | 'consumed';

export interface ApprovalTransitionFacts {
  event_id?: string;
  time?: number;
  /** The record as it is after the transition. */
  approval: ApprovalRecord;
  transition: ApprovalTransition;
  /** Who caused it: the requester, an approver, a revoker; absent when the gateway did (expiry, consumption). */
  by?: Identity;
  /** The approver's comment, the denier's reason, … */
  reason?: string | null;
}

/** An audit event: a plain JSON object, canonicalised when appended. */
export type AuditEvent = Record<string, unknown>;

/*
 * The builders below write every event as one object literal (plus a few
 * assignments for the protocol's own attributes) rather than spreading
 * partial objects into it: V8 gives an object literal that starts with a
 * spread a fresh hidden class on every call, which made building an event
 * cost more than canonicalising and hashing it (bench/audit.ts). The keys,
 * and the order in which they are added, are those of the spread version.
 */

export function decisionEvent(facts: DecisionFacts, stream: string): AuditEvent {
  const request = facts.request;
  const kind = facts.target.kind;
  const cls = request ? PROTOCOL_CLASSES[request.protocol] : kind ? PROTOCOL_CLASSES[kind] : BASE_EVENT;
  let activity_id = 0;
  let activity_name = 'Unknown';
  let httpMethod = '';
  if (request) {
    switch (request.protocol) {
      case 'http': {
        httpMethod = request.method.toUpperCase();
        [activity_id, activity_name] = ownEntry(HTTP_ACTIVITIES, httpMethod) ?? [99, titleCase(httpMethod)];
        break;
      }
      case 'postgres': {
        const kinds = [...new Set(request.statement_kinds)];
        const known = kinds.length === 1 ? ownEntry(DATASTORE_ACTIVITIES, kinds[0]!) : undefined;
        [activity_id, activity_name] = known ?? [99, kinds.length === 0 ? 'Other' : kinds.join(', ')];
        break;
      }
      case 'ssh':
        // Each channel request is decided when the session channel opens.
        activity_id = 1;
        activity_name = 'Open';
        break;
    }
  }

  const outcome = OUTCOMES[facts.action];
  const policy = facts.policy;
  const failure = policy.failure ?? null;
  const identity = facts.identity;
  const approved = facts.action === 'allow' && facts.approval_id;
  const event: AuditEvent = {
    class_uid: cls.class_uid,
    class_name: cls.class_name,
    category_uid: cls.category_uid,
    category_name: cls.category_name,
    activity_id,
    activity_name,
    type_uid: cls.class_uid * 100 + activity_id,
    type_name: `${cls.class_name}: ${activity_name}`,
    time: facts.time ?? Date.now(),
    metadata: metadata(facts.event_id, stream),
    // A fail-closed deny means a policy or gateway fault, which someone should look at.
    severity_id: failure ? 3 : outcome.severity_id,
    severity: failure ? 'Medium' : SEVERITIES[outcome.severity_id],
    action_id: outcome.action_id,
    action: outcome.action,
    disposition_id: approved ? 8 : outcome.disposition_id,
    disposition: approved ? 'Approved' : outcome.disposition,
    status_id: outcome.status_id,
    status: outcome.status,
    message: facts.summary,
    actor: {
      user: identity ? userOf(identity) : { uid: null, name: null, type_id: 0, type: 'Unknown', groups: [] },
      idp: { name: identity?.iss ?? null },
      session: { uid: facts.session_id },
    },
    src_endpoint: { ip: facts.source_ip },
    dst_endpoint: { name: facts.target.name, svc_name: kind },
    policy: {
      name: policy.entrypoint,
      uid: policy.decision_id,
      version: policy.bundle_revision,
      data: { reasons: policy.reasons, failure },
    },
  };
  // The class's own attributes for the request, after the common ones.
  if (request?.protocol === 'http') {
    const httpRequest: Record<string, unknown> = { http_method: httpMethod, url: { path: request.path, hostname: request.host } };
    if (request.request_id) httpRequest.uid = request.request_id;
    event.http_request = httpRequest;
  } else if (request?.protocol === 'postgres') {
    event.database = { name: request.database, type_id: 1, type: 'Relational' };
    event.query_info = { query_string: request.text };
  }
  const masked = facts.masked.slice();
  if (masked.length > 1) masked.sort(byColumnThenDetector);
  const unmapped: Record<string, unknown> = {
    decision: facts.action,
    agent: identity?.agent ?? false,
    act: identity?.act ?? null,
    target_labels: facts.target.labels,
    masked,
    approval_id: facts.approval_id,
    action_hash: facts.action_hash,
  };
  if (request?.protocol === 'postgres') {
    unmapped.postgres = { role: request.role, statement_kinds: request.statement_kinds };
  } else if (request?.protocol === 'ssh') {
    unmapped.ssh = { user: request.user, request: request.request, command: request.command };
  }
  event.unmapped = unmapped;
  return event;
}

/** What a front end reports once an allowed request's results were masked. */
export interface MaskingFacts {
  event_id?: string;
  time?: number;
  identity: Identity;
  target: { name: string; kind: Protocol; labels: Record<string, string> };
  /** The decision whose mask plan was applied: its event carries the policy and the request. */
  decision_id: string;
  session_id: string;
  summary: string;
  /** Rows (postgres) or bodies (http) the plan was applied to. */
  records: number;
  masked: MaskCount[];
}

/**
 * Masking counts arrive after the decision (its event is written before the
 * request runs, so nothing runs unaudited): a second event, in the same
 * class, linked by the decision id. Counts only, never values.
 */
export function maskingEvent(facts: MaskingFacts, stream: string): AuditEvent {
  const cls = PROTOCOL_CLASSES[facts.target.kind];
  const masked = facts.masked.slice();
  if (masked.length > 1) masked.sort(byColumnThenDetector);
  return {
    class_uid: cls.class_uid,
    class_name: cls.class_name,
    category_uid: cls.category_uid,
    category_name: cls.category_name,
    activity_id: 99,
    activity_name: 'Masked',
    type_uid: cls.class_uid * 100 + 99,
    type_name: `${cls.class_name}: Masked`,
    time: facts.time ?? Date.now(),
    metadata: metadata(facts.event_id, stream),
    severity_id: 1,
    severity: 'Informational',
    status_id: 1,
    status: 'Success',
    message: facts.summary,
    actor: { user: userOf(facts.identity), idp: { name: facts.identity.iss }, session: { uid: facts.session_id } },
    dst_endpoint: { name: facts.target.name, svc_name: facts.target.kind },
    policy: { uid: facts.decision_id },
    unmapped: { decision_id: facts.decision_id, records: facts.records, masked },
  };
}

/** Entity Management (3004): the approval record is the managed entity. */
export function approvalEvent(facts: ApprovalTransitionFacts, stream: string): AuditEvent {
  const a = facts.approval;
  return entityManagementEvent({
    event_id: facts.event_id,
    time: facts.time,
    activity: facts.transition === 'requested' ? 'Create' : 'Update',
    message: `approval ${a.id} ${facts.transition}${facts.by ? ` by ${facts.by.sub}` : ''}`,
    by: facts.by,
    comment: facts.reason ?? null,
    entity: {
      uid: a.id,
      type: 'approval',
      name: `approval for ${a.target}`,
      version: String(a.version),
      data: {
        status: a.status,
        target: a.target,
        action_hash: a.action_hash,
        requester: a.requester,
        groups: a.groups,
        min: a.min,
        mode: a.mode,
        expires_at: a.expires_at,
        approvals: a.votes.filter((v) => v.decision === 'approve').map((v) => v.sub),
        denials: a.votes.filter((v) => v.decision === 'deny').map((v) => v.sub),
        decision_id: a.decision_id,
        policy_revision: a.policy_revision,
      },
    },
    unmapped: {
      transition: facts.transition,
      approval_id: a.id,
      session_id: a.session_id,
      action_hash: a.action_hash,
    },
  }, stream);
}

export interface ForgottenPlaceFacts {
  event_id?: string;
  time?: number;
  /** The database the place is in, as the store keys it. */
  scope: string;
  table_oid: number;
  attnum: number;
  /** The rows deleted, as they were stored: what it would take to put them back. */
  forgotten: readonly MaskedColumnPlace[];
  by: Identity;
  /** Why the place no longer holds a masked column; required of the caller. */
  reason: string;
}

/** The uid of a masked column place in events and messages; the scope holds slashes, so it is read from the right. */
export function maskedColumnPlaceUid(place: { scope: string; table_oid: number; attnum: number }): string {
  return `${place.scope}/${place.table_oid}/${place.attnum}`;
}

/**
 * Entity Management (3004), Delete: a masked column place forgotten, after
 * which what is at that place is no longer masked.
 */
export function forgottenPlaceEvent(facts: ForgottenPlaceFacts, stream: string): AuditEvent {
  const uid = maskedColumnPlaceUid(facts);
  return entityManagementEvent({
    event_id: facts.event_id,
    time: facts.time,
    activity: 'Delete',
    message: `masked column place ${uid} forgotten by ${facts.by.sub}`,
    by: facts.by,
    comment: facts.reason,
    entity: {
      uid,
      type: 'masked_column_place',
      name: `${facts.forgotten.map((p) => p.rule_column).join(', ')} at table ${facts.table_oid} column ${facts.attnum}`,
      data: facts.forgotten,
    },
    // The uid's parts, for queries that should not have to split it.
    unmapped: { masked_column_place: { scope: facts.scope, table_oid: facts.table_oid, attnum: facts.attnum } },
  }, stream);
}

/** OCSF Entity Management activity ids. */
const ENTITY_ACTIVITIES = { Create: 1, Update: 3, Delete: 4 } as const;

/** What an Entity Management event says of one change to a record the gateway keeps. */
interface EntityChange {
  event_id: string | undefined;
  time: number | undefined;
  activity: keyof typeof ENTITY_ACTIVITIES;
  message: string;
  /** Who made the change; absent when the gateway did (expiry, consumption). */
  by: Identity | undefined;
  comment: string | null;
  entity: Record<string, unknown>;
  /** The entity's own facts; the caller's agent flag and the human it acts for are added. */
  unmapped: Record<string, unknown>;
}

function entityManagementEvent(change: EntityChange, stream: string): AuditEvent {
  const activity_id = ENTITY_ACTIVITIES[change.activity];
  const by = change.by;
  const unmapped = change.unmapped;
  unmapped.agent = by?.agent ?? false;
  unmapped.act = by?.act ?? null;
  return {
    class_uid: 3004,
    class_name: 'Entity Management',
    category_uid: 3,
    category_name: 'Identity & Access Management',
    activity_id,
    activity_name: change.activity,
    type_uid: 3004 * 100 + activity_id,
    type_name: `Entity Management: ${change.activity}`,
    time: change.time ?? Date.now(),
    metadata: metadata(change.event_id, stream),
    severity_id: 1,
    severity: SEVERITIES[1],
    status_id: 1,
    status: 'Success',
    message: change.message,
    actor: by ? { user: userOf(by), idp: { name: by.iss } } : { app_name: 'Gatehouse' },
    comment: change.comment,
    entity: change.entity,
    unmapped,
  };
}

// ---- classification ---------------------------------------------------------

interface EventClass {
  class_uid: number;
  class_name: string;
  category_uid: number;
  category_name: string;
}

/** OCSF 1.3 HTTP Activity activity ids; PATCH has none until 1.7. */
const HTTP_ACTIVITIES: Record<string, [number, string]> = {
  CONNECT: [1, 'Connect'],
  DELETE: [2, 'Delete'],
  GET: [3, 'Get'],
  HEAD: [4, 'Head'],
  OPTIONS: [5, 'Options'],
  POST: [6, 'Post'],
  PUT: [7, 'Put'],
  TRACE: [8, 'Trace'],
};

/** Datastore Activity ids by PostgreSQL statement kind. */
const DATASTORE_ACTIVITIES: Record<string, [number, string]> = {
  select: [4, 'Query'],
  update: [2, 'Update'],
  insert: [5, 'Write'],
  copy: [5, 'Write'],
  create: [6, 'Create'],
  delete: [7, 'Delete'],
  drop: [7, 'Delete'],
  truncate: [7, 'Delete'],
};

/** The class that fits the protocol; OCSF's Base Event when not even the protocol is known. */
const PROTOCOL_CLASSES: Record<Protocol, EventClass> = {
  http: { class_uid: 4002, class_name: 'HTTP Activity', category_uid: 4, category_name: 'Network Activity' },
  postgres: { class_uid: 6005, class_name: 'Datastore Activity', category_uid: 6, category_name: 'Application Activity' },
  ssh: { class_uid: 4007, class_name: 'SSH Activity', category_uid: 4, category_name: 'Network Activity' },
};
const BASE_EVENT: EventClass = { class_uid: 0, class_name: 'Base Event', category_uid: 0, category_name: 'Uncategorized' };

// ---- outcome ----------------------------------------------------------------

const SEVERITIES: Record<number, string> = { 1: 'Informational', 2: 'Low', 3: 'Medium' };

interface Outcome {
  severity_id: number;
  action_id: number;
  action: string;
  disposition_id: number;
  disposition: string;
  status_id: number;
  status: string;
}

/**
 * The security-control profile's action/disposition. A request held for
 * approval did not go through (Denied) and is neither blocked for good nor
 * allowed, so its disposition is "Other".
 */
const OUTCOMES: Record<DecisionAction, Outcome> = {
  allow: { severity_id: 1, action_id: 1, action: 'Allowed', disposition_id: 1, disposition: 'Allowed', status_id: 1, status: 'Success' },
  deny: { severity_id: 2, action_id: 2, action: 'Denied', disposition_id: 2, disposition: 'Blocked', status_id: 2, status: 'Failure' },
  approve: { severity_id: 1, action_id: 2, action: 'Denied', disposition_id: 99, disposition: 'Pending Approval', status_id: 99, status: 'Pending Approval' },
};

// ---- shared objects ---------------------------------------------------------

function metadata(eventId: string | undefined, stream: string): Record<string, unknown> {
  return {
    version: OCSF_VERSION,
    product: { name: 'Gatehouse', vendor_name: 'Gatehouse', version: GATEHOUSE_VERSION },
    uid: eventId ?? randomUUID(),
    log_name: stream,
  };
}

/** OCSF user type 99 "Other" named "Agent": OCSF has no type for non-human callers. */
function userOf(identity: Identity): Record<string, unknown> {
  return {
    uid: identity.sub,
    name: identity.sub,
    type_id: identity.agent ? 99 : 1,
    type: identity.agent ? 'Agent' : 'User',
    groups: identity.groups.map((name) => ({ name })),
  };
}

function byColumnThenDetector(a: MaskCount, b: MaskCount): number {
  return a.column === b.column ? (a.detector ?? '').localeCompare(b.detector ?? '') : a.column.localeCompare(b.column);
}

function titleCase(word: string): string {
  return word.charAt(0) + word.slice(1).toLowerCase();
}

/** The caller names the method or statement kind, so "constructor" must not find Object.prototype's. */
function ownEntry<T>(table: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}
