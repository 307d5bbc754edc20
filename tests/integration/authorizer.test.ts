/**
 * authorize() in process, with real parts: the compiled bundle, dev-issuer
 * tokens checked by the real verifier, the SQLite store, the audit log.
 * The paths the end-to-end test does not reach: refusals, hold timeouts,
 * a caller that goes away, and an audit trail that cannot be written.
 */
import Database from 'better-sqlite3';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ApprovalService } from '../../engine/approvals/service.js';
import { AuditLog } from '../../engine/audit/audit-log.js';
import { Authorizer } from '../../engine/authorize/authorizer.js';
import { parseConfig } from '../../engine/config/load.js';
import type { GatehouseConfig } from '../../engine/config/schema.js';
import { Engine } from '../../engine/engine.js';
import { mintDevToken } from '../../engine/identity/dev-issuer.js';
import { createTokenVerifier } from '../../engine/identity/verifier.js';
import { SessionRecorder } from '../../engine/recording/recorder.js';
import { SqliteStore } from '../../engine/store/sqlite/sqlite-store.js';
import { exampleAction } from '../helpers/actions.js';
import { makeBundle, policiesWithData } from '../helpers/gateway-bundle.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';
import { waitFor } from '../helpers/wait.js';

const logger = pino({ level: 'silent' });
const action = exampleAction;

let bundleDir: string;
beforeAll(() => {
  bundleDir = makeTempDir('gatehouse-authorizer-bundle-');
  // orders-db-patient: orders-db with a hold long enough for a test to act within it.
  const policySrc = policiesWithData(bundleDir, (data) => data.replace(/^grants:\n/m, 'grants:\n  - {name: test-patient, groups: [sre-agents], targets: [orders-db-patient], access: write}\n'));
  makeBundle({ out: join(bundleDir, 'bundle.tar.gz'), revision: 'authorizer', policySrc });
  return () => removeDir(bundleDir);
});

let dir: string;
let config: GatehouseConfig;
let store: SqliteStore;
let audit: AuditLog;
let approvals: ApprovalService;
let engine: Engine;
let authorizer: Authorizer;

beforeEach(async () => {
  dir = makeTempDir('gatehouse-authorizer-');
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(file, `
policy:
  bundle:
    source: ${join(bundleDir, 'bundle.tar.gz')}
identity:
  dev_issuer:
    enabled: true
    key_file: dev.jwk
targets:
  - name: orders-db
    kind: postgres
    labels: {env: prod, data: pii}
    upstream: {address: 127.0.0.1:5432, database: orders}
    credentials: {username: u, password: "\${env:PW}"}
    approval: {mode: hold, timeout_seconds: 1}
  - name: orders-db-patient
    kind: postgres
    labels: {env: prod, data: pii}
    upstream: {address: 127.0.0.1:5432, database: orders}
    credentials: {username: u, password: "\${env:PW}"}
    approval: {mode: hold, timeout_seconds: 60}
  - name: staging-db
    kind: postgres
    labels: {env: staging}
    upstream: {address: 127.0.0.1:5432, database: orders}
    credentials: {username: u, password: "\${env:PW}"}
    audit: {fail_open: true}
    recording: {enabled: true, fail_open: true}
`);
  config = parseConfig(readFileSync(file, 'utf8'), file, { PW: 'x' });
  store = SqliteStore.open({ path: join(dir, 'store.db'), logger });
  await store.migrate();
  audit = new AuditLog({ store, stream: 'test', maxBatch: 100, logger });
  await audit.start();
  approvals = new ApprovalService({ store, logger, pollIntervalMs: 50, recordTransition: async () => undefined });
  engine = new Engine(config.policy, logger);
  await engine.start();
  authorizer = new Authorizer({
    config,
    verifier: createTokenVerifier(config.identity),
    policy: engine,
    approvals,
    audit,
    statusUrl: (id) => `http://gw/v1/approvals/${id}`,
    logger,
  });
});

afterEach(async () => {
  await authorizer.close();
  await audit.close().catch(() => undefined);
  await store.close().catch(() => undefined);
  await engine.stop();
  removeDir(dir);
});

const token = (sub: string, groups: string[], act?: string) =>
  mintDevToken(config.identity.dev_issuer, { sub, groups, ttlSeconds: 300, ...(act && { act }) });

/** An Authorizer on the same store whose policy, while `tightened()`, asks two approvers from security where it asked for one. */
function authorizerTightenedWhen(tightened: () => boolean): Authorizer {
  return new Authorizer({
    config,
    verifier: createTokenVerifier(config.identity),
    policy: {
      evaluate(entrypoint, input) {
        const evaluation = engine.evaluate(entrypoint, input);
        if (!tightened() || !evaluation.decision.approval) return evaluation;
        return { ...evaluation, decision: { ...evaluation.decision, approval: { ...evaluation.decision.approval, groups: ['security'], min: 2 } } };
      },
    },
    approvals,
    audit,
    statusUrl: (id) => `http://gw/v1/approvals/${id}`,
    logger,
  });
}

async function storedEvents(): Promise<Array<Record<string, unknown>>> {
  const events = [];
  for await (const record of store.readAudit({ stream: 'test' })) events.push(JSON.parse(record.event) as Record<string, unknown>);
  return events;
}

describe('refusals', () => {
  it('refuses a missing token, an unknown target and a malformed action, each audited', async () => {
    const analyst = await token('agent-a', ['analysts']);
    const noToken = await authorizer.authorize({ token: undefined, target: 'orders-db', action: action('orders-select.json') });
    expect(noToken).toMatchObject({ refused: 'unauthenticated', decision: { action: 'deny' } });
    expect(noToken.decision.reasons[0]).toMatch(/^token rejected \(malformed\)/);

    const unknown = await authorizer.authorize({ token: analyst, target: 'nope', action: action('orders-select.json') });
    expect(unknown).toMatchObject({ refused: 'unknown_target', decision: { action: 'deny', reasons: ['no target named "nope" is configured'] } });

    const spoofed = await authorizer.authorize({ token: analyst, target: 'orders-db', action: { ...action('orders-select.json'), identity: { sub: 'root' } } });
    expect(spoofed.refused).toBe('invalid_action');
    expect(spoofed.decision.reasons[0]).toContain('must not set identity');
    const wrongShape = await authorizer.authorize({ token: analyst, target: 'orders-db', action: { ssh: {} } });
    expect(wrongShape.decision.reasons[0]).toBe('a postgres target\'s action needs a "postgres" object');

    const events = await storedEvents();
    expect(events).toHaveLength(4);
    expect(events.every((e) => e.disposition === 'Blocked')).toBe(true);
    expect(events.map((e) => (e.actor as { user: { uid: string | null } }).user.uid)).toEqual([null, 'agent-a', 'agent-a', 'agent-a']);
  });
});

describe('holding for approval', () => {
  it('denies when nobody decides in time, and the request expires', async () => {
    const sre = await token('agent-sre-2', ['sre-agents'], 'alice');
    let heldId: string | undefined;
    const result = await authorizer.authorize({ token: sre, target: 'orders-db', action: action('orders-update.json') }, {
      onHeld: (approval) => (heldId = approval.id),
    });
    expect(result.decision.action).toBe('deny');
    expect(result.decision.reasons.at(-1)).toBe(`approval ${heldId} was not granted: no decision within 1 s`);
    expect((await approvals.get(heldId!)).status).toBe('expired');
    expect((await storedEvents()).at(-1)).toMatchObject({ disposition: 'Blocked', unmapped: { approval_id: heldId } });
  });

  it('ends the hold when the caller goes away', async () => {
    const sre = await token('agent-sre-2', ['sre-agents'], 'alice');
    const gone = new AbortController();
    const pending = authorizer.authorize({ token: sre, target: 'orders-db', action: action('orders-update.json') }, {
      signal: gone.signal,
      onHeld: () => gone.abort(),
    });
    const result = await pending;
    expect(result.decision.reasons.at(-1)).toMatch(/the caller went away while held$/);
    expect(result.approval?.status).toBe('expired');
  });

  it('with approvalLater, an approve decision is audited as pending and no approval is asked for yet', async () => {
    const sre = await token('agent-sre-2', ['sre-agents'], 'alice');
    let held = false;
    const result = await authorizer.authorize({ token: sre, target: 'orders-db', action: action('orders-update.json') }, {
      approvalLater: true,
      onHeld: () => (held = true),
    });
    expect(result.decision.action).toBe('approve');
    expect(result.approval).toBeNull();
    expect(held).toBe(false);
    expect(await approvals.list()).toEqual([]);
    expect((await storedEvents()).at(-1)).toMatchObject({ disposition: 'Pending Approval', unmapped: { approval_id: null } });
  });

  it('does not spend an approval granted under a weaker requirement than the policy asks now', async () => {
    const sre = await token('agent-sre-2', ['sre-agents'], 'alice');
    const update = action('orders-update.json');
    // A ticket: the caller's deadline has passed, so the request stays pending for a human.
    const first = await authorizer.authorize({ token: sre, target: 'orders-db', action: update }, { holdDeadline: Date.now() });
    const granted = first.approval!;
    expect(granted).toMatchObject({ status: 'pending', groups: ['dba'], min: 1 });
    const dora = { sub: 'dora', iss: 'urn:test', groups: ['dba'], agent: false, act: null, claims: {} };
    expect((await approvals.vote(granted.id, dora, 'approve', null)).status).toBe('approved');

    // The policy is tightened: two approvers from security.
    const stricter = authorizerTightenedWhen(() => true);
    const retry = await stricter.authorize({ token: sre, target: 'orders-db', action: update }, { holdDeadline: Date.now() });
    await stricter.close();
    expect(retry.decision.action).toBe('deny');
    expect(retry.approval).toMatchObject({ status: 'pending', groups: ['security'], min: 2 });
    expect(retry.approval!.id).not.toBe(granted.id);
    expect((await approvals.get(granted.id)).status).toBe('expired');
  });

  it('does not let a held request through on an approval the policy outgrew while it waited', async () => {
    const sre = await token('agent-sre-2', ['sre-agents'], 'alice');
    let strict = false;
    const reloading = authorizerTightenedWhen(() => strict);
    const dora = { sub: 'dora', iss: 'urn:test', groups: ['dba'], agent: false, act: null, claims: {} };
    const result = await reloading.authorize({ token: sre, target: 'orders-db', action: action('orders-update.json') }, {
      onHeld: (approval) => {
        strict = true; // the bundle is tightened while the request is held
        void approvals.vote(approval.id, dora, 'approve', null);
      },
    });
    await reloading.close();
    expect(result.decision.action).toBe('deny');
    expect(result.decision.reasons.at(-1)).toMatch(/was granted under a weaker rule than the policy's now \(2 of security\)/);
    expect(result.approval?.status).toBe('expired');
  });

  it('keeps an approval request two identical held requests share when one of them goes away', async () => {
    const sre = await token('agent-sre-2', ['sre-agents'], 'alice');
    const update = action('orders-update.json');
    const held: string[] = [];
    const gone = new AbortController();
    let first!: Promise<{ decision: { action: string; reasons: string[] } }>;
    let second!: Promise<{ decision: { action: string } }>;
    const bothHeld = new Promise<void>((resolve) => {
      const onHeld = (approval: { id: string }) => {
        held.push(approval.id);
        if (held.length === 2) resolve();
      };
      first = authorizer.authorize({ token: sre, target: 'orders-db-patient', action: update }, { signal: gone.signal, onHeld });
      second = authorizer.authorize({ token: sre, target: 'orders-db-patient', action: update }, { onHeld });
    });
    await bothHeld;
    expect(held[0]).toBe(held[1]);
    gone.abort();
    expect((await first).decision.reasons.at(-1)).toMatch(/the caller went away while held$/);
    expect((await approvals.get(held[0]!)).status).toBe('pending');
    const dora = { sub: 'dora', iss: 'urn:test', groups: ['dba'], agent: false, act: null, claims: {} };
    await approvals.vote(held[0]!, dora, 'approve', null);
    expect((await second).decision.action).toBe('allow');
  });

  it('ends held requests at shutdown, denied and audited', async () => {
    const sre = await token('agent-sre-2', ['sre-agents'], 'alice');
    let held = false;
    const pending = authorizer.authorize({ token: sre, target: 'orders-db', action: action('orders-update.json') }, { onHeld: () => (held = true) });
    await waitFor(() => held, 'the request to be held');
    await authorizer.close();
    const result = await pending;
    expect(result.decision.reasons.at(-1)).toMatch(/the gateway shut down while the request was held$/);
    expect(result.audit).not.toBeNull();
  });
});

describe('pending requests per requester', () => {
  it('denies, audited and fail-closed, a new approval request past the cap; identical and repeated requests still share theirs', async () => {
    const capped = new Authorizer({
      config,
      verifier: createTokenVerifier(config.identity),
      policy: engine,
      approvals: new ApprovalService({ store, logger, pollIntervalMs: 50, maxPendingPerRequester: 1, recordTransition: async () => undefined }),
      audit,
      statusUrl: (id) => `http://gw/v1/approvals/${id}`,
      logger,
    });
    try {
      const sre = await token('agent-sre-2', ['sre-agents'], 'alice');
      const update = action('orders-update.json');
      const other = structuredClone(update) as { postgres: { text: string } };
      other.postgres.text = "UPDATE orders SET status = 'refunded' WHERE id = 1002";
      const ticket = { holdDeadline: Date.now() };
      // Identical requests arriving together share one approval request, at the cap as below it.
      const [one, two] = await Promise.all([
        capped.authorize({ token: sre, target: 'orders-db', action: update }, ticket),
        capped.authorize({ token: sre, target: 'orders-db', action: update }, ticket),
      ]);
      expect(one.approval).toMatchObject({ status: 'pending' });
      expect(two.approval?.id).toBe(one.approval!.id);
      // A retry is answered with the open request, not refused by the cap.
      const retry = await capped.authorize({ token: sre, target: 'orders-db', action: update }, { holdDeadline: Date.now() });
      expect(retry.approval?.id).toBe(one.approval!.id);
      expect(retry.decision.reasons.at(-1)).toMatch(/^approval required: request .* is pending/);

      const refused = await capped.authorize({ token: sre, target: 'orders-db', action: other }, { holdDeadline: Date.now() });
      expect(refused.decision.action).toBe('deny');
      expect(refused.approval).toBeNull();
      expect(refused.audit).not.toBeNull();
      expect(await store.listApprovals({ status: 'pending' })).toHaveLength(1);
      const event = (await storedEvents()).at(-1)!;
      expect(event).toMatchObject({ disposition: 'Blocked', unmapped: { approval_id: null } });
      expect(JSON.stringify(event)).toMatch(/agent-sre-2 already has 1 approval request pending/);
      expect(refused.decision.reasons.at(-1)).toMatch(/already has 1 approval request pending/);

      // Decided, the request frees its room.
      const dora = { sub: 'dora', iss: 'urn:test', groups: ['dba'], agent: false, act: null, claims: {} };
      await approvals.vote(one.approval!.id, dora, 'deny', 'not now');
      const after = await capped.authorize({ token: sre, target: 'orders-db', action: other }, { holdDeadline: Date.now() });
      expect(after.approval).toMatchObject({ status: 'pending' });
    } finally {
      await capped.close();
    }
  });
});

describe('fail closed on the audit trail', () => {
  it('denies an allowed request whose audit event cannot be written', async () => {
    const analyst = await token('agent-a', ['analysts']);
    expect((await authorizer.authorize({ token: analyst, target: 'orders-db', action: action('orders-select.json') })).decision.action).toBe('allow');
    await store.close(); // the store is gone: appends now fail for real
    const result = await authorizer.authorize({ token: analyst, target: 'orders-db', action: action('orders-select.json') });
    expect(result.decision).toEqual({ action: 'deny', reasons: ['the audit trail is unavailable, so the request is denied'], mask: [] });
    expect(result.audit).toBeNull();
  });

  it('lets a fail-open target through, without an event', async () => {
    const analyst = await token('agent-a', ['analysts']);
    await store.close();
    const result = await authorizer.authorize({ token: analyst, target: 'staging-db', action: action('orders-select.json') });
    expect(result.decision.action).toBe('allow');
    expect(result.audit).toBeNull();
  });
});

describe('fail closed on the session recording', () => {
  it('denies an allow while the recorder cannot keep entries, unless the target fails open; audited either way', async () => {
    const recorder = new SessionRecorder({
      store,
      settings: { viewer_groups: [], max_batch: 500, flush_interval_ms: 10, max_queue: 1000 },
      targets: config.targets,
      gateway: 'test',
      logger,
      registry: new Registry(),
    });
    const guarded = new Authorizer({
      config, verifier: createTokenVerifier(config.identity), policy: engine, approvals, audit,
      statusUrl: (id) => `http://gw/v1/approvals/${id}`, logger, recordings: recorder,
    });
    const analyst = await token('agent-a', ['analysts']);
    const select = (target: string) => guarded.authorize({ token: analyst, target, action: action('orders-select.json') });
    const raw = new Database(join(dir, 'store.db'));
    try {
      expect((await select('orders-db')).decision.action).toBe('allow');
      // A real failure of the recording writes only: the audit trail still takes events.
      raw.exec(`CREATE TRIGGER refuse BEFORE INSERT ON session_entries BEGIN SELECT RAISE(ABORT, 'disk says no'); END`);
      const session = recorder.open({
        session_id: 's-1', target: 'orders-db', target_kind: 'postgres', protocol: 'postgres', started_at: Date.now(),
        identity: { sub: 'agent-a', iss: 'https://idp.test', groups: ['analysts'], act: null }, source_ip: null,
      });
      for (let i = 1; i <= 1000; i++) {
        session.append({
          time: Date.now(), statement: `SELECT ${i}`, decision: 'allow', reasons: [], decision_id: `d-${i}`,
          audit: null, duration_ms: 1, rows: 1, command_tag: 'SELECT 1', masked: [],
        });
      }
      await waitFor(() => !recorder.healthy, 'a failed recording write');
      expect(recorder.accepting).toBe(false);

      const denied = await select('orders-db');
      expect(denied.decision).toEqual({ action: 'deny', reasons: [expect.stringMatching(/^session recording is failing/)], mask: [] });
      expect(denied.audit).not.toBeNull();
      expect((await storedEvents()).at(-1)).toMatchObject({ disposition: 'Blocked' });
      const failOpen = await select('staging-db');
      expect(failOpen.decision.action).toBe('allow');

      raw.exec('DROP TRIGGER refuse');
      expect(await recorder.flush()).toBe(true);
      expect(recorder.accepting).toBe(true);
      expect((await select('orders-db')).decision.action).toBe('allow');
    } finally {
      raw.close();
      await guarded.close();
      await recorder.close();
    }
  });
});
