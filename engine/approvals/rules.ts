import { isHuman, type Identity } from '../identity/identity.js';
import type { ApprovalRequirement } from '../policy/decision.js';
import type { ApprovalRecord } from '../store/store.js';
import { normalizeStreamSafe } from '../unicode.js';

/**
 * Why `approver` may not vote on `approval`, or null when they may. The
 * two-person rule: a human in one of the policy's approver groups, who is
 * neither the requester, nor the human the requesting agent acts for, nor
 * an earlier actor in its delegation chain, and who has not voted on it
 * already.
 */
export function approverRefusal(approval: ApprovalRecord, approver: Identity): string | null {
  if (!isHuman(approver)) {
    return `${approver.sub} is an agent; approvals are for humans`;
  }
  const requester = approval.requester;
  const who = samePerson(approver.sub);
  if (who(requester.sub)) return `${approver.sub} requested this action and cannot approve it`;
  if (requester.act && who(requester.act.sub)) {
    return `${approver.sub} is the human ${requester.sub} acts for and cannot approve their own agent's request`;
  }
  if (requester.prior_actors?.some(who)) {
    return `${approver.sub} acted earlier in the delegation chain of this request and cannot approve it`;
  }
  if (!approver.groups.some((g) => approval.groups.includes(g))) {
    return `${approver.sub} is not in an approver group of this request (${approval.groups.join(', ')})`;
  }
  if (approval.votes.some((v) => who(v.sub))) return `${approver.sub} has already voted on this request`;
  return null;
}

/**
 * For separation of duties, subjects that differ only in case or Unicode
 * form ("Lena" from one issuer, "lena" from another) are one person: the
 * rule errs towards asking another human.
 */
function samePerson(sub: string): (other: string) => boolean {
  const key = personKey(sub);
  return (other) => personKey(other) === key;
}

function personKey(sub: string): string {
  return normalizeStreamSafe(sub, 'NFKC').toLowerCase();
}

/**
 * Whether an open request still meets what the policy asks now: its
 * approvers came from groups the policy still names, and at least as many.
 * A request opened under a weaker rule (one sre-lead, where now two from
 * security must agree) must not stand in for the stronger one.
 */
export function meetsRequirement(approval: ApprovalRecord, requirement: ApprovalRequirement): boolean {
  return approval.min >= requirement.min && approval.groups.every((g) => requirement.groups.includes(g));
}

/** Whether `identity` is the one that asked: the same caller, acting for the same human. */
export function isRequester(approval: ApprovalRecord, identity: Identity): boolean {
  const r = approval.requester;
  return r.sub === identity.sub && r.iss === identity.iss && (r.act?.sub ?? null) === (identity.act?.sub ?? null);
}

/**
 * Whether `identity` is the human the requesting agent acted for. The act
 * claim names them within the agent token's issuer: the same name from
 * another issuer is someone else.
 */
export function isRequestersHuman(approval: ApprovalRecord, identity: Identity): boolean {
  const r = approval.requester;
  return r.act !== null && identity.sub === r.act.sub && identity.iss === r.iss;
}

/** May `identity` withdraw the request: the requester, the human behind it, or an approver. */
export function mayRevoke(approval: ApprovalRecord, identity: Identity): boolean {
  if (isRequester(approval, identity)) return true;
  if (!identity.agent && isRequestersHuman(approval, identity)) return true;
  return isHuman(identity) && identity.groups.some((g) => approval.groups.includes(g));
}
