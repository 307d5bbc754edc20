import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalAction } from '../../engine/approvals/action.js';
import { ApprovalService } from '../../engine/approvals/service.js';
import { AuditLog } from '../../engine/audit/audit-log.js';
import { approvalEvent } from '../../engine/audit/events.js';
import type { Identity } from '../../engine/identity/identity.js';
import { SqliteStore } from '../../engine/store/sqlite/sqlite-store.js';
import type { ApprovalRecord } from '../../engine/store/store.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';

const logger = pino({ level: 'silent' });
const SEAL_KEY = 'a-seal-key-of-at-least-thirty-two-bytes!';

function person(sub: string, groups: string[], extra: Partial<Identity> = {}): Identity {
  return { sub, iss: 'urn:test', groups, agent: false, act: null, claims: {}, ...extra };
}
const agent = person('agent-sre-2', ['sre-agents'], { agent: true, act: { sub: 'alice' } });
const bob = person('bob', ['dba']);

let dir: string;
let store: SqliteStore;
let audit: AuditLog;
let service: ApprovalService;

beforeEach(async () => {
  dir = makeTempDir('gatehouse-approval-trail-');
  store = SqliteStore.open({ path: join(dir, 'store.db'), logger });
  await store.migrate();
  audit = new AuditLog({ store, stream: 'gw-1', maxBatch: 64, logger });
  await audit.start();
  // Wired as the gateway wires it (engine/gateway.ts): each transition's audit event, and where it is.
  service = new ApprovalService({
    store,
    logger,
    sealKey: SEAL_KEY,
    recordTransition: async (event) => {
      const { stream, seq } = await audit.append(approvalEvent({ approval: event.approval, transition: event.transition, by: event.by ?? undefined, reason: event.reason }, audit.stream));
      return { stream, seq };
    },
  });
});

afterEach(async () => {
  await audit.close();
  await store.close();
  removeDir(dir);
});

async function approvedRequest(): Promise<ApprovalRecord> {
  const { id } = await service.request({
    requester: agent,
    target: 'orders-db',
    action: canonicalAction('orders-db', { postgres: { text: 'UPDATE orders SET status = 1 WHERE id = 7' } }),
    requirement: { groups: ['dba'], min: 1, ttl_seconds: 900 },
    mode: 'hold',
    reasons: ['approval required'],
    decisionId: 'decision-1',
    sessionId: 'session-1',
    policyRevision: 'rev-1',
  });
  return service.vote(id, bob, 'approve', null);
}

/** What someone with write access to the store, and no key, can do: set a record back to what it was. */
async function setBack(id: string, to: ApprovalRecord): Promise<ApprovalRecord> {
  const current = (await store.getApproval(id))!;
  return (await store.updateApproval({ ...to, version: current.version }, current.version))!;
}

describe('the audit trail decides whether a request was spent', () => {
  it('notes each transition\'s audit event for its request', async () => {
    const approved = await approvedRequest();
    await service.consume(approved, agent);
    const refs = await store.approvalEventRefs(approved.id);
    const transitions = (await store.auditRecordsAt(refs)).map((r) => (JSON.parse(r.event) as { unmapped: { transition: string } }).unmapped.transition);
    expect(transitions).toEqual(['requested', 'approved', 'consumed']);
  });

  it('does not spend a consumed request set back to approved in the store, sealed votes and all', async () => {
    const approved = await approvedRequest();
    expect(await service.consume(approved, agent)).toMatchObject({ status: 'consumed' });
    const replayed = await setBack(approved.id, approved);
    expect(replayed.status).toBe('approved');
    expect(await service.consume(replayed, agent)).toBeNull();
    const ended = await service.get(approved.id);
    expect(ended.status).toBe('expired');
    expect(ended.resolution).toMatch(/^the audit chain shows it consumed \(gw-1#3\): the record was changed outside the gateway$/);
  });

  it('does not spend a revoked request reopened in the store', async () => {
    const approved = await approvedRequest();
    await service.revoke(approved.id, bob, 'wrong ticket');
    const reopened = await setBack(approved.id, approved);
    expect(await service.consume(reopened, agent)).toBeNull();
    expect((await service.get(approved.id)).resolution).toMatch(/audit chain shows it revoked/);
  });

  it('refuses when an audit event of the request was edited in place', async () => {
    const approved = await approvedRequest();
    const [requested] = await store.approvalEventRefs(approved.id);
    // Its transition rewritten: the record no longer holds its hash.
    const db = new Database(join(dir, 'store.db'));
    db.prepare(`UPDATE audit_records SET event = replace(event, '"transition":"requested"', '"transition":"vote"') WHERE stream = ? AND seq = ?`).run(requested!.stream, requested!.seq);
    db.close();
    expect(await service.consume(approved, agent)).toBeNull();
    expect((await service.get(approved.id)).resolution).toMatch(/its audit event gw-1#1 does not hold its hash/);
  });

  it('does not spend a request whose window was widened in the store: the votes sealed its expiry', async () => {
    const approved = await approvedRequest();
    const widened = await setBack(approved.id, { ...approved, expires_at: new Date(Date.parse(approved.expires_at) + 86_400_000).toISOString() });
    expect(await service.consume(widened, agent)).toBeNull();
    expect((await service.get(approved.id)).resolution).toMatch(/votes do not hold their seals/);
  });

  it('spends a request seal and trail agree on', async () => {
    const approved = await approvedRequest();
    expect(await service.consume(approved, agent)).toMatchObject({ status: 'consumed' });
  });
});
