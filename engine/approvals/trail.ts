/**
 * An approval's history as the audit chain tells it. The approvals table is
 * state anyone who can write to the store could set back (a consumed
 * request made `approved` again, a revoked one reopened); the chain is where
 * such a change shows, so a request is spent only if none of its events
 * there ended it. Removing those events, or their places in
 * approval_events, breaks the chain or leaves a second `consumed` that
 * `audit verify` reports.
 */
import { recordHash } from '../audit/chain.js';
import type { Store } from '../store/store.js';

const ENDING: ReadonlySet<string> = new Set(['consumed', 'revoked', 'expired', 'denied']);

/** Why the request may not be spent according to its audit events, or null when none ended it. */
export async function endedInTrail(store: Store, approvalId: string): Promise<string | null> {
  const refs = await store.approvalEventRefs(approvalId);
  if (refs.length === 0) return null;
  const records = await store.auditRecordsAt(refs);
  if (records.length !== refs.length) return 'some of its audit events are missing from the chain';
  for (const record of records) {
    const where = `${record.stream}#${record.seq}`;
    if (recordHash(record.stream, record.seq, record.prev, record.event) !== record.hash) return `its audit event ${where} does not hold its hash`;
    const { unmapped } = JSON.parse(record.event) as { unmapped?: { approval_id?: unknown; transition?: unknown } };
    if (unmapped?.approval_id !== approvalId) return `its audit event ${where} is another request's`;
    if (typeof unmapped.transition === 'string' && ENDING.has(unmapped.transition)) return `the audit chain shows it ${unmapped.transition} (${where})`;
  }
  return null;
}
