import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalAction } from '../../engine/approvals/action.js';
import { ApprovalError } from '../../engine/approvals/errors.js';
import { ApprovalService, type ApprovalTransitionEvent, type NewApproval } from '../../engine/approvals/service.js';
import { ApprovalWebhook, signWebhook } from '../../engine/approvals/webhook.js';
import { Secret } from '../../engine/config/secret.js';
import type { Identity } from '../../engine/identity/identity.js';
import { SqliteStore } from '../../engine/store/sqlite/sqlite-store.js';
import type { ApprovalRecord } from '../../engine/store/store.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';
import { waitFor } from '../helpers/wait.js';

const logger = pino({ level: 'silent' });

function person(sub: string, groups: string[], extra: Partial<Identity> = {}): Identity {
  return { sub, iss: 'urn:test', groups, agent: false, act: null, claims: {}, ...extra };
}

const agent = person('agent-sre-2', ['sre-agents'], { agent: true, act: { sub: 'alice' } });
const alice = person('alice', ['dba']);
const bob = person('bob', ['dba']);
const carol = person('carol', ['dba']);
const mallory = person('mallory', ['analysts']);

const update = canonicalAction('orders-db', { postgres: { text: 'UPDATE orders SET status = 1 WHERE id = 7' } });

function newApproval(overrides: Partial<NewApproval> = {}): NewApproval {
  return {
    requester: agent,
    target: 'orders-db',
    action: update,
    requirement: { groups: ['dba'], min: 1, ttl_seconds: 900 },
    mode: 'hold',
    reasons: ['approval required by rule prod-writes-need-dba'],
    decisionId: 'decision-1',
    sessionId: 'session-1',
    policyRevision: 'rev-1',
    ...overrides,
  };
}

let dir: string;
let store: SqliteStore;
let transitions: ApprovalTransitionEvent[];
let clock: number;
let service: ApprovalService;

beforeEach(() => {
  dir = makeTempDir('gatehouse-approvals-');
  store = SqliteStore.open({ path: join(dir, 'store.db'), logger });
  transitions = [];
  clock = Date.parse('2026-11-22T10:00:00Z');
  service = new ApprovalService({
    store,
    logger,
    now: () => clock,
    pollIntervalMs: 50,
    recordTransition: async (event) => {
      transitions.push(event);
    },
  });
});

beforeEach(async () => {
  await store.migrate();
});

afterEach(async () => {
  service.stop();
  await store.close();
  removeDir(dir);
});

async function refusal(promise: Promise<unknown>): Promise<ApprovalError> {
  const err = await promise.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(ApprovalError);
  return err as ApprovalError;
}

describe('approval requests', () => {
  it('records who asked, the exact action and its hash, and audits the request', async () => {
    const approval = await service.request(newApproval());
    expect(approval).toMatchObject({
      status: 'pending',
      requester: { sub: 'agent-sre-2', act: { sub: 'alice' } },
      action: update.text,
      action_hash: update.hash,
      groups: ['dba'],
      min: 1,
      expires_at: '2026-11-22T10:15:00.000Z',
    });
    expect(update.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(await store.getApproval(approval.id)).toEqual(approval);
    expect(transitions.map((t) => t.transition)).toEqual(['requested']);
  });

  it('binds to the exact action: another statement or target hashes differently', () => {
    expect(canonicalAction('orders-db', { postgres: { text: 'UPDATE orders SET status = 1 WHERE id = 8' } }).hash).not.toBe(update.hash);
    expect(canonicalAction('staging-db', { postgres: { text: 'UPDATE orders SET status = 1 WHERE id = 7' } }).hash).not.toBe(update.hash);
    // Key order is not meaning: the canonical form is the same.
    expect(canonicalAction('orders-db', { b: 1, a: 2 }).hash).toBe(canonicalAction('orders-db', { a: 2, b: 1 }).hash);
  });
});

describe('the two-person rule', () => {
  it('refuses the requesting agent, the human it acts for, non-approvers and agents', async () => {
    const { id } = await service.request(newApproval());
    expect((await refusal(service.vote(id, { ...agent, groups: ['dba'] }, 'approve', null))).message).toMatch(/agent/);
    expect((await refusal(service.vote(id, alice, 'approve', null))).message).toMatch(/alice is the human agent-sre-2 acts for/);
    expect((await refusal(service.vote(id, mallory, 'approve', null))).code).toBe('forbidden');
    const requester = person('agent-sre-2', ['dba']);
    expect((await refusal(service.vote(id, requester, 'approve', null))).message).toMatch(/requested this action/);
    // The same person under another spelling of the subject (another issuer's casing, a compatibility form).
    expect((await refusal(service.vote(id, person('Alice', ['dba']), 'approve', null))).message).toMatch(/is the human agent-sre-2 acts for/);
    expect((await refusal(service.vote(id, person('ａｌｉｃｅ', ['dba']), 'approve', null))).message).toMatch(/is the human agent-sre-2 acts for/);
    expect((await service.get(id)).status).toBe('pending');
  });

  it('refuses an earlier actor of a nested delegation chain (RFC 8693 act in act), under any spelling', async () => {
    // bob's agent handed the job to agent-sre-2, which now acts for alice: bob had a hand in the request.
    const delegated = { ...agent, claims: { sub: 'alice', act: { sub: 'agent-sre-2', act: { sub: 'agent-bob', act: { sub: 'bob' } } } } };
    const { id } = await service.request(newApproval({ requester: delegated }));
    expect((await service.get(id)).requester.prior_actors).toEqual(['agent-bob', 'bob']);
    expect((await refusal(service.vote(id, bob, 'approve', null))).message).toMatch(/bob acted earlier in the delegation chain/);
    expect((await refusal(service.vote(id, person('BOB', ['dba']), 'approve', null))).message).toMatch(/acted earlier in the delegation chain/);
    expect((await service.vote(id, carol, 'approve', null)).status).toBe('approved');
    // The record is kept without prior actors when the chain had none, as before.
    expect((await service.request(newApproval({ action: canonicalAction('orders-db', { other: 1 }) }))).requester).not.toHaveProperty('prior_actors');
  });

  it('needs min distinct approvers (N of M), and one voter counts once', async () => {
    const { id } = await service.request(newApproval({ requirement: { groups: ['dba'], min: 2, ttl_seconds: 900 } }));
    expect((await service.vote(id, bob, 'approve', 'looks right')).status).toBe('pending');
    expect((await refusal(service.vote(id, bob, 'approve', null))).message).toMatch(/already voted/);
    expect((await refusal(service.vote(id, person('BOB', ['dba']), 'approve', null))).message).toMatch(/already voted/);
    const approved = await service.vote(id, carol, 'approve', null);
    expect(approved.status).toBe('approved');
    expect(approved.resolution).toBe('approved by bob, carol');
    expect(transitions.map((t) => t.transition)).toEqual(['requested', 'vote', 'approved']);
  });

  it('denies on one denial, with the reason, and a denial needs a reason', async () => {
    const { id } = await service.request(newApproval());
    expect((await refusal(service.vote(id, bob, 'deny', null))).code).toBe('invalid');
    const denied = await service.vote(id, bob, 'deny', 'not during the freeze');
    expect(denied).toMatchObject({ status: 'denied', resolution: 'denied by bob: not during the freeze' });
    expect((await refusal(service.vote(id, carol, 'approve', null))).code).toBe('conflict');
  });

  it('refuses an approving vote on a record whose action text no longer holds its hash; a denial still ends it', async () => {
    const { id } = await service.request(newApproval({ action: canonicalAction('orders-db', { postgres: { text: 'DROP TABLE orders' } }) }));
    // Swapped in the store after anyone read it: the check is in the vote's own write, not only where the action is shown.
    const current = (await store.getApproval(id))!;
    await store.updateApproval({ ...current, action: update.text }, current.version);
    const refused = await refusal(service.vote(id, bob, 'approve', null));
    expect(refused.code).toBe('conflict');
    expect(refused.message).toBe(`approval ${id} cannot be approved: the stored action does not match its hash: the record was changed outside the gateway; deny or revoke it`);
    expect((await store.getApproval(id))!.votes).toEqual([]);
    expect((await service.vote(id, bob, 'deny', 'changed in the store')).status).toBe('denied');
  });
});

describe('sealed votes (approvals.seal_key)', () => {
  const SEAL_KEY = 'a-seal-key-of-at-least-thirty-two-bytes!';
  let sealed: ApprovalService;
  beforeEach(() => {
    sealed = new ApprovalService({ store, logger, now: () => clock, sealKey: SEAL_KEY, recordTransition: async (event) => void transitions.push(event) });
  });

  /** What someone with write access to the store, and no key, can do to a record. */
  async function tamper(id: string, change: (record: ApprovalRecord) => ApprovalRecord): Promise<ApprovalRecord> {
    const current = (await store.getApproval(id))!;
    return (await store.updateApproval(change(current), current.version))!;
  }

  it('spends a request approved by enough votes a gateway sealed', async () => {
    const { id } = await sealed.request(newApproval({ requirement: { groups: ['dba'], min: 2, ttl_seconds: 900 } }));
    await sealed.vote(id, bob, 'approve', null);
    const approved = await sealed.vote(id, carol, 'approve', 'ok');
    expect(approved.votes.map((v) => [v.sub, v.iss, typeof v.seal])).toEqual([['bob', 'urn:test', 'string'], ['carol', 'urn:test', 'string']]);
    expect(await sealed.consume(approved, agent)).toMatchObject({ status: 'consumed' });
  });

  it('does not spend one approved in the store by other means, and ends it on the record', async () => {
    const forged = [
      // A vote written in with no seal, or with a seal made up.
      (r: ApprovalRecord) => ({ ...r, status: 'approved' as const, votes: [{ sub: 'bob', iss: 'urn:test', decision: 'approve' as const, comment: null, at: r.created_at }] }),
      (r: ApprovalRecord) => ({ ...r, status: 'approved' as const, votes: [{ sub: 'bob', iss: 'urn:test', decision: 'approve' as const, comment: null, at: r.created_at, seal: 'ab'.repeat(32) }] }),
    ];
    for (const forge of forged) {
      const { id } = await sealed.request(newApproval());
      const approved = await tamper(id, forge);
      expect(await sealed.consume(approved, agent)).toBeNull();
      expect(await sealed.get(id)).toMatchObject({ status: 'expired', resolution: 'its votes do not hold their seals: the record was changed outside the gateway' });
    }
  });

  it('does not spend a sealed vote on a request edited after it (another action, a lower minimum) or copied to another request', async () => {
    const { id } = await sealed.request(newApproval({ requirement: { groups: ['dba'], min: 2, ttl_seconds: 900 } }));
    const once = await sealed.vote(id, bob, 'approve', null);
    // Lowered to one approver: bob's vote was for a request that needed two.
    const lowered = await tamper(id, (r) => ({ ...r, min: 1, status: 'approved' }));
    expect(await sealed.consume(lowered, agent)).toBeNull();

    const other = await sealed.request(newApproval());
    const full = await sealed.vote(other.id, carol, 'approve', null);
    expect(full.status).toBe('approved');
    // Pointed at another action after approval.
    const moved = await tamper(other.id, (r) => ({ ...r, action_hash: 'f'.repeat(64) }));
    expect(await sealed.consume(moved, agent)).toBeNull();

    // Bob's sealed vote copied onto a third request.
    const third = await sealed.request(newApproval());
    const copied = await tamper(third.id, (r) => ({ ...r, status: 'approved', votes: once.votes }));
    expect(await sealed.consume(copied, agent)).toBeNull();
  });
});

describe('single use, expiry and revocation', () => {
  it('is consumed once, by the requester only', async () => {
    const { id } = await service.request(newApproval());
    const approved = await service.vote(id, bob, 'approve', null);
    expect(await service.consume(approved, person('agent-sre-2', ['sre-agents'], { agent: true, act: { sub: 'someone-else' } }))).toBeNull();
    const [first, second] = await Promise.all([service.consume(approved, agent), service.consume(approved, agent)]);
    expect([first, second].filter((r) => r !== null)).toHaveLength(1);
    expect((await service.get(id)).status).toBe('consumed');
    expect(await service.findOpen(agent, update.hash)).toBeNull();
  });

  it('expires at the end of its window, audited once, and cannot be approved after', async () => {
    const { id } = await service.request(newApproval({ requirement: { groups: ['dba'], min: 1, ttl_seconds: 60 } }));
    clock += 61_000;
    expect(await service.expireDue()).toBe(1);
    expect(await service.expireDue()).toBe(0);
    expect((await service.get(id)).status).toBe('expired');
    expect((await refusal(service.vote(id, bob, 'approve', null))).code).toBe('conflict');
    expect(transitions.filter((t) => t.transition === 'expired')).toHaveLength(1);
  });

  it('treats a request past its window as expired even before the sweep', async () => {
    const { id } = await service.request(newApproval({ requirement: { groups: ['dba'], min: 1, ttl_seconds: 60 } }));
    const approved = await service.vote(id, bob, 'approve', null);
    clock += 61_000;
    expect(await service.consume(approved, agent)).toBeNull();
    expect((await service.get(id)).status).toBe('expired');
  });

  it('may be revoked by the requester, the human behind it, or an approver, not by others', async () => {
    const first = await service.request(newApproval());
    expect((await refusal(service.revoke(first.id, mallory, null))).code).toBe('forbidden');
    // The agent acts for alice as its issuer names her; another issuer's "alice", in no approver group, is someone else.
    expect((await refusal(service.revoke(first.id, person('alice', [], { iss: 'urn:other' }), null))).code).toBe('forbidden');
    expect(await service.revoke(first.id, person('alice', []), 'changed my mind')).toMatchObject({ status: 'revoked', resolution: 'revoked by alice: changed my mind' });
    const second = await service.request(newApproval());
    await service.vote(second.id, bob, 'approve', null);
    expect((await service.revoke(second.id, carol, null)).status).toBe('revoked');
    expect((await refusal(service.revoke(second.id, carol, null))).code).toBe('conflict');
  });
});

describe('waiting for a decision', () => {
  it('resolves the moment another caller decides, and with null on timeout', async () => {
    const { id } = await service.request(newApproval());
    const waiting = service.waitForResolution(id, 10_000);
    await service.vote(id, bob, 'approve', null);
    expect((await waiting)?.status).toBe('approved');

    const other = await service.request(newApproval({ action: canonicalAction('orders-db', { postgres: { text: 'SELECT 1' } }) }));
    expect(await service.waitForResolution(other.id, 100)).toBeNull();
  });

  it('ends early when its signal aborts', async () => {
    const { id } = await service.request(newApproval());
    const controller = new AbortController();
    const waiting = service.waitForResolution(id, 60_000, controller.signal);
    controller.abort();
    expect(await waiting).toBeNull();
  });
});

describe('the webhook', () => {
  /** A receiver on a local port; `notify` sends one approval in both formats to it. */
  async function webhookReceiver() {
    const received: Array<{ headers: IncomingMessage['headers']; body: string }> = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        received.push({ headers: req.headers, body });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const notify = (approval: ApprovalRecord): void => {
      for (const format of ['json', 'slack'] as const) {
        new ApprovalWebhook({ url, secret: new Secret('hook-secret', 'test'), format, timeout_ms: 2000 }, logger).notify(approval, `http://gw/v1/approvals/${approval.id}`);
      }
    };
    return { received, notify, close: () => server.close() };
  }

  it('posts a signed payload, in JSON or Slack form', async () => {
    const { received, notify, close } = await webhookReceiver();
    try {
      const approval = await service.request(newApproval({ reasons: ['approval required by rule prod-writes-need-dba', 'DELETE on <https://evil.example|approve here> \u202e'] }));
      notify(approval);
      await waitFor(() => received.length === 2, 'two webhook deliveries');
      for (const { headers, body } of received) {
        expect(headers['x-gatehouse-delivery']).toMatch(/^[0-9a-f-]{36}$/);
        const timestamp = headers['x-gatehouse-timestamp'] as string;
        expect(headers['x-gatehouse-signature']).toBe(`v1=${signWebhook('hook-secret', timestamp, body)}`);
        expect(headers['x-gatehouse-signature']).not.toBe(`v1=${signWebhook('other-secret', timestamp, body)}`);
      }
      const bodies = received.map((r) => JSON.parse(r.body) as Record<string, unknown>);
      const json = bodies.find((b) => b.type === 'approval.requested') as { delivery_id: string; approval: Record<string, unknown> };
      // The signed body names the delivery, so a receiver can drop a replay inside the timestamp window.
      expect(json.delivery_id).toBe(received.find((r) => r.body.includes('approval.requested'))!.headers['x-gatehouse-delivery']);
      expect(json.approval).toMatchObject({ id: approval.id, action_hash: update.hash, groups: ['dba'], status_url: `http://gw/v1/approvals/${approval.id}` });
      const slack = bodies.find((b) => 'blocks' in b) as { text: string; blocks: unknown[] };
      expect(slack.text).toBe('Approval needed: agent-sre-2 (for alice) on orders-db');
      expect(JSON.stringify(slack.blocks)).toContain(approval.id);
      // The approver reads what is asked, as plain preformatted text, not only its hash.
      expect(slack.blocks[1]).toEqual({
        type: 'rich_text',
        elements: [{ type: 'rich_text_preformatted', elements: [{ type: 'text', text: 'UPDATE orders SET status = 1 WHERE id = 7' }] }],
      });
      // A reason quoting what the agent sent is text in Slack, never a link or markup.
      expect((slack.blocks[0] as { text: { text: string } }).text.text).toContain('• DELETE on &lt;https://evil.example|approve here&gt; \\u{202e}');
    } finally {
      close();
    }
  });

  it('does not describe an action whose text was changed in the store under its hash, and says so', async () => {
    const { received, notify, close } = await webhookReceiver();
    try {
      const { id } = await service.request(newApproval({ action: canonicalAction('orders-db', { postgres: { text: 'DROP TABLE orders' } }) }));
      // What a store admin can do: harmless text over the hash the real request still matches.
      const current = (await store.getApproval(id))!;
      const swapped = (await store.updateApproval({ ...current, action: update.text }, current.version))!;
      notify(swapped);
      await waitFor(() => received.length === 2, 'two webhook deliveries');
      const bodies = received.map((r) => JSON.parse(r.body) as Record<string, unknown>);
      const json = bodies.find((b) => b.type === 'approval.requested') as { approval: Record<string, unknown> };
      expect(json.approval).toMatchObject({ id, action: null, action_mismatch: 'the stored action does not match its hash: the record was changed outside the gateway' });
      const slack = bodies.find((b) => 'blocks' in b) as { text: string; blocks: unknown[] };
      expect(slack.text).toBe(`Do not approve: request ${id} by agent-sre-2 (for alice) was changed outside the gateway`);
      expect(slack.blocks[1]).toEqual({
        type: 'rich_text',
        elements: [{ type: 'rich_text_preformatted', elements: [{ type: 'text', text: 'The action is not shown: the stored action does not match its hash: the record was changed outside the gateway. Deny or revoke this request; the gateway refuses to approve it.' }] }],
      });
      for (const body of received.map((r) => r.body)) expect(body).not.toContain('UPDATE orders');
      expect(JSON.stringify(slack.blocks)).not.toContain(`gatehouse approvals approve ${id}`);
    } finally {
      close();
    }
  });
});

describe('pending requests per requester (approvals.max_pending_per_requester)', () => {
  const nth = (i: number) => canonicalAction('orders-db', { postgres: { text: `UPDATE orders SET status = 1 WHERE id = ${i}` } });
  let capped: ApprovalService;
  beforeEach(() => {
    capped = new ApprovalService({ store, logger, now: () => clock, maxPendingPerRequester: 3, recordTransition: async (event) => void transitions.push(event) });
  });

  it('refuses a requester past the cap, and only that requester (sub and issuer)', async () => {
    for (let i = 1; i <= 3; i++) await capped.request(newApproval({ action: nth(i) }));
    const err = await refusal(capped.request(newApproval({ action: nth(4) })));
    expect(err.code).toBe('too_many');
    expect(err.message).toMatch(/agent-sre-2 already has 3 approval requests pending, the most approvals\.max_pending_per_requester allows/);
    // Refused before anything is stored or audited: no request, no webhook, no event.
    expect((await store.listApprovals({ status: 'pending' })).length).toBe(3);
    expect(transitions.map((t) => t.transition)).toEqual(['requested', 'requested', 'requested']);
    // Another requester, and the same subject named by another issuer, have their own room.
    await capped.request(newApproval({ requester: person('agent-other', ['sre-agents'], { agent: true }), action: nth(4) }));
    await capped.request(newApproval({ requester: { ...agent, iss: 'urn:other-issuer' }, action: nth(4) }));
  });

  it('counts concurrent requests exactly', async () => {
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => capped.request(newApproval({ action: nth(i) }))));
    expect(results.filter((r) => r.status === 'fulfilled').length).toBe(3);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(refused.map((r) => (r.reason as ApprovalError).code)).toEqual(Array(7).fill('too_many'));
    expect((await store.listApprovals({ status: 'pending' })).length).toBe(3);
  });

  it('frees room when a request is decided, revoked or its window ends', async () => {
    const [a, b, c] = [await capped.request(newApproval({ action: nth(1) })), await capped.request(newApproval({ action: nth(2) })), await capped.request(newApproval({ action: nth(3) }))];
    await refusal(capped.request(newApproval({ action: nth(4) })));
    await capped.vote(a!.id, bob, 'deny', 'no');
    await capped.request(newApproval({ action: nth(4) }));
    await refusal(capped.request(newApproval({ action: nth(5) })));
    // Approved: no longer waiting on the approvers, so no longer counted.
    await capped.vote(b!.id, bob, 'approve', null);
    await capped.request(newApproval({ action: nth(5) }));
    await capped.revoke(c!.id, agent, null);
    await capped.request(newApproval({ action: nth(6) }));
    await refusal(capped.request(newApproval({ action: nth(7) })));
    // Past their window the pending ones count no more, swept or not.
    clock += 901_000;
    expect((await store.listApprovals({ status: 'pending' })).length).toBe(3);
    for (let i = 7; i <= 9; i++) await capped.request(newApproval({ action: nth(i) }));
    await refusal(capped.request(newApproval({ action: nth(10) })));
  });
});
