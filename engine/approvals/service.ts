import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { priorActors } from '../identity/claims.js';
import type { Identity } from '../identity/identity.js';
import type { ApprovalRequirement } from '../policy/decision.js';
import type { ApprovalQuery, ApprovalRecord, ApprovalStatus, AuditRef, Store } from '../store/store.js';
import { hasLoneSurrogate } from '../audit/canonical.js';
import { unapprovable } from './action-integrity.js';
import { ApprovalError } from './errors.js';
import { approverRefusal, isRequester, mayRevoke } from './rules.js';
import { endedInTrail } from './trail.js';
import { sealedApprovers, sealVote, voter, type SealKey } from './vote-seal.js';

export type ApprovalTransition = 'requested' | 'vote' | 'approved' | 'denied' | 'expired' | 'revoked' | 'consumed';

/** A state change, handed to the audit trail. */
export interface ApprovalTransitionEvent {
  approval: ApprovalRecord;
  transition: ApprovalTransition;
  /** Who caused it; null for the gateway itself (expiry, consumption). */
  by: Identity | null;
  reason: string | null;
}

export interface NewApproval {
  requester: Identity;
  target: string;
  action: { text: string; hash: string };
  requirement: ApprovalRequirement;
  mode: 'hold' | 'ticket';
  reasons: string[];
  decisionId: string;
  sessionId: string;
  policyRevision: string | null;
}

export interface ApprovalServiceOptions {
  store: Store;
  /**
   * Writes the audit event of a transition and says where it is, to be noted in the store (consume reads the
   * request's history there); a rejection is logged, never swallowed silently.
   */
  recordTransition(event: ApprovalTransitionEvent): Promise<AuditRef | void>;
  /** Told of every new request, e.g. to send the webhook. */
  onRequested?(approval: ApprovalRecord): void;
  logger: Logger;
  now?: () => number;
  /** How often due requests are expired. */
  sweepIntervalMs?: number;
  /** A held request also polls at this pace, in case a notification is lost. */
  pollIntervalMs?: number;
  /** approvals.seal_key: votes are sealed with it, and a request is spent only on enough sealed votes. */
  sealKey?: SealKey | undefined;
  /**
   * approvals.max_pending_per_requester: pending requests (in their window) one requester may have; past it
   * request() refuses a new one (ApprovalError 'too_many'), which the authorizer denies, fail-closed.
   */
  maxPendingPerRequester?: number | undefined;
}

/** approvals.max_pending_per_requester's default (engine/config/schema.ts). */
export const DEFAULT_MAX_PENDING_PER_REQUESTER = 100;

const OPEN: ReadonlySet<ApprovalStatus> = new Set(['pending', 'approved']);
const MAX_UPDATE_ATTEMPTS = 8;

/**
 * Just-in-time approvals: requests, votes (N of M, two-person rule), expiry,
 * revocation, single-use consumption, and waiting for a decision. All state
 * lives in the store, so any gateway process sharing it can act on any
 * request, and every transition is audited.
 */
export class ApprovalService {
  private readonly now: () => number;
  private sweeper: NodeJS.Timeout | null = null;
  /** Per requester, the request() being made: one at a time, so concurrent ones cannot all pass the cap's count. */
  private readonly requesting = new Map<string, Promise<void>>();

  constructor(private readonly options: ApprovalServiceOptions) {
    this.now = options.now ?? Date.now;
  }

  start(): void {
    this.sweeper = setInterval(() => {
      this.expireDue().catch((err: unknown) => this.options.logger.error({ err }, 'approval expiry sweep failed'));
    }, this.options.sweepIntervalMs ?? 1000);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  /**
   * Opens a request, unless the requester already has approvals.max_pending_per_requester pending: one agent
   * must not bury the approvers' queue (and webhook) under requests. Requests by one requester are made one
   * at a time in this process, so the count is exact here; gateways sharing a store may together overshoot
   * it by the requests they make at the same moment.
   */
  request(spec: NewApproval): Promise<ApprovalRecord> {
    const { requester } = spec;
    const key = JSON.stringify([requester.iss, requester.sub]);
    const before = this.requesting.get(key) ?? Promise.resolve();
    const made = before.then(() => this.create(spec));
    const done = made.then(() => undefined, () => undefined);
    this.requesting.set(key, done);
    void done.then(() => {
      if (this.requesting.get(key) === done) this.requesting.delete(key);
    });
    return made;
  }

  private async create(spec: NewApproval): Promise<ApprovalRecord> {
    const created = this.now();
    const { requester } = spec;
    const max = this.options.maxPendingPerRequester ?? DEFAULT_MAX_PENDING_PER_REQUESTER;
    const pending = await this.options.store.countPendingApprovals({ sub: requester.sub, iss: requester.iss }, new Date(created).toISOString(), max);
    if (pending >= max) {
      throw new ApprovalError(
        'too_many',
        `${requester.sub} already has ${max} approval request${max === 1 ? '' : 's'} pending, the most approvals.max_pending_per_requester allows; ` +
          'no new one is opened until one of them is decided or expires',
      );
    }
    const approval: ApprovalRecord = {
      id: randomUUID(),
      status: 'pending',
      version: 1,
      requester: requesterOf(requester),
      target: spec.target,
      action: spec.action.text,
      action_hash: spec.action.hash,
      reasons: spec.reasons,
      groups: spec.requirement.groups,
      min: spec.requirement.min,
      mode: spec.mode,
      created_at: new Date(created).toISOString(),
      expires_at: new Date(created + spec.requirement.ttl_seconds * 1000).toISOString(),
      votes: [],
      resolution: null,
      resolved_at: null,
      decision_id: spec.decisionId,
      session_id: spec.sessionId,
      policy_revision: spec.policyRevision,
    };
    await this.options.store.createApproval(approval);
    await this.audit({ approval, transition: 'requested', by: requester, reason: null });
    this.options.onRequested?.(approval);
    return approval;
  }

  /** The request, with expiry applied if it is due. */
  async get(id: string): Promise<ApprovalRecord> {
    const approval = await this.options.store.getApproval(id);
    if (!approval) throw new ApprovalError('not_found', `no approval request ${id}`);
    return this.isDue(approval) ? await this.expire(approval, 'the approval window ended') : approval;
  }

  list(query: ApprovalQuery = {}): Promise<ApprovalRecord[]> {
    return this.options.store.listApprovals(query);
  }

  /**
   * One approver's vote. `min` approvals approve; one denial denies.
   * `seenHash`: the action hash the approver was shown (`approvals show`, the
   * webhook); an approval is then refused unless the record still holds it,
   * since text and hash replaced together in the store would otherwise pass
   * the integrity check between reading and approving.
   */
  async vote(id: string, approver: Identity, decision: 'approve' | 'deny', comment: string | null, seenHash?: string): Promise<ApprovalRecord> {
    if (decision === 'deny' && !comment) throw new ApprovalError('invalid', 'a denial needs a reason');
    // Checked before anything is committed: text with no canonical JSON would leave the vote without its audit event.
    if (comment !== null && hasLoneSurrogate(comment)) throw new ApprovalError('invalid', 'the comment is not well-formed Unicode');
    await this.get(id); // expires it first if its window has ended
    const at = new Date(this.now()).toISOString();
    const { record, transition } = await this.update(id, (current) => {
      if (this.isDue(current)) throw new ApprovalError('conflict', `approval ${id} has expired`);
      if (current.status !== 'pending') {
        throw new ApprovalError('conflict', `approval ${id} is ${current.status}, not pending`);
      }
      const refusal = approverRefusal(current, approver);
      if (refusal) throw new ApprovalError('forbidden', refusal);
      // A vote approves the hash, while the approver read the text: checked here, in the write, so text swapped after a read is caught too.
      const unreadable = decision === 'approve' ? unapprovable(current) ?? notTheOneSeen(current, seenHash) : null;
      if (unreadable) {
        this.options.logger.error({ approval: id, by: approver.sub }, unreadable.message);
        throw unreadable;
      }
      const vote = { ...voter(approver), decision, comment, at };
      const sealKey = this.options.sealKey;
      const votes = [...current.votes, sealKey ? { ...vote, seal: sealVote(sealKey, current, vote) } : vote];
      const approvals = votes.filter((v) => v.decision === 'approve').length;
      if (decision === 'deny') {
        return { next: { ...current, votes, status: 'denied', resolution: `denied by ${approver.sub}: ${comment}`, resolved_at: at }, transition: 'denied' };
      }
      if (approvals >= current.min) {
        return { next: { ...current, votes, status: 'approved', resolution: `approved by ${approvedBy(votes)}`, resolved_at: at }, transition: 'approved' };
      }
      return { next: { ...current, votes }, transition: 'vote' };
    });
    await this.audit({ approval: record, transition, by: approver, reason: comment });
    return record;
  }

  async revoke(id: string, by: Identity, reason: string | null): Promise<ApprovalRecord> {
    if (reason !== null && hasLoneSurrogate(reason)) throw new ApprovalError('invalid', 'the reason is not well-formed Unicode');
    const at = new Date(this.now()).toISOString();
    const { record } = await this.update(id, (current) => {
      if (!OPEN.has(current.status)) throw new ApprovalError('conflict', `approval ${id} is ${current.status} and cannot be revoked`);
      if (!mayRevoke(current, by)) {
        throw new ApprovalError('forbidden', `${by.sub} may not revoke approval ${id}: only the requester, the human behind it, or an approver may`);
      }
      const resolution = `revoked by ${by.sub}${reason ? `: ${reason}` : ''}`;
      return { next: { ...current, status: 'revoked', resolution, resolved_at: at }, transition: 'revoked' };
    });
    await this.audit({ approval: record, transition: 'revoked', by, reason });
    return record;
  }

  /**
   * The open request (pending or approved, not expired) by this caller for
   * exactly this action, if any: a retry reuses it instead of asking again.
   */
  async findOpen(requester: Identity, actionHash: string): Promise<ApprovalRecord | null> {
    const candidates = await this.options.store.listApprovals({ requester_sub: requester.sub, action_hash: actionHash });
    for (const candidate of candidates) {
      if (!OPEN.has(candidate.status) || !isRequester(candidate, requester)) continue;
      if (this.isDue(candidate)) {
        await this.expire(candidate, 'the approval window ended');
        continue;
      }
      return candidate;
    }
    return null;
  }

  /**
   * Spends an approved request on the one action it covers. Exactly one
   * caller wins, even across processes; the rest get null.
   */
  async consume(approval: ApprovalRecord, requester: Identity): Promise<ApprovalRecord | null> {
    if (approval.status !== 'approved' || !isRequester(approval, requester) || this.isDue(approval)) return null;
    const sealKey = this.options.sealKey;
    if (sealKey && sealedApprovers(sealKey, approval).size < approval.min) {
      // Approved in the store, not by enough votes a gateway took: the record was written from outside.
      this.options.logger.error({ approval: approval.id }, 'approval record is approved without enough sealed votes; it was changed outside the gateway and is not used');
      await this.expire(approval, 'its votes do not hold their seals: the record was changed outside the gateway');
      return null;
    }
    const ended = await endedInTrail(this.options.store, approval.id);
    if (ended) {
      this.options.logger.error({ approval: approval.id, trail: ended }, 'approval record is approved but its audit trail ended it; it was changed outside the gateway and is not used');
      await this.expire(approval, `${ended}: the record was changed outside the gateway`);
      return null;
    }
    const at = new Date(this.now()).toISOString();
    const consumed = await this.options.store.updateApproval(
      { ...approval, status: 'consumed', resolution: `${approval.resolution ?? 'approved'}; used once`, resolved_at: at },
      approval.version,
    );
    if (consumed) await this.audit({ approval: consumed, transition: 'consumed', by: requester, reason: null });
    return consumed;
  }

  /**
   * Waits until the request leaves `pending` (any process may decide it),
   * up to timeoutMs; resolves with the record then, or null on timeout.
   */
  waitForResolution(id: string, timeoutMs: number, signal?: AbortSignal): Promise<ApprovalRecord | null> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (result: ApprovalRecord | null, error?: unknown): void => {
        if (settled) return;
        settled = true;
        unsubscribe();
        clearInterval(poll);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (error) reject(error instanceof Error ? error : new Error(String(error)));
        else resolve(result);
      };
      const check = (): void => {
        this.get(id).then((current) => {
          if (current.status !== 'pending') finish(current);
        }, (err: unknown) => finish(null, err));
      };
      const onAbort = (): void => finish(null);
      const unsubscribe = this.options.store.onApprovalChange((changed) => {
        if (changed === id) check();
      });
      const poll = setInterval(check, this.options.pollIntervalMs ?? 1000);
      const timer = setTimeout(() => finish(null), timeoutMs);
      signal?.addEventListener('abort', onAbort);
      if (signal?.aborted) return finish(null);
      check(); // it may have been decided before we subscribed
    });
  }

  /** Ends a still-pending request, e.g. when the caller holding it gives up. */
  async expire(approval: ApprovalRecord, reason: string): Promise<ApprovalRecord> {
    const at = new Date(this.now()).toISOString();
    const { record, changed } = await this.update(approval.id, (current) => {
      if (!OPEN.has(current.status)) return { next: null, transition: 'expired' };
      return { next: { ...current, status: 'expired', resolution: reason, resolved_at: at }, transition: 'expired' };
    });
    // Several processes may race to expire it; only the one that did audits it.
    if (changed) await this.audit({ approval: record, transition: 'expired', by: null, reason });
    return record;
  }

  /** Expires every open request whose window has ended. */
  async expireDue(): Promise<number> {
    const before = new Date(this.now()).toISOString();
    let expired = 0;
    for (const status of ['pending', 'approved'] as const) {
      for (const approval of await this.options.store.listApprovals({ status, expires_before: before })) {
        await this.expire(approval, 'the approval window ended');
        expired += 1;
      }
    }
    return expired;
  }

  private isDue(approval: ApprovalRecord): boolean {
    return OPEN.has(approval.status) && Date.parse(approval.expires_at) <= this.now();
  }

  /**
   * Read, change, compare-and-set, retrying when another process got there
   * first. `change` returns next = null to leave the record as it is.
   */
  private async update(
    id: string,
    change: (current: ApprovalRecord) => { next: ApprovalRecord | null; transition: ApprovalTransition },
  ): Promise<{ record: ApprovalRecord; transition: ApprovalTransition; changed: boolean }> {
    for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS; attempt += 1) {
      const current = await this.options.store.getApproval(id);
      if (!current) throw new ApprovalError('not_found', `no approval request ${id}`);
      const { next, transition } = change(current);
      if (!next) return { record: current, transition, changed: false };
      const stored = await this.options.store.updateApproval(next, current.version);
      if (stored) return { record: stored, transition, changed: true };
    }
    throw new ApprovalError('conflict', `approval ${id} is being changed by others; try again`);
  }

  private async audit(event: ApprovalTransitionEvent): Promise<void> {
    try {
      const ref = await this.options.recordTransition(event);
      if (ref) await this.options.store.noteApprovalEvent(event.approval.id, ref);
    } catch (err) {
      this.options.logger.error({ err, approval: event.approval.id, transition: event.transition }, 'approval transition could not be audited');
      throw err;
    }
  }
}

/** The requester as the record keeps it: prior actors only when the act chain had any, so older records read the same. */
function requesterOf(identity: Identity): ApprovalRecord['requester'] {
  const prior = priorActors(identity);
  const requester = { sub: identity.sub, iss: identity.iss, act: identity.act, groups: identity.groups };
  return prior.length > 0 ? { ...requester, prior_actors: prior } : requester;
}

function notTheOneSeen(current: ApprovalRecord, seenHash: string | undefined): ApprovalError | null {
  if (seenHash === undefined || seenHash === current.action_hash) return null;
  return new ApprovalError('conflict', `approval ${current.id} cannot be approved: its action hash is ${current.action_hash}, not the ${seenHash} you were shown; `
    + 'the record was changed after you read it: read it again with gatehouse approvals show');
}

function approvedBy(votes: ApprovalRecord['votes']): string {
  return votes.filter((v) => v.decision === 'approve').map((v) => v.sub).join(', ');
}
