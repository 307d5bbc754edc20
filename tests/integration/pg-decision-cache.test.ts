/**
 * The Postgres proxy's decision cache, with the real bundle, the real
 * Authorizer and the real SQL analyser: the policy is asked once per
 * (statement facts, caller groups, database, role, protocol) and bundle
 * revision, and never when its answer could differ: other groups, other
 * facts, an approval, a new bundle. Every decision is still audited.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApprovalService } from '../../engine/approvals/service.js';
import { AuditLog } from '../../engine/audit/audit-log.js';
import { Authorizer, type PolicyEngine } from '../../engine/authorize/authorizer.js';
import { parseConfig } from '../../engine/config/load.js';
import type { GatehouseConfig } from '../../engine/config/schema.js';
import { Engine } from '../../engine/engine.js';
import type { Identity } from '../../engine/identity/identity.js';
import { createTokenVerifier } from '../../engine/identity/verifier.js';
import { SqliteStore } from '../../engine/store/sqlite/sqlite-store.js';
import { StatementDecider } from '../../proxies/postgres/policy/statement-decider.js';
import { LiteralSettings } from '../../proxies/postgres/session/literal-settings.js';
import { loadSqlParser } from '../../proxies/postgres/sql/analyse.js';
import { makeBundle } from '../helpers/gateway-bundle.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';

const logger = pino({ level: 'silent' });

let dir: string;
let config: GatehouseConfig;
let store: SqliteStore;
let audit: AuditLog;
let engine: Engine;
let authorizer: Authorizer;
/** The engine as the authorizer sees it, counting evaluations; `revision` can be moved on by the test. */
let evaluations = 0;
const engineInputs: unknown[] = [];
let revision = 'r1';

beforeAll(async () => {
  dir = makeTempDir('gatehouse-pg-cache-');
  makeBundle({ out: join(dir, 'bundle.tar.gz'), revision: 'r1' });
  const file = join(dir, 'gatehouse.yaml');
  writeFileSync(file, `
policy:
  bundle:
    source: bundle.tar.gz
targets:
  - name: orders-db
    kind: postgres
    labels: {env: prod, data: pii}
    upstream: {address: 127.0.0.1:5432, database: orders}
    credentials: {username: u, password: "\${env:PW}"}
    approval: {mode: hold, timeout_seconds: 30}
`);
  config = parseConfig(readFileSync(file, 'utf8'), file, { PW: 'x' });
  store = SqliteStore.open({ path: join(dir, 'store.db'), logger });
  await store.migrate();
  audit = new AuditLog({ store, stream: 'test', maxBatch: 100, logger });
  await audit.start();
  engine = new Engine(config.policy, logger);
  await engine.start();
  await loadSqlParser();
  const counting: PolicyEngine = {
    evaluate(entrypoint, input) {
      evaluations++;
      engineInputs.push(input);
      const evaluation = engine.evaluate(entrypoint, input);
      return { ...evaluation, metadata: { ...evaluation.metadata, bundle_revision: revision } };
    },
    revision: () => revision,
  };
  authorizer = new Authorizer({
    config,
    verifier: createTokenVerifier(config.identity),
    policy: counting,
    approvals: new ApprovalService({ store, logger, pollIntervalMs: 50, recordTransition: async () => undefined }),
    audit,
    statusUrl: (id) => `http://gw/v1/approvals/${id}`,
    logger,
  });
});

afterAll(async () => {
  await authorizer.close();
  await audit.close();
  await store.close();
  await engine.stop();
  removeDir(dir);
});

function identity(sub: string, groups: string[]): Identity {
  return { sub, iss: 'urn:test', groups, agent: true, act: null, claims: {} };
}

function decider(who: Identity, session = 's1', settings = new LiteralSettings()): StatementDecider {
  return new StatementDecider(authorizer, { target: 'orders-db', database: 'orders', role: 'u', identity: who, sessionId: session, sourceIp: null, settings });
}

async function auditedDecisions(): Promise<number> {
  let n = 0;
  for await (const record of store.readAudit({ stream: 'test' })) if (JSON.parse(record.event).policy?.uid) n++;
  return n;
}

describe('the decision cache', () => {
  it('asks the policy once for statements with the same facts, and audits every one', async () => {
    const analyst = decider(identity('agent:a', ['analysts']));
    const before = evaluations;
    const eventsBefore = await auditedDecisions();
    const results = [];
    for (let id = 1; id <= 20; id++) {
      results.push(await analyst.decide(`SELECT id, amount FROM orders WHERE id = ${id}`, 'simple'));
    }
    expect(results.every((r) => r.result.decision.action === 'allow')).toBe(true);
    expect(evaluations - before).toBe(1);
    // A fresh decision id each time, and an audit event each time.
    expect(new Set(results.map((r) => r.result.decision_id)).size).toBe(20);
    expect((await auditedDecisions()) - eventsBefore).toBe(20);
  });

  it('asks again for other groups, another caller with the same groups shares the answer', async () => {
    const before = evaluations;
    const dba = await decider(identity('bob', ['dba'])).decide('DELETE FROM orders WHERE id = 1', 'simple');
    const analyst = await decider(identity('agent:a', ['analysts'])).decide('DELETE FROM orders WHERE id = 1', 'simple');
    const otherAnalyst = await decider(identity('agent:b', ['analysts']), 's2').decide('DELETE FROM orders WHERE id = 2', 'simple');
    expect([dba.result.decision.action, analyst.result.decision.action, otherAnalyst.result.decision.action]).toEqual(['allow', 'deny', 'deny']);
    expect(evaluations - before).toBe(2);
  });

  it('asks again when the facts differ, even for text that fingerprints alike', async () => {
    const analyst = decider(identity('agent:a', ['analysts']));
    const before = evaluations;
    // Columns are not facts: this shares the answer of the first test's SELECTs.
    await analyst.decide('SELECT customer_id FROM orders', 'simple');
    expect(evaluations - before).toBe(0);
    await analyst.decide('SELECT id FROM customers', 'simple');
    await analyst.decide('SELECT id FROM orders', 'extended');
    await analyst.decide('SELECT id FROM orders FOR UPDATE', 'simple');
    expect(evaluations - before).toBe(3);
  });

  it('never caches an approval: each approve decision creates or finds its own request', async () => {
    const sre = decider(identity('agent:sre', ['sre-agents']));
    const before = evaluations;
    // The policy holds prod writes for a DBA; the caller gives up after a moment each time.
    const first = await sre.decide('UPDATE orders SET amount = 1 WHERE id = 10', 'simple', { signal: AbortSignal.timeout(100) });
    const second = await sre.decide('UPDATE orders SET amount = 1 WHERE id = 10', 'simple', { signal: AbortSignal.timeout(100) });
    expect([first.result.decision.action, second.result.decision.action]).toEqual(['deny', 'deny']);
    expect(first.result.approval).not.toBeNull();
    expect(second.result.approval?.id).not.toBe(first.result.approval?.id);
    expect(evaluations - before).toBe(2);
  });

  it('asks again under other literal-reading settings: policy sees them (input.postgres.settings)', async () => {
    const settings = new LiteralSettings();
    settings.report('DateStyle', 'ISO, MDY');
    const analyst = decider(identity('agent:a', ['analysts']), 's1', settings);
    await analyst.decide('SELECT amount FROM orders WHERE placed_at > \'01/02/2026\'', 'simple');
    const before = evaluations;
    await analyst.decide('SELECT amount FROM orders WHERE placed_at > \'03/04/2026\'', 'simple');
    expect(evaluations - before).toBe(0);
    settings.report('DateStyle', 'ISO, DMY');
    const dmy = await analyst.decide('SELECT amount FROM orders WHERE placed_at > \'01/02/2026\'', 'simple');
    expect(evaluations - before).toBe(1);
    expect(dmy.result.decision.action).toBe('allow');
    expect((engineInputs.at(-1) as { postgres: { settings: unknown } }).postgres.settings).toEqual({ DateStyle: 'ISO, DMY' });
  });

  it('forgets everything when the bundle revision changes', async () => {
    const analyst = decider(identity('agent:a', ['analysts']));
    await analyst.decide('SELECT amount FROM orders', 'simple');
    const before = evaluations;
    await analyst.decide('SELECT amount FROM orders', 'simple');
    expect(evaluations - before).toBe(0);
    revision = 'r2';
    await analyst.decide('SELECT amount FROM orders', 'simple');
    expect(evaluations - before).toBe(1);
  });

  it('denies unparseable SQL without asking the policy, and audits it', async () => {
    const before = evaluations;
    const eventsBefore = await auditedDecisions();
    const outcome = await decider(identity('agent:a', ['analysts'])).decide('SELEC nonsense', 'simple');
    expect(outcome.result.decision.action).toBe('deny');
    expect(outcome.result.decision.reasons[0]).toMatch(/could not be parsed/);
    expect(evaluations - before).toBe(0);
    expect((await auditedDecisions()) - eventsBefore).toBe(1);
  });
});
