import type { ApprovalRecord } from '../store/store.js';
import { actionHash } from './action.js';
import { ApprovalError } from './errors.js';

/** What an approval record's action text holds: the canonical {target, action} its hash covers (action.ts). */
export interface StoredAction {
  target: string;
  action: unknown;
}

export type ActionReading = { ok: true; stored: StoredAction } | { ok: false; problem: string };

type Stored = Pick<ApprovalRecord, 'target' | 'action' | 'action_hash'>;

/**
 * The action of an approval record as a human may be shown it to decide on.
 * A retry is matched to its approval by action_hash alone, while people read
 * the action text, and the store keeps the two side by side: whoever can
 * write to it (a shared PostgreSQL's admins) can put harmless text over a
 * hash that still matches the real request, so the approver reads one
 * action and approves another. Only text that hashes to action_hash, and
 * names the target the record says, is shown as the action.
 */
export function readAction(approval: Stored): ActionReading {
  if (actionHash(approval.action) !== approval.action_hash) {
    return { ok: false, problem: 'the stored action does not match its hash: the record was changed outside the gateway' };
  }
  let stored: unknown;
  try {
    stored = JSON.parse(approval.action);
  } catch {
    // The hash holds, so text and hash were replaced together: it covers no request a gateway asked about.
    return { ok: false, problem: 'the stored action is not JSON: the record was changed outside the gateway' };
  }
  // The target is kept beside the text too (approvers read it in lists and messages), and the hash covers only the text's.
  if (typeof stored !== 'object' || stored === null || (stored as { target?: unknown }).target !== approval.target) {
    return { ok: false, problem: 'the record\'s target is not the one its action hash covers: the record was changed outside the gateway' };
  }
  return { ok: true, stored: stored as StoredAction };
}

/**
 * Why an approving vote on this record must be refused, or null: an approval
 * must be of the action the approver read, and one whose text does not hold
 * (readAction) was not shown. Denying or revoking it stays possible, to end
 * the request.
 */
export function unapprovable(approval: Stored & Pick<ApprovalRecord, 'id'>): ApprovalError | null {
  const reading = readAction(approval);
  return reading.ok ? null : new ApprovalError('conflict', `approval ${approval.id} cannot be approved: ${reading.problem}; deny or revoke it`);
}
