import type { AuthorizeResult } from '../engine/authorize/authorizer.js';
import { readAction } from '../engine/approvals/action-integrity.js';
import type { ApprovalRecord } from '../engine/store/store.js';

/**
 * An approval request as the API shows it: the record, with its action
 * parsed and a link to itself. An action that does not hold its hash is not
 * shown (`action: null`): `action_mismatch` says why instead.
 */
export function approvalView(approval: ApprovalRecord, statusUrl: string): Record<string, unknown> {
  const reading = readAction(approval);
  return {
    id: approval.id,
    status: approval.status,
    status_url: statusUrl,
    target: approval.target,
    requester: approval.requester,
    action: reading.ok ? reading.stored : null,
    action_hash: approval.action_hash,
    action_mismatch: reading.ok ? null : reading.problem,
    reasons: approval.reasons,
    groups: approval.groups,
    min: approval.min,
    approvals: approval.votes.filter((v) => v.decision === 'approve').length,
    votes: approval.votes,
    mode: approval.mode,
    created_at: approval.created_at,
    expires_at: approval.expires_at,
    resolution: approval.resolution,
    resolved_at: approval.resolved_at,
    decision_id: approval.decision_id,
    session_id: approval.session_id,
    policy_revision: approval.policy_revision,
  };
}

/** The answer to POST /v1/authorize. */
export function authorizeView(result: AuthorizeResult, statusUrl: (id: string) => string): Record<string, unknown> {
  return {
    decision: result.decision,
    decision_id: result.decision_id,
    identity: result.identity ? { sub: result.identity.sub, act: result.identity.act, groups: result.identity.groups } : null,
    approval: result.approval ? approvalView(result.approval, statusUrl(result.approval.id)) : null,
    audit: result.audit,
    ...(result.refused ? { refused: result.refused } : {}),
  };
}
