/**
 * Seals on votes, so that an approval is spent only on votes a gateway
 * took. The store holds approval records where whoever can write to it
 * (a shared PostgreSQL's administrators) could add a vote or flip a status;
 * a vote sealed with a key only the gateways hold cannot be made there.
 *
 * A seal is an HMAC-SHA256 over the vote and what it approves: the request's
 * id, target, action hash, requester, requirement and window (created_at,
 * expires_at). Edit any of those in the store, or copy a vote to another
 * request, and its seal no longer holds. What a seal cannot say is that the
 * request has not been spent since: trail.ts reads that from the audit chain.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { canonicalJson } from '../audit/canonical.js';
import type { Identity } from '../identity/identity.js';
import type { ApprovalRecord, ApprovalVote } from '../store/store.js';

export type SealKey = string | Buffer;

export function sealVote(key: SealKey, approval: ApprovalRecord, vote: Omit<ApprovalVote, 'seal'>): string {
  return createHmac('sha256', key).update(sealedText(approval, vote)).digest('hex');
}

/** The distinct approvers (issuer and subject) whose approving votes carry a seal that holds for this request. */
export function sealedApprovers(key: SealKey, approval: ApprovalRecord): Set<string> {
  const approvers = new Set<string>();
  for (const vote of approval.votes) {
    if (vote.decision !== 'approve' || typeof vote.seal !== 'string' || typeof vote.iss !== 'string') continue;
    const expected = Buffer.from(sealVote(key, approval, vote), 'hex');
    const given = Buffer.from(vote.seal, 'hex');
    if (given.length === expected.length && timingSafeEqual(given, expected)) approvers.add(`${vote.iss}\n${vote.sub}`);
  }
  return approvers;
}

/** A vote's fields for its voter. */
export function voter(identity: Identity): Pick<ApprovalVote, 'sub' | 'iss'> {
  return { sub: identity.sub, iss: identity.iss };
}

function sealedText(approval: ApprovalRecord, vote: Omit<ApprovalVote, 'seal'>): string {
  const { requester } = approval;
  return canonicalJson({
    seal: 'gatehouse.approval-vote.v2',
    approval: approval.id,
    target: approval.target,
    action_hash: approval.action_hash,
    requester: {
      sub: requester.sub, iss: requester.iss, act: requester.act ? { sub: requester.act.sub } : null,
      // Only when kept, so seals on records from before prior actors were kept still hold.
      ...(requester.prior_actors ? { prior_actors: requester.prior_actors } : {}),
    },
    groups: approval.groups,
    min: approval.min,
    created_at: approval.created_at,
    expires_at: approval.expires_at,
    voter: { sub: vote.sub, iss: vote.iss ?? null },
    decision: vote.decision,
    at: vote.at,
  });
}
