import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { canonicalAction, type CanonicalAction } from '../approvals/action.js';
import { meetsRequirement } from '../approvals/rules.js';
import type { ApprovalService } from '../approvals/service.js';
import type { AppendedEvent, AuditLog } from '../audit/audit-log.js';
import { decisionEvent, maskingEvent, type DecisionFacts, type MaskCount } from '../audit/events.js';
import { nowNs } from '../clock.js';
import type { GatehouseConfig, TargetConfig } from '../config/schema.js';
import { TokenError, type Identity, type TokenVerifier } from '../identity/identity.js';
import { withoutJwts } from '../masking/url-credentials.js';
import { ApprovalError } from '../approvals/errors.js';
import { failClosed, type Decision } from '../policy/decision.js';
import type { Evaluation } from '../policy/evaluator.js';
import type { ApprovalRecord } from '../store/store.js';
import { approvableAction, checkAction, unbindable } from './action-input.js';
import { DecisionCache } from './decision-cache.js';
import { requestFacts } from './request-facts.js';

export interface AuthorizeRequest {
  /** The caller's bearer token, as presented. */
  token: string | undefined;
  /**
   * An identity this front end verified earlier in the same session
   * (`authenticate`); the token is then not verified again. A session-based
   * protocol (Postgres, SSH) logs in once and decides many requests.
   */
  identity?: Identity;
  /**
   * Set only when the decision depends on nothing but what the key encodes:
   * the first evaluation is then reused for the same key and bundle revision.
   */
  cacheKey?: string;
  target: string;
  /** The protocol part of the policy input, e.g. {"postgres": {...}}. */
  action: unknown;
  sessionId?: string;
  sourceIp?: string | null;
}

export interface AuthorizeHooks {
  /** Called once when the request starts waiting for a human (hold mode). */
  onHeld?(approval: ApprovalRecord): void;
  /** Aborting ends a held wait early (the caller went away); the result is a deny. */
  signal?: AbortSignal;
  /**
   * When the caller stops waiting (ms since the epoch), e.g. the deadline
   * Envoy puts on a Check. A hold that would outlast it ends a moment
   * before, as a ticket: the approval request stays pending and the caller
   * is told where to follow it, rather than timing out with nothing.
   */
  holdDeadline?: number;
  /**
   * Called with an allow before its audit event is written, and with an
   * approve before anyone is asked: the front end says whether it can
   * enforce it (a mask plan it cannot apply, say). A reason turns it into a
   * deny, so the audit trail records what was enforced and no human
   * approves what could not run. It can only take away, never allow.
   */
  enforce?(decision: Decision): Promise<string | null>;
  /**
   * The front end will ask again once it knows the whole request (a Postgres
   * Parse: the parameter values come with each Bind), so an approval asked
   * now would bind less than what runs. An `approve` decision is audited as
   * it stands (pending, no approval request) and returned to be asked again.
   */
  approvalLater?: boolean;
}

/** Why a request was refused before policy could decide it. */
export type Refusal = 'unauthenticated' | 'unknown_target' | 'invalid_action';

export interface AuthorizeResult {
  decision: Decision;
  decision_id: string;
  identity: Identity | null;
  /** The approval request this decision created, waited on or used. */
  approval: ApprovalRecord | null;
  /** Where the decision's audit event landed; null only for a fail-open target whose audit write failed. */
  audit: AppendedEvent | null;
  refused?: Refusal;
}

/** The policy engine as the authorizer needs it. */
export interface PolicyEngine {
  evaluate(entrypoint: string, input: unknown): Evaluation;
  /** The active bundle's revision; without it nothing is cached. */
  revision?(): string | null;
}

export interface AuthorizerOptions {
  config: Pick<GatehouseConfig, 'targets' | 'policy'>;
  verifier: TokenVerifier;
  policy: PolicyEngine;
  approvals: ApprovalService;
  audit: AuditLog;
  /** The URL where a caller can follow an approval request. */
  statusUrl(approvalId: string): string;
  logger: Logger;
  /** The session recorder: an allow is denied while it cannot keep entries, unless the target's recording fails open. */
  recordings?: { readonly accepting: boolean };
}

/** Everything known about one request once identity, target and action are checked. */
interface Request {
  identity: Identity;
  target: TargetConfig;
  action: Record<string, unknown>;
  canonical: CanonicalAction;
  sessionId: string;
  sourceIp: string | null;
  entrypoint: string;
  enforce: AuthorizeHooks['enforce'];
}

const DEFAULT_HOLD_SECONDS = 300;
const UNRECORDED = 'session recording is failing (the recorder cannot keep more entries while the store fails), so the request is denied rather than go unrecorded; the target\'s recording.fail_open would let it through';
/** How long before the caller's deadline a hold turns into a ticket: time for the answer to get back. */
const DEADLINE_MARGIN_MS = 250;

/**
 * The one call every front end makes: authorize(token, target, action).
 * It verifies identity, evaluates policy, handles approvals, and writes the
 * audit event, in that order. Every path out of it, refusals included, is
 * a decision with an audit event; a decision whose event cannot be written
 * is denied (fail closed) unless its target opted out, and so is an allow
 * while the session recorder can keep no more entries.
 */
export class Authorizer {
  private readonly targets: Map<string, TargetConfig>;
  /** Aborted at shutdown: held requests end (denied and audited) instead of outliving the audit log. */
  private readonly closing = new AbortController();
  private readonly inflight = new Set<Promise<AuthorizeResult>>();
  private readonly cache = new DecisionCache();
  /** Approval lookups in flight, by requester and action (openApproval). */
  private readonly opening = new Map<string, Promise<ApprovalRecord>>();
  /** How many held requests wait on each approval request (identical requests share one). */
  private readonly waiters = new Map<string, number>();

  constructor(private readonly options: AuthorizerOptions) {
    this.targets = new Map(options.config.targets.map((t) => [t.name, t]));
  }

  async authorize(req: AuthorizeRequest, hooks: AuthorizeHooks = {}): Promise<AuthorizeResult> {
    const decision = this.decide(req, hooks);
    this.inflight.add(decision);
    try {
      return await decision;
    } finally {
      this.inflight.delete(decision);
    }
  }

  /**
   * The revision of the bundle deciding now (null when none is loaded, or
   * the engine does not say): a decision kept for later (a prepared
   * statement's) stands only while it is the one it was made under.
   */
  policyRevision(): string | null {
    return this.options.policy.revision?.() ?? null;
  }

  /** Ends held requests and waits until every decision in flight is audited. */
  async close(): Promise<void> {
    this.closing.abort();
    await Promise.allSettled([...this.inflight]);
  }

  /**
   * Verifies a session's token once, at login. A refusal is audited like any
   * other decision (the action, if given, says what the caller was after).
   */
  async authenticate(req: Omit<AuthorizeRequest, 'identity' | 'cacheKey'>): Promise<{ identity: Identity } | { identity: null; result: AuthorizeResult }> {
    const verified = await this.verify(req.token);
    if (verified.identity) return { identity: verified.identity };
    const sessionId = req.sessionId ?? randomUUID();
    const result = await this.refuse('unauthenticated', verified.reason, {
      identity: null, target: this.targets.get(req.target), targetName: req.target, action: req.action, sessionId, sourceIp: req.sourceIp ?? null,
    });
    return { identity: null, result };
  }

  /**
   * Denies a request the front end could not turn into a policy input (SQL
   * the parser rejects, say), with the same audit event as any refusal.
   */
  refuseInvalid(req: AuthorizeRequest & { identity: Identity }, reason: string): Promise<AuthorizeResult> {
    return this.refuse('invalid_action', reason, {
      identity: req.identity, target: this.targets.get(req.target), targetName: req.target, action: req.action,
      sessionId: req.sessionId ?? randomUUID(), sourceIp: req.sourceIp ?? null,
    });
  }

  /**
   * Records what an allowed request's mask plan did (counts per column and
   * detector). The rows have gone by then, so a failed write cannot deny
   * anything: it is logged loudly instead.
   */
  async recordMasking(facts: { identity: Identity; target: string; sessionId: string; decisionId: string; summary: string; records: number; masked: MaskCount[] }): Promise<void> {
    const target = this.targets.get(facts.target);
    if (!target || facts.masked.length === 0) return;
    try {
      await this.options.audit.append(maskingEvent({
        identity: facts.identity,
        target: { name: target.name, kind: target.kind, labels: target.labels },
        decision_id: facts.decisionId,
        session_id: facts.sessionId,
        summary: facts.summary.length > 200 ? `${facts.summary.slice(0, 200)}…` : facts.summary,
        records: facts.records,
        masked: facts.masked,
      }, this.options.audit.stream));
    } catch (err) {
      this.options.logger.error({ err, decision_id: facts.decisionId }, 'AUDIT EVENT LOST: masking counts could not be written');
    }
  }

  private async verify(token: string | undefined): Promise<{ identity: Identity; reason?: never } | { identity: null; reason: string }> {
    try {
      return { identity: await this.options.verifier.verify(token ?? '') };
    } catch (err) {
      if (!(err instanceof TokenError)) this.options.logger.error({ err }, 'token verification failed unexpectedly');
      return { identity: null, reason: err instanceof TokenError ? `token rejected (${err.reason}): ${err.message}` : 'token could not be verified' };
    }
  }

  private async decide(req: AuthorizeRequest, hooks: AuthorizeHooks): Promise<AuthorizeResult> {
    const sessionId = req.sessionId ?? randomUUID();
    const sourceIp = req.sourceIp ?? null;
    const target = this.targets.get(req.target);

    let identity: Identity;
    if (req.identity) {
      identity = req.identity;
    } else {
      const verified = await this.verify(req.token);
      if (!verified.identity) {
        return this.refuse('unauthenticated', verified.reason, { identity: null, target, targetName: req.target, action: req.action, sessionId, sourceIp });
      }
      identity = verified.identity;
    }
    if (!target) {
      const why = req.target === '' ? 'the request names no target' : `no target named "${req.target}" is configured`;
      return this.refuse('unknown_target', why, { identity, target, targetName: req.target, action: req.action, sessionId, sourceIp });
    }
    const checked = checkAction(req.action, target.kind);
    if (!checked.ok) {
      return this.refuse('invalid_action', checked.problem, { identity, target, targetName: req.target, action: req.action, sessionId, sourceIp });
    }

    const request: Request = {
      identity,
      target,
      action: checked.action,
      canonical: canonicalAction(target.name, approvableAction(checked.action, target.kind)),
      sessionId,
      sourceIp,
      entrypoint: this.options.config.policy.entrypoints[target.kind],
      enforce: hooks.enforce,
    };
    const first = this.firstEvaluation(request, req.cacheKey);
    if (first.decision.action !== 'approve' || hooks.approvalLater) return this.record(request, first, null);
    // What could not be enforced once approved is denied now, before a human is asked.
    const enforced = await this.enforceable(request, first);
    if (enforced.decision.action !== 'approve') return this.record(request, enforced, null);
    const unbound = unbindable(request.action, target.kind);
    if (unbound) return this.record(request, withDecision(first, denial(first.decision, [unbound])), null);
    return this.approve(request, first, hooks);
  }

  /** The policy asks for a human: use an approval already granted, or ask and (in hold mode) wait. */
  private async approve(request: Request, first: Evaluation, hooks: AuthorizeHooks): Promise<AuthorizeResult> {
    const { approvals } = this.options;
    const requirement = first.decision.approval!;
    const mode = requirement.mode ?? request.target.approval?.mode ?? 'hold';

    let pending: ApprovalRecord;
    try {
      pending = await this.openApproval(request, first, mode);
    } catch (err) {
      return this.failApproval(request, first, err);
    }
    if (pending.status === 'approved') return this.spend(request, pending);

    const holdMs = Math.min(
      (request.target.approval?.timeout_seconds ?? DEFAULT_HOLD_SECONDS) * 1000,
      Math.max(0, Date.parse(pending.expires_at) - Date.now()),
    );
    const callerWaitsMs = hooks.holdDeadline === undefined ? Number.POSITIVE_INFINITY : hooks.holdDeadline - Date.now() - DEADLINE_MARGIN_MS;
    if (mode === 'ticket' || callerWaitsMs <= 0) return this.ticket(request, first, pending);

    hooks.onHeld?.(pending);
    const waitMs = Math.min(holdMs, callerWaitsMs);
    let resolved: ApprovalRecord | null;
    this.waiters.set(pending.id, (this.waiters.get(pending.id) ?? 0) + 1);
    try {
      resolved = await this.waitFor(pending, waitMs, hooks.signal);
    } catch (err) {
      return this.failApproval(request, first, err);
    } finally {
      const left = (this.waiters.get(pending.id) ?? 1) - 1;
      if (left > 0) this.waiters.set(pending.id, left);
      else this.waiters.delete(pending.id);
    }
    const callerDeadlineFirst = waitMs < holdMs && !hooks.signal?.aborted && !this.closing.signal.aborted;
    if (!resolved && callerDeadlineFirst) return this.ticket(request, first, pending);
    if (!resolved) {
      const callerLeft = hooks.signal?.aborted === true && !this.closing.signal.aborted;
      const why = this.closing.signal.aborted
        ? 'the gateway shut down while the request was held'
        : callerLeft ? 'the caller went away while held' : `no decision within ${Math.round(holdMs / 1000)} s`;
      // Identical requests share the approval request (openApproval): it is withdrawn with the last one waiting on it.
      const ended = callerLeft && this.waiters.has(pending.id) ? pending : await approvals.expire(pending, why).catch(() => pending);
      return this.record(request, withDecision(first, denial(first.decision, [`approval ${pending.id} was not granted: ${why}`])), ended);
    }
    return this.settle(request, first, resolved);
  }

  /**
   * The requester's open approval request for this action (pending, or
   * approved and not yet used), created when there is none, or when the
   * open one was asked under a weaker requirement than the policy's now. Identical
   * requests arriving together share one lookup, so they share one request
   * rather than each opening its own, which a human could approve twice.
   * (Gateways on one store can still race each other; the store keeps no
   * uniqueness of open requests.)
   */
  private openApproval(request: Request, first: Evaluation, mode: 'hold' | 'ticket'): Promise<ApprovalRecord> {
    const { identity, canonical } = request;
    const key = JSON.stringify([identity.iss, identity.sub, identity.act?.sub ?? null, canonical.hash]);
    const inflight = this.opening.get(key);
    if (inflight) return inflight;
    const { approvals } = this.options;
    const requirement = first.decision.approval!;
    const opening = (async () => {
      let open = await approvals.findOpen(identity, canonical.hash);
      if (open && !meetsRequirement(open, requirement)) {
        await approvals.expire(open, `the policy now asks for ${requirement.min} of ${requirement.groups.join(', ')}; a new request was opened`);
        open = null;
      }
      return open ?? approvals.request({
        requester: identity,
        target: request.target.name,
        action: canonical,
        requirement,
        mode,
        reasons: first.decision.reasons,
        decisionId: first.metadata.decision_id,
        sessionId: request.sessionId,
        policyRevision: first.metadata.bundle_revision,
      });
    })().finally(() => this.opening.delete(key));
    this.opening.set(key, opening);
    return opening;
  }

  private waitFor(pending: ApprovalRecord, ms: number, callerSignal: AbortSignal | undefined): Promise<ApprovalRecord | null> {
    // Combined only here: most decisions never wait, and AbortSignal.any costs on every call.
    const signal = callerSignal ? AbortSignal.any([callerSignal, this.closing.signal]) : this.closing.signal;
    return this.options.approvals.waitForResolution(pending.id, ms, signal);
  }

  /** A human decided: use the approval, or deny with their answer. */
  private settle(request: Request, first: Evaluation, resolved: ApprovalRecord): Promise<AuthorizeResult> {
    if (resolved.status === 'approved') return this.spend(request, resolved);
    return this.record(request, withDecision(first, denial(first.decision, [
      `approval ${resolved.id} was ${resolved.status}${resolved.resolution ? `: ${resolved.resolution}` : ''}`,
    ])), resolved);
  }

  /** Denied for now: the approval request stays pending, and the caller retries once it is approved. */
  private ticket(request: Request, first: Evaluation, pending: ApprovalRecord): Promise<AuthorizeResult> {
    return this.record(request, withDecision(first, denial(first.decision, [
      `approval required: request ${pending.id} is pending with ${pending.groups.join(', ')}; follow it at ${this.options.statusUrl(pending.id)} and retry once it is approved`,
    ])), pending);
  }

  /** Uses an approved request once and decides again with it in input.approval. */
  private async spend(request: Request, approved: ApprovalRecord): Promise<AuthorizeResult> {
    // The policy may have been tightened while the request waited (a bundle reloaded mid-hold).
    const now = this.evaluate(request, null);
    const requirement = now.decision.action === 'approve' ? now.decision.approval : undefined;
    if (requirement && !meetsRequirement(approved, requirement)) {
      const why = `approval ${approved.id} was granted under a weaker rule than the policy's now (${requirement.min} of ${requirement.groups.join(', ')}); ask again`;
      const ended = await this.options.approvals.expire(approved, why).catch(() => approved);
      return this.record(request, withDecision(now, denial(now.decision, [why])), ended);
    }
    let consumed: ApprovalRecord | null;
    try {
      consumed = await this.options.approvals.consume(approved, request.identity);
    } catch (err) {
      return this.failApproval(request, this.evaluate(request, null), err);
    }
    if (!consumed) {
      const evaluation = this.evaluate(request, null);
      return this.record(request, withDecision(evaluation, denial(evaluation.decision, [`approval ${approved.id} was already used`])), approved);
    }
    const replay = this.evaluate(request, consumed);
    if (replay.decision.action === 'allow') return this.record(request, replay, consumed);
    return this.record(request, withDecision(replay, denial(replay.decision, [
      `approval ${consumed.id} does not satisfy the policy any more`,
    ])), consumed);
  }

  private firstEvaluation(request: Request, cacheKey: string | undefined): Evaluation {
    const { policy } = this.options;
    if (cacheKey === undefined || !policy.revision) return this.evaluate(request, null);
    const key = `${request.target.name}\0${cacheKey}`;
    const cached = this.cache.get(key, policy.revision());
    if (cached) return cached;
    const evaluation = this.evaluate(request, null);
    this.cache.set(key, evaluation);
    return evaluation;
  }

  /**
   * The policy's decision, with any JWT in its reasons redacted. A reason
   * may quote what the caller sent (the HTTP policy's quote the path and
   * method-override values), and from here reasons go into the audit
   * event, an approval record, a recording and the answer, of every
   * protocol: redacted once here, as the path is in the request facts
   * (request-facts.ts), by the same function.
   */
  private evaluate(request: Request, approval: ApprovalRecord | null): Evaluation {
    const { identity, target } = request;
    const evaluation = this.options.policy.evaluate(request.entrypoint, {
      ...request.action,
      identity,
      target: { name: target.name, kind: target.kind, labels: target.labels },
      session: { id: request.sessionId },
      now_ns: nowNs(),
      approval: approval ? { id: approval.id, status: 'approved' } : null,
    });
    const { reasons } = evaluation.decision;
    const redacted = reasons.map(withoutJwts);
    return redacted.every((reason, i) => reason === reasons[i]) ? evaluation : withDecision(evaluation, { ...evaluation.decision, reasons: redacted });
  }

  private failApproval(request: Request, first: Evaluation, err: unknown): Promise<AuthorizeResult> {
    if (err instanceof ApprovalError && err.code === 'too_many') {
      // Not a failure: the requester has as many requests pending as approvals.max_pending_per_requester allows.
      this.options.logger.warn({ requester: request.identity.sub, target: request.target.name }, err.message);
      return this.record(request, withDecision(first, failClosed(err.message)), null);
    }
    this.options.logger.error({ err, target: request.target.name }, 'approval handling failed; denying');
    return this.record(request, withDecision(first, failClosed('the approval service failed; the request is denied')), null);
  }

  private refuse(
    refused: Refusal,
    reason: string,
    context: { identity: Identity | null; target: TargetConfig | undefined; targetName: string; action: unknown; sessionId: string; sourceIp: string | null },
  ): Promise<AuthorizeResult> {
    const decisionId = randomUUID();
    const decision = failClosed(reason);
    const kind = context.target?.kind ?? null;
    const checked = kind ? checkAction(context.action, kind) : null;
    const described = kind && checked?.ok ? requestFacts(kind, checked.action) : null;
    const facts: DecisionFacts = {
      identity: context.identity,
      source_ip: context.sourceIp,
      target: { name: context.targetName, kind, labels: context.target?.labels ?? {} },
      request: described?.request ?? null,
      summary: described?.summary ?? `refused: ${refused}`,
      action: 'deny',
      policy: { entrypoint: kind ? this.options.config.policy.entrypoints[kind] : null, bundle_revision: null, decision_id: decisionId, reasons: decision.reasons, failure: refused },
      masked: [],
      approval_id: null,
      session_id: context.sessionId,
      action_hash: null,
    };
    return this.append(facts, context.target, { decision, decision_id: decisionId, identity: context.identity, approval: null, refused });
  }

  private async record(request: Request, evaluated: Evaluation, approval: ApprovalRecord | null): Promise<AuthorizeResult> {
    const evaluation = await this.enforceable(request, evaluated);
    const { decision, metadata } = evaluation;
    const { request: facts, summary } = requestFacts(request.target.kind, request.action);
    return this.append({
      identity: request.identity,
      source_ip: request.sourceIp,
      target: { name: request.target.name, kind: request.target.kind, labels: request.target.labels },
      request: facts,
      summary,
      action: decision.action,
      policy: {
        entrypoint: metadata.entrypoint,
        bundle_revision: metadata.bundle_revision,
        decision_id: metadata.decision_id,
        reasons: decision.reasons,
        failure: metadata.failure ?? null,
      },
      masked: [],
      approval_id: approval?.id ?? null,
      session_id: request.sessionId,
      action_hash: request.canonical.hash,
    }, request.target, { decision, decision_id: metadata.decision_id, identity: request.identity, approval });
  }

  /** An allow, or an approve about to be asked or held, that the front end cannot enforce becomes a deny. */
  private async enforceable(request: Request, evaluation: Evaluation): Promise<Evaluation> {
    if (evaluation.decision.action === 'deny') return evaluation;
    const { recording } = request.target;
    if (recording.enabled && !recording.fail_open && this.options.recordings?.accepting === false) {
      return withDecision(evaluation, { action: 'deny', reasons: [UNRECORDED], mask: [] });
    }
    if (!request.enforce) return evaluation;
    let refusal: string | null;
    try {
      refusal = await request.enforce(evaluation.decision);
    } catch (err) {
      this.options.logger.error({ err, target: request.target.name }, 'the front end could not prepare to enforce a decision; denying');
      refusal = UNENFORCEABLE;
    }
    return refusal === null ? evaluation : withDecision(evaluation, { action: 'deny', reasons: [refusal], mask: [] });
  }

  /** Writes the decision's audit event; no durable event, no allow. */
  private async append(
    facts: DecisionFacts,
    target: TargetConfig | undefined,
    result: Omit<AuthorizeResult, 'audit'>,
  ): Promise<AuthorizeResult> {
    const { audit, logger } = this.options;
    try {
      return { ...result, audit: await audit.append(decisionEvent(facts, audit.stream)) };
    } catch (err) {
      if (target?.audit.fail_open) {
        logger.error({ err, target: target.name, decision_id: result.decision_id }, 'AUDIT EVENT LOST: the decision stands because the target is configured with audit.fail_open');
        return { ...result, audit: null };
      }
      logger.error({ err, decision_id: result.decision_id }, 'audit event could not be written; denying');
      return { ...result, decision: failClosed('the audit trail is unavailable, so the request is denied'), audit: null };
    }
  }
}

function withDecision(evaluation: Evaluation, decision: Decision): Evaluation {
  return { decision, metadata: evaluation.metadata };
}

/** A deny that keeps the policy's reasons and adds why it did not go through. */
function denial(decision: Decision, why: string[]): Decision {
  return { action: 'deny', reasons: [...decision.reasons, ...why], mask: [] };
}


/** The reason of a deny when the front end's enforce hook failed (a mask plan that could not be prepared). */
export const UNENFORCEABLE = 'the gateway could not prepare to enforce the decision';
