/**
 * Session recordings end to end, on a gateway started as `serve` starts it:
 * a stand-in for the Postgres proxy authorizes statements and records them
 * through gateway.recorder; then /v1/sessions and `gatehouse sessions
 * list|replay` (a separate process on the same store) show them, linked to
 * their audit events.
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiServer } from '../../api/server.js';
import { loadConfig } from '../../engine/config/load.js';
import type { GatehouseConfig } from '../../engine/config/schema.js';
import { startGateway, type Gateway } from '../../engine/gateway.js';
import { mintDevToken } from '../../engine/identity/dev-issuer.js';
import type { HttpExchangeRecord, PostgresStatementRecord } from '../../engine/recording/types.js';
import { exampleAction } from '../helpers/actions.js';
import { runCli } from '../helpers/cli.js';
import { makeBundle } from '../helpers/gateway-bundle.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';

const logger = pino({ level: 'silent' });

let dir: string;
let configFile: string;
let config: GatehouseConfig;
let gateway: Gateway;
let app: FastifyInstance;

const token = (sub: string, groups: string[], extra: { act?: string; agent?: boolean } = {}) =>
  mintDevToken(config.identity.dev_issuer, { sub, groups, ttlSeconds: 300, ...extra });
const bearer = async (sub: string, groups: string[], extra: { act?: string; agent?: boolean } = {}) => `Bearer ${await token(sub, groups, extra)}`;

/** What the Postgres proxy will do per statement: authorize, run (here: pretend), record. */
async function runSession(opts: { target: string; sub: string; groups: string[]; act?: string; statements: Array<{ action: string; rows?: number; text?: string }> }): Promise<string> {
  const sessionId = randomUUID();
  const jwt = await token(opts.sub, opts.groups, { act: opts.act });
  const recording = gateway.recorder.open({
    session_id: sessionId,
    target: opts.target,
    target_kind: 'postgres',
    identity: { sub: opts.sub, iss: config.identity.dev_issuer!.issuer, groups: opts.groups, act: opts.act ? { sub: opts.act } : null },
    source_ip: '10.0.0.7',
    protocol: 'postgres',
    started_at: Date.now() - 50,
  });
  for (const s of opts.statements) {
    const action = exampleAction(s.action);
    if (s.text !== undefined) (action.postgres as { text: string }).text = s.text;
    const started = Date.now();
    const result = await gateway.authorizer.authorize({ token: jwt, target: opts.target, action, sessionId, sourceIp: '10.0.0.7' });
    const allowed = result.decision.action === 'allow';
    const entry: PostgresStatementRecord = {
      time: started,
      statement: (action.postgres as { text: string }).text,
      decision: result.decision.action,
      reasons: result.decision.reasons,
      decision_id: result.decision_id,
      audit: result.audit ? { stream: result.audit.stream, seq: result.audit.seq } : null,
      approval_id: result.approval?.id ?? null,
      duration_ms: Date.now() - started,
      rows: allowed ? (s.rows ?? 0) : null,
      command_tag: allowed ? `SELECT ${s.rows ?? 0}` : null,
      error: allowed ? null : { sqlstate: '42501', message: 'denied by policy' },
      masked: allowed ? [{ column: 'public.customers.email', detector: null, count: s.rows ?? 0 }] : [],
    };
    recording.append(entry);
  }
  recording.close({ ended_at: Date.now(), reason: 'client closed' });
  return sessionId;
}

let analystSession: string;
let sreSession: string;
/** SQL that, printed raw, would have a terminal rewrite the line above it into an ALLOW, and reorder text. */
const ACTING_SQL = 'SELECT 1 /* \x1b[1A\x1b[2K\r[+0.000s] ALLOW  SELECT 1 \u202e */';

beforeAll(async () => {
  dir = makeTempDir('gatehouse-sessions-');
  makeBundle({ out: join(dir, 'bundle.tar.gz'), revision: 'sessions-test' });
  configFile = join(dir, 'gatehouse.yaml');
  writeFileSync(configFile, `
policy:
  bundle:
    source: bundle.tar.gz
identity:
  dev_issuer: {enabled: true, key_file: dev.jwk}
audit:
  stream: gw-sessions
recordings:
  viewer_groups: [auditors]
  flush_interval_ms: 20
targets:
  - name: orders-db
    kind: postgres
    labels: {env: prod, data: pii}
    upstream: {address: 127.0.0.1:5432, database: orders}
    credentials: {username: u, password: "\${env:PW}"}
  - name: quiet-db
    kind: postgres
    labels: {env: prod, data: pii}
    upstream: {address: 127.0.0.1:5432, database: orders}
    credentials: {username: u, password: "\${env:PW}"}
    recording: {enabled: false}
`);
  config = loadConfig(configFile, { PW: 'x' });
  gateway = await startGateway(config, logger);
  app = createApiServer({ engine: gateway.engine, logger, gateway });

  analystSession = await runSession({
    target: 'orders-db', sub: 'agent-analyst', groups: ['analysts'],
    statements: [{ action: 'orders-select.json', rows: 3 }, { action: 'orders-delete.json' }, { action: 'orders-select.json', rows: 1 }],
  });
  sreSession = await runSession({ target: 'orders-db', sub: 'agent-sre', groups: ['analysts'], act: 'alice', statements: [{ action: 'orders-select.json', rows: 2 }] });

  await runSession({ target: 'quiet-db', sub: 'agent-analyst', groups: ['analysts'], statements: [{ action: 'orders-select.json', rows: 1 }] });
  expect(await gateway.recorder.flush()).toBe(true);
});

afterAll(async () => {
  await app?.close();
  await gateway?.stop();
  removeDir(dir);
});

describe('GET /v1/sessions', () => {
  it('needs a token', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/sessions' });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({ error: 'token rejected (malformed): send an OIDC token: Authorization: Bearer <token>' });
  });

  it('shows a caller its own sessions, and the human an agent acted for theirs', async () => {
    const own = await app.inject({ method: 'GET', url: '/v1/sessions', headers: { authorization: await bearer('agent-analyst', ['analysts']) } });
    expect(own.statusCode).toBe(200);
    const sessions = (own.json() as { sessions: Array<Record<string, unknown>> }).sessions;
    expect(sessions.map((s) => s.id)).toEqual([analystSession]);
    expect(sessions[0]).toMatchObject({
      target: 'orders-db', protocol: 'postgres', format: 'gatehouse.postgres-transcript.v1', gateway: 'gw-sessions',
      identity: { sub: 'agent-analyst', act: null, groups: ['analysts'] },
      entries: 3, unit: 'statements', denies: 1, dropped_entries: 0, end_reason: 'client closed', source_ip: '10.0.0.7',
    });
    const alice = await app.inject({ method: 'GET', url: '/v1/sessions', headers: { authorization: await bearer('alice', [], { agent: false }) } });
    expect((alice.json() as { sessions: Array<{ id: string }> }).sessions.map((s) => s.id)).toEqual([sreSession]);
    const peek = await app.inject({ method: 'GET', url: '/v1/sessions?who=agent-analyst', headers: { authorization: await bearer('alice', [], { agent: false }) } });
    expect(peek.statusCode).toBe(403);
  });

  it('shows recordings.viewer_groups every session, filtered by target and who; nothing for a target that does not record', async () => {
    const auditor = await bearer('carol', ['auditors'], { agent: false });
    const all = await app.inject({ method: 'GET', url: '/v1/sessions', headers: { authorization: auditor } });
    expect((all.json() as { sessions: Array<{ id: string }> }).sessions.map((s) => s.id)).toEqual([sreSession, analystSession]);
    const quiet = await app.inject({ method: 'GET', url: '/v1/sessions?target=quiet-db', headers: { authorization: auditor } });
    expect(quiet.json()).toEqual({ sessions: [] });
    const who = await app.inject({ method: 'GET', url: '/v1/sessions?who=alice&limit=5', headers: { authorization: auditor } });
    expect((who.json() as { sessions: Array<{ id: string }> }).sessions.map((s) => s.id)).toEqual([sreSession]);
    const bad = await app.inject({ method: 'GET', url: '/v1/sessions?limit=0', headers: { authorization: auditor } });
    expect(bad.statusCode).toBe(400);
  });
});

describe('GET /v1/sessions/:id', () => {
  it('returns the session and its transcript, paged, each entry naming its decision and audit event', async () => {
    const res = await app.inject({ method: 'GET', url: `/v1/sessions/${analystSession}`, headers: { authorization: await bearer('agent-analyst', ['analysts']) } });
    expect(res.statusCode).toBe(200);
    const body = res.json() as { session: { id: string }; entries: Array<Record<string, unknown>>; next_after_seq: number | null };
    expect(body.session.id).toBe(analystSession);
    expect(body.next_after_seq).toBeNull();
    expect(body.entries.map((e) => [e.seq, e.decision, e.rows])).toEqual([[1, 'allow', 3], [2, 'deny', null], [3, 'allow', 1]]);
    expect(body.entries[0]).toMatchObject({
      statement: 'SELECT id, email, ssn FROM customers WHERE id = 42',
      decision_id: expect.any(String) as string,
      audit: { stream: 'gw-sessions', seq: expect.any(Number) as number },
      masked: [{ column: 'public.customers.email', detector: null, count: 3 }],
      time: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/) as string,
    });
    expect(body.entries[1]).toMatchObject({ error: { sqlstate: '42501', message: 'denied by policy' } });

    const paged = await app.inject({ method: 'GET', url: `/v1/sessions/${analystSession}?limit=2`, headers: { authorization: await bearer('carol', ['auditors'], { agent: false }) } });
    const first = paged.json() as { entries: Array<{ seq: number }>; next_after_seq: number };
    expect(first.entries.map((e) => e.seq)).toEqual([1, 2]);
    expect(first.next_after_seq).toBe(2);
    const next = await app.inject({ method: 'GET', url: `/v1/sessions/${analystSession}?after_seq=2`, headers: { authorization: await bearer('carol', ['auditors'], { agent: false }) } });
    expect((next.json() as { entries: Array<{ seq: number }> }).entries.map((e) => e.seq)).toEqual([3]);
  });

  it('answers 404 for an unknown session and 403 for someone else\'s', async () => {
    const eve = await bearer('eve', ['analysts'], { agent: false });
    expect((await app.inject({ method: 'GET', url: '/v1/sessions/nope', headers: { authorization: eve } })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: `/v1/sessions/${analystSession}`, headers: { authorization: eve } })).statusCode).toBe(403);
  });
});

describe('gatehouse sessions', () => {
  it('lists sessions with who, times, statement and deny counts', () => {
    const res = runCli(['sessions', 'list', '-c', configFile]);
    expect(res.code, res.stderr).toBe(0);
    const lines = res.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+TARGET\s+WHO\s+STARTED\s+ENDED\s+ENTRIES\s+DENIES$/);
    expect(lines[1]).toMatch(new RegExp(`^${sreSession}\\s+orders-db\\s+agent-sre for alice\\s+\\S+Z\\s+\\S+Z\\s+1\\s+0$`));
    expect(lines[2]).toMatch(new RegExp(`^${analystSession}\\s+orders-db\\s+agent-analyst\\s+\\S+Z\\s+\\S+Z\\s+3\\s+1$`));

    const json = runCli(['sessions', 'list', '-c', configFile, '--target', 'orders-db', '--limit', '1', '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect((JSON.parse(json.stdout) as { sessions: Array<{ id: string }> }).sessions.map((s) => s.id)).toEqual([sreSession]);
    expect(runCli(['sessions', 'list', '-c', configFile, '--target', 'quiet-db']).stdout).toBe('no recorded sessions\n');
    expect(runCli(['sessions', 'list', '-c', configFile, '--limit', 'lots']).code).toBe(2);
  });

  it('replays a transcript as text, each statement with its decision and audit event', () => {
    const res = runCli(['sessions', 'replay', analystSession, '-c', configFile]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain(`session ${analystSession}\n  target:   orders-db (postgres)\n  who:      agent-analyst (groups: analysts)`);
    expect(res.stdout).toMatch(/recorded: 3 statements, 1 denied, by gateway gw-sessions/);
    expect(res.stdout).toMatch(/^\[\+\d+\.\d{3}s\] ALLOW {2}SELECT id, email, ssn FROM customers WHERE id = 42 {2}\(3 rows, \d+ ms; masked public\.customers\.email×3\)$/m);
    expect(res.stdout).toMatch(/^\[\+\d+\.\d{3}s\] DENY {3}DELETE FROM .+ {2}\(.+\)$/m);
    expect(res.stdout).toMatch(/^ {10}decision [0-9a-f-]{36}, audit gw-sessions#\d+ \(bundle sessions-test\)$/m);
    expect(res.stdout).not.toMatch(/BROKEN/);
  });

  it('shows control and format characters an agent sent as escapes, never as what a terminal would act on', async () => {
    const escapingSession = await runSession({ target: 'orders-db', sub: 'agent-escaper', groups: ['analysts'], statements: [{ action: 'orders-select.json', rows: 1, text: ACTING_SQL }] });
    expect(await gateway.recorder.flush()).toBe(true);
    const res = runCli(['sessions', 'replay', escapingSession, '-c', configFile]);
    expect(res.code, res.stderr).toBe(0);
    for (const acting of ['\x1b', '\r', '\u202e']) expect(res.stdout).not.toContain(acting);
    expect(res.stdout).toContain('SELECT 1 /* \\u{1b}[1A\\u{1b}[2K\\u{d}[+0.000s] ALLOW  SELECT 1 \\u{202e} */');
  });

  it('replays as JSON with the audit event of each decision', () => {
    const res = runCli(['sessions', 'replay', analystSession, '-c', configFile, '--json']);
    expect(res.code, res.stderr).toBe(0);
    const body = JSON.parse(res.stdout) as { session: { id: string }; entries: Array<{ decision: string; decision_id: string; audit_event: { problem: string | null; event: Record<string, unknown> } }> };
    expect(body.session.id).toBe(analystSession);
    expect(body.entries).toHaveLength(3);
    for (const e of body.entries) {
      expect(e.audit_event.problem).toBeNull();
      expect(e.audit_event.event).toMatchObject({ policy: { uid: e.decision_id }, actor: { session: { uid: analystSession } }, unmapped: { decision: e.decision } });
    }
  });

  it('says so and exits 1 for an unknown session', () => {
    const res = runCli(['sessions', 'replay', 'no-such-session', '-c', configFile]);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe('gatehouse: no session recording with id no-such-session (gatehouse sessions list shows the recent ones)\n');
    expect(res.stdout).toBe('');
  });

  it('flags an entry whose audit link does not hold, and exits 1', async () => {
    const sessionId = await runSession({ target: 'orders-db', sub: 'agent-x', groups: ['analysts'], statements: [{ action: 'orders-select.json', rows: 1 }, { action: 'orders-select.json', rows: 1 }] });
    expect(await gateway.recorder.flush()).toBe(true);
    // Point the second entry at the first one's audit event.
    const db = new Database(join(dir, 'gatehouse.db'));
    try {
      const rows = db.prepare('SELECT seq, entry FROM session_entries WHERE session_id = ? ORDER BY seq').all(sessionId) as Array<{ seq: number; entry: string }>;
      const first = JSON.parse(rows[0]!.entry) as { audit: unknown };
      const second = JSON.parse(rows[1]!.entry) as { audit: unknown };
      second.audit = first.audit;
      db.prepare('UPDATE session_entries SET entry = ? WHERE session_id = ? AND seq = 2').run(JSON.stringify(second), sessionId);
    } finally {
      db.close();
    }
    const res = runCli(['sessions', 'replay', sessionId, '-c', configFile]);
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/AUDIT LINK BROKEN: the audit record is decision \S+, not \S+/);
    expect(res.stderr).toMatch(/1 transcript entry is not backed by the audit trail/);
  });

  it('flags an entry whose statement is not the one its audit record decided', async () => {
    const sessionId = await runSession({ target: 'orders-db', sub: 'agent-y', groups: ['analysts'], statements: [{ action: 'orders-select.json', rows: 1 }] });
    expect(await gateway.recorder.flush()).toBe(true);
    const db = new Database(join(dir, 'gatehouse.db'));
    try {
      const row = db.prepare('SELECT entry FROM session_entries WHERE session_id = ? AND seq = 1').get(sessionId) as { entry: string };
      const entry = JSON.parse(row.entry) as { statement: string };
      entry.statement = 'SELECT 1';
      db.prepare('UPDATE session_entries SET entry = ? WHERE session_id = ? AND seq = 1').run(JSON.stringify(entry), sessionId);
    } finally {
      db.close();
    }
    const res = runCli(['sessions', 'replay', sessionId, '-c', configFile]);
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/AUDIT LINK BROKEN: the transcript's statement is not the one the audit record decided/);
  });

  it('says so and exits 1 when entries were lost while recording, in every output (--har has no place to say it)', async () => {
    const sessionId = randomUUID();
    const recording = gateway.recorder.open({
      session_id: sessionId, target: 'orders-db', target_kind: 'http', protocol: 'http', started_at: Date.now(), source_ip: null,
      identity: { sub: 'agent-z', iss: config.identity.dev_issuer!.issuer, groups: ['analysts'], act: null },
    });
    const exchange = (decisionId: string): HttpExchangeRecord => ({
      started_at: Date.now(), duration_ms: 1, wait_ms: 1, decision_id: decisionId, audit: null, masked: [], error: null,
      request: { method: 'GET', url: 'https://crm.internal/', http_version: '', headers: [], body: null },
      response: { status: 200, http_version: '', headers: [], body: null },
    });
    recording.append(exchange('d-1'));
    // A proxy bug: a malformed entry is dropped and counted, and seq 2 is a gap.
    recording.append({ ...exchange('d-2'), request: null } as unknown as HttpExchangeRecord);
    recording.append(exchange('d-3'));
    recording.close({ ended_at: Date.now(), reason: 'client closed' });
    expect(await gateway.recorder.flush()).toBe(true);
    for (const output of [[], ['--json'], ['--har']]) {
      const res = runCli(['sessions', 'replay', sessionId, '-c', configFile, ...output]);
      expect(res.code, output.join(' ')).toBe(1);
      expect(res.stderr, output.join(' ')).toBe(`gatehouse: 1 entry was lost while recording session ${sessionId}; the transcript is incomplete\n`);
    }
    expect(runCli(['sessions', 'replay', sessionId, '-c', configFile]).stdout).toContain('entry 2 missing (lost while recording)');
  });

  it('has --help', () => {
    for (const args of [['sessions'], ['sessions', 'list'], ['sessions', 'replay']]) {
      const res = runCli([...args, '--help']);
      expect(res.code, args.join(' ')).toBe(0);
      expect(res.stdout).toMatch(/^Usage: gatehouse sessions/);
    }
  });
});

describe('sessions and issuers', () => {
  it('keep one issuer\'s subject out of another\'s sessions of the same name; sessions recorded without an issuer are for viewers only', async () => {
    const foreign = randomUUID();
    gateway.recorder.open({
      session_id: foreign, target: 'orders-db', target_kind: 'postgres', source_ip: null, protocol: 'postgres', started_at: Date.now(),
      identity: { sub: 'agent-analyst', iss: 'https://other-idp.example', groups: ['analysts'], act: { sub: 'alice' } },
    }).close({ ended_at: Date.now(), reason: 'client closed' });
    const legacy = randomUUID();
    await gateway.store.appendRecordings({
      sessions: [{
        id: legacy, protocol: 'postgres', format: 'gatehouse.postgres-transcript.v1', target: 'orders-db', target_kind: 'postgres',
        sub: 'agent-analyst', iss: null, act_sub: null, groups: ['analysts'], source_ip: null, gateway: 'gw-old',
        started_at: Date.now(), ended_at: Date.now(), end_reason: 'client closed', dropped_entries: 0,
      }],
      entries: [],
    });
    expect(await gateway.recorder.flush()).toBe(true);

    for (const [sub, extra] of [['agent-analyst', {}], ['alice', { agent: false }]] as const) {
      const caller = await bearer(sub, ['analysts'], extra);
      const listed = await app.inject({ method: 'GET', url: '/v1/sessions?limit=100', headers: { authorization: caller } });
      const ids = (listed.json() as { sessions: Array<{ id: string }> }).sessions.map((s) => s.id);
      expect(ids, sub).not.toContain(foreign);
      expect(ids, sub).not.toContain(legacy);
      for (const id of [foreign, legacy]) {
        expect((await app.inject({ method: 'GET', url: `/v1/sessions/${id}`, headers: { authorization: caller } })).statusCode, `${sub} ${id}`).toBe(403);
      }
    }
    const auditor = await bearer('carol', ['auditors'], { agent: false });
    const seen = await app.inject({ method: 'GET', url: `/v1/sessions/${foreign}`, headers: { authorization: auditor } });
    expect(seen.statusCode).toBe(200);
    expect((seen.json() as { session: { identity: unknown } }).session.identity).toEqual({ sub: 'agent-analyst', iss: 'https://other-idp.example', act: { sub: 'alice' }, groups: ['analysts'] });
    expect((await app.inject({ method: 'GET', url: `/v1/sessions/${legacy}`, headers: { authorization: auditor } })).statusCode).toBe(200);
  });
});

describe('a failing recording store', () => {
  it('never costs a decision its audit event, and is loud', async () => {
    const original = gateway.store.appendRecordings.bind(gateway.store);
    gateway.store.appendRecordings = async () => {
      throw new Error('recording table is gone');
    };
    try {
      const sessionId = await runSession({ target: 'orders-db', sub: 'agent-y', groups: ['analysts'], statements: [{ action: 'orders-select.json', rows: 1 }] });
      expect(await gateway.recorder.flush()).toBe(false);
      expect(gateway.recorder.healthy).toBe(false);
      // Decisions go on, so the gateway says "degraded", not down.
      const degraded = await app.inject({ method: 'GET', url: '/health' });
      expect(degraded.statusCode).toBe(200);
      expect(degraded.json()).toMatchObject({ status: 'degraded', recordings: { healthy: false } });
      expect(degraded.json().recordings.queued).toBeGreaterThan(0);
      // The decision was allowed and audited, recording or not.
      const audited: string[] = [];
      for await (const r of gateway.store.readAudit({ stream: gateway.audit.stream })) {
        const event = JSON.parse(r.event) as { actor?: { session?: { uid?: string } }; unmapped?: { decision?: string } };
        if (event.actor?.session?.uid === sessionId) audited.push(event.unmapped!.decision!);
      }
      expect(audited).toEqual(['allow']);
      const metrics = await gateway.engine.metrics.registry.getSingleMetricAsString('gatehouse_recording_write_failures_total');
      expect(metrics).toMatch(/gatehouse_recording_write_failures_total [1-9]/);
    } finally {
      gateway.store.appendRecordings = original;
    }
    expect(await gateway.recorder.flush()).toBe(true);
    expect(gateway.recorder.healthy).toBe(true);
    expect((await app.inject({ method: 'GET', url: '/health' })).json()).toMatchObject({ status: 'ok', recordings: { healthy: true, queued: 0 } });
  });
});
