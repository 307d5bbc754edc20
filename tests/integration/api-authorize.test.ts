/**
 * The authorize and approvals routes on a gateway started the way `serve`
 * starts it (startGateway), driven with fastify's inject: the HTTP contract
 * (statuses, bodies, streaming) and its refusals.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiServer } from '../../api/server.js';
import { canonicalAction } from '../../engine/approvals/action.js';
import { generateCheckpointKey } from '../../engine/audit/key-source.js';
import { loadConfig } from '../../engine/config/load.js';
import type { GatehouseConfig } from '../../engine/config/schema.js';
import { startGateway, type Gateway } from '../../engine/gateway.js';
import { mintDevToken } from '../../engine/identity/dev-issuer.js';
import { exampleAction } from '../helpers/actions.js';
import { runCliAsync } from '../helpers/cli.js';
import { makeBundle } from '../helpers/gateway-bundle.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';
import { waitFor } from '../helpers/wait.js';

const logger = pino({ level: 'silent' });
const action = exampleAction;

let dir: string;
let webhook: Server;
const deliveries: Array<{ signature: string; body: Record<string, unknown> }> = [];
let config: GatehouseConfig;
let gateway: Gateway;
let app: FastifyInstance;

beforeAll(async () => {
  dir = makeTempDir('gatehouse-api-authorize-');
  webhook = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      deliveries.push({ signature: String(req.headers['x-gatehouse-signature']), body: JSON.parse(body) as Record<string, unknown> });
      res.end();
    });
  });
  await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
  makeBundle({ out: join(dir, 'bundle.tar.gz'), revision: 'api-authorize' });
  writeFileSync(join(dir, 'checkpoint.pem'), generateCheckpointKey('EdDSA').privatePem, { mode: 0o600 });
  writeFileSync(join(dir, 'gatehouse.yaml'), `
policy:
  bundle:
    source: bundle.tar.gz
identity:
  dev_issuer: {enabled: true, key_file: dev.jwk}
audit:
  checkpoint: {key_file: checkpoint.pem, algorithm: EdDSA}
approvals:
  public_url: https://gatehouse.example.com
  max_pending_per_requester: 200   # a listing test opens 121 for one agent
  webhook:
    url: http://127.0.0.1:${(webhook.address() as AddressInfo).port}/hook
    secret: \${env:HOOK_SECRET}
targets:
  - name: orders-db
    kind: postgres
    labels: {env: prod, data: pii}
    upstream: {address: 127.0.0.1:5432, database: orders}
    credentials: {username: u, password: "\${env:PW}"}
    approval: {mode: hold, timeout_seconds: 30}
`);
  config = loadConfig(join(dir, 'gatehouse.yaml'), { PW: 'x', HOOK_SECRET: 'hook-secret' });
  gateway = await startGateway(config, logger);
  app = createApiServer({ engine: gateway.engine, logger, gateway });
});

afterAll(async () => {
  await app.close();
  await gateway.stop();
  webhook.close();
  removeDir(dir);
});

const bearer = async (sub: string, groups: string[], extra: { act?: string; agent?: boolean } = {}) =>
  `Bearer ${await mintDevToken(config.identity.dev_issuer, { sub, groups, ttlSeconds: 300, ...extra })}`;

describe('POST /v1/authorize', () => {
  it('answers a decision with where its audit event landed', async () => {
    const res = await app.inject({
      method: 'POST', url: '/v1/authorize',
      headers: { authorization: await bearer('agent-a', ['analysts']) },
      payload: { target: 'orders-db', action: action('orders-select.json'), session_id: 'sess-1' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      decision: { action: 'allow' },
      identity: { sub: 'agent-a', act: null, groups: ['analysts'] },
      approval: null,
      audit: { stream: gateway.audit.stream, seq: expect.any(Number) as number },
    });
  });

  it('answers 401 without a valid token, 404 for an unknown target, 400 for a bad body', async () => {
    const noToken = await app.inject({ method: 'POST', url: '/v1/authorize', payload: { target: 'orders-db', action: action('orders-select.json') } });
    expect(noToken.statusCode).toBe(401);
    expect(noToken.json()).toMatchObject({ refused: 'unauthenticated', decision: { action: 'deny' } });
    const unknown = await app.inject({ method: 'POST', url: '/v1/authorize', headers: { authorization: await bearer('a', []) }, payload: { target: 'x', action: {} } });
    expect(unknown.statusCode).toBe(404);
    const bad = await app.inject({ method: 'POST', url: '/v1/authorize', payload: { target: 'orders-db' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual({ error: 'the body must be {"target": "<name>", "action": {...}, "session_id"?: "<id>"}' });
  });

  it('streams a held line with the approval, then the decision', async () => {
    const sre = await bearer('agent-sre-2', ['sre-agents'], { act: 'alice' });
    const pending = app.inject({
      method: 'POST', url: '/v1/authorize',
      headers: { authorization: sre, accept: 'application/x-ndjson' },
      payload: { target: 'orders-db', action: action('orders-update.json') },
    });
    const id = await waitFor(async () => (await gateway.approvals.list({ status: 'pending' }))[0]?.id, 'the request to be held');
    const denied = await app.inject({ method: 'POST', url: `/v1/approvals/${id}/deny`, headers: { authorization: await bearer('bob', ['dba'], { agent: false }) }, payload: { reason: 'not now' } });
    expect(denied.statusCode).toBe(200);
    const res = await pending;
    expect(res.headers['content-type']).toContain('application/x-ndjson');
    const lines = res.body.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.status)).toEqual(['held', 'decided']);
    expect(lines[0]).toMatchObject({ approval: { id, status: 'pending', status_url: `https://gatehouse.example.com/v1/approvals/${id}` } });
    expect(lines[1]).toMatchObject({ decision: { action: 'deny' }, approval: { id, status: 'denied', resolution: 'denied by bob: not now' } });

    // The new request was announced on the signed webhook.
    const delivery = await waitFor(() => deliveries.find((d) => (d.body.approval as { id: string }).id === id), 'the webhook delivery');
    expect(delivery.body).toMatchObject({ type: 'approval.requested', approval: { target: 'orders-db', groups: ['dba'] } });
    expect(delivery.signature).toMatch(/^v1=[0-9a-f]{64}$/);
  });
});

describe('/v1/approvals', () => {
  it('needs a token, says what is missing, and hides requests from strangers', async () => {
    expect((await app.inject({ method: 'GET', url: '/v1/approvals' })).statusCode).toBe(401);
    const bob = await bearer('bob', ['dba'], { agent: false });
    expect((await app.inject({ method: 'GET', url: '/v1/approvals/nope', headers: { authorization: bob } })).statusCode).toBe(404);
    const [request] = await gateway.approvals.list({ status: 'denied' });
    const stranger = await app.inject({ method: 'GET', url: `/v1/approvals/${request!.id}`, headers: { authorization: await bearer('eve', ['analysts'], { agent: false }) } });
    expect(stranger.statusCode).toBe(403);
    const noReason = await app.inject({ method: 'POST', url: `/v1/approvals/${request!.id}/deny`, headers: { authorization: bob }, payload: {} });
    expect(noReason.statusCode).toBe(400);
    const again = await app.inject({ method: 'POST', url: `/v1/approvals/${request!.id}/approve`, headers: { authorization: bob } });
    expect(again.statusCode).toBe(409);
    const list = await app.inject({ method: 'GET', url: '/v1/approvals?status=all', headers: { authorization: bob } });
    expect((list.json() as { approvals: Array<{ id: string }> }).approvals.map((a) => a.id)).toContain(request!.id);
    // An approver group carried by an agent, or by a token acting for a dba, shows it nothing (it cannot vote either).
    for (const agent of [await bearer('agent-dba', ['dba'], { agent: true }), await bearer('agent-dba', ['dba'], { act: 'bob' })]) {
      expect((await app.inject({ method: 'GET', url: `/v1/approvals/${request!.id}`, headers: { authorization: agent } })).statusCode).toBe(403);
      const listed = await app.inject({ method: 'GET', url: '/v1/approvals?status=all', headers: { authorization: agent } });
      expect((listed.json() as { approvals: Array<{ id: string }> }).approvals.map((a) => a.id)).not.toContain(request!.id);
    }
  });

  it('refuses text with no canonical JSON before it changes anything: no vote goes unaudited', async () => {
    const sre = await bearer('agent-sre-2', ['sre-agents'], { act: 'alice' });
    const held = app.inject({ method: 'POST', url: '/v1/authorize', headers: { authorization: sre }, payload: { target: 'orders-db', action: action('orders-delete.json') } });
    const id = await waitFor(async () => (await gateway.approvals.list({ status: 'pending' }))[0]?.id, 'the request to be held');
    const bob = await bearer('bob', ['dba'], { agent: false });
    // A lone surrogate, as JSON can spell one.
    const lone = await app.inject({
      method: 'POST', url: `/v1/approvals/${id}/approve`, headers: { authorization: bob, 'content-type': 'application/json' }, payload: '{"comment": "ok \\ud800"}',
    });
    expect(lone.statusCode).toBe(400);
    expect(lone.json()).toEqual({ error: 'the body holds text that is not well-formed Unicode (a lone surrogate)' });
    expect((await gateway.approvals.get(id)).status).toBe('pending');
    expect((await app.inject({ method: 'POST', url: `/v1/approvals/${id}/deny`, headers: { authorization: bob }, payload: { reason: 'no' } })).statusCode).toBe(200);
    expect((await held).json()).toMatchObject({ decision: { action: 'deny' } });

    let deep: unknown = 'x';
    for (let i = 0; i < 150; i++) deep = { a: deep };
    const nested = await app.inject({ method: 'POST', url: '/v1/authorize', headers: { authorization: sre }, payload: { target: 'orders-db', action: { postgres: deep } } });
    expect(nested.statusCode).toBe(400);
    expect(nested.json()).toEqual({ error: 'the body is nested deeper than 80 levels' });
  });

  it('lists the caller\'s requests however many newer ones it may not see', async () => {
    const agent = { sub: 'agent-flood', iss: 'urn:test', groups: ['sre-agents'], agent: true, act: null, claims: {} };
    const spec = (hash: string, groups: string[]) => ({
      requester: agent, target: 'orders-db', action: { text: '{}', hash }, requirement: { groups, min: 1, ttl_seconds: 900 },
      mode: 'ticket' as const, reasons: ['flood'], decisionId: 'd', sessionId: 's', policyRevision: null,
    });
    const mine = await gateway.approvals.request(spec('visible-to-dba', ['dba']));
    for (let i = 0; i < 120; i++) await gateway.approvals.request(spec(`hidden-${i}`, ['security']));
    const bob = await bearer('bob', ['dba'], { agent: false });
    const list = await app.inject({ method: 'GET', url: '/v1/approvals?limit=5', headers: { authorization: bob } });
    expect(list.statusCode).toBe(200);
    const ids = (list.json() as { approvals: Array<{ id: string }> }).approvals.map((a) => a.id);
    expect(ids).toContain(mine.id);
    expect(ids.length).toBeLessThanOrEqual(5);
  });
});

describe('an approval whose action was changed in the store under its hash', () => {
  const MISMATCH = 'the stored action does not match its hash: the record was changed outside the gateway';
  /** The API on a port, for the CLI: listened on once, by whichever test needs it first. */
  let listening: Promise<string> | undefined;
  const server = (): Promise<string> => (listening ??= app.listen({ host: '127.0.0.1', port: 0 }));

  /** A request for `DELETE`, then what a store admin can write: harmless text over the hash the DELETE still matches. */
  async function swapped(): Promise<string> {
    const agent = { sub: 'agent-swap', iss: 'urn:test', groups: ['sre-agents'], agent: true, act: null, claims: {} };
    const { id } = await gateway.approvals.request({
      requester: agent, target: 'orders-db', action: canonicalAction('orders-db', { postgres: { text: 'DELETE FROM orders' } }),
      requirement: { groups: ['dba'], min: 1, ttl_seconds: 900 }, mode: 'ticket', reasons: ['writes need a dba'], decisionId: 'd', sessionId: 's', policyRevision: null,
    });
    const current = (await gateway.store.getApproval(id))!;
    const harmless = canonicalAction('orders-db', { postgres: { text: 'SELECT 1' } }).text;
    await gateway.store.updateApproval({ ...current, action: harmless }, current.version);
    return id;
  }

  it('is shown without its action, cannot be approved, and can still be denied', async () => {
    const id = await swapped();
    const bob = await bearer('bob', ['dba'], { agent: false });
    const shown = await app.inject({ method: 'GET', url: `/v1/approvals/${id}`, headers: { authorization: bob } });
    expect(shown.statusCode).toBe(200);
    expect(shown.json()).toMatchObject({ id, status: 'pending', action: null, action_mismatch: MISMATCH });
    expect(shown.body).not.toContain('SELECT 1');
    const listed = (await app.inject({ method: 'GET', url: '/v1/approvals', headers: { authorization: bob } })).json() as { approvals: Array<Record<string, unknown>> };
    expect(listed.approvals.find((a) => a.id === id)).toMatchObject({ action: null, action_mismatch: MISMATCH });

    const approve = await app.inject({ method: 'POST', url: `/v1/approvals/${id}/approve`, headers: { authorization: bob } });
    expect(approve.statusCode).toBe(409);
    expect(approve.json()).toEqual({ error: `approval ${id} cannot be approved: ${MISMATCH}; deny or revoke it` });
    expect(await gateway.approvals.get(id)).toMatchObject({ status: 'pending', votes: [] });

    const deny = await app.inject({ method: 'POST', url: `/v1/approvals/${id}/deny`, headers: { authorization: bob }, payload: { reason: 'changed in the store' } });
    expect(deny.statusCode).toBe(200);
    expect(deny.json()).toMatchObject({ status: 'denied', action: null, action_mismatch: MISMATCH });
  });

  it('is shown untouched when text and hash agree', async () => {
    const agent = { sub: 'agent-plain', iss: 'urn:test', groups: ['sre-agents'], agent: true, act: null, claims: {} };
    const action = canonicalAction('orders-db', { postgres: { text: 'DELETE FROM orders WHERE id = 1' } });
    const { id } = await gateway.approvals.request({
      requester: agent, target: 'orders-db', action, requirement: { groups: ['dba'], min: 1, ttl_seconds: 900 },
      mode: 'ticket', reasons: ['writes need a dba'], decisionId: 'd', sessionId: 's', policyRevision: null,
    });
    const bob = await bearer('bob', ['dba'], { agent: false });
    const shown = (await app.inject({ method: 'GET', url: `/v1/approvals/${id}`, headers: { authorization: bob } })).json() as Record<string, unknown>;
    expect(shown).toMatchObject({ action: JSON.parse(action.text) as unknown, action_hash: action.hash, action_mismatch: null });
    expect((await app.inject({ method: 'POST', url: `/v1/approvals/${id}/approve`, headers: { authorization: bob } })).json()).toMatchObject({ status: 'approved' });
  });

  it('is not approved with the hash the approver read once text and hash were replaced together', async () => {
    const agent = { sub: 'agent-both', iss: 'urn:test', groups: ['sre-agents'], agent: true, act: null, claims: {} };
    const read = canonicalAction('orders-db', { postgres: { text: 'SELECT 1' } });
    const { id } = await gateway.approvals.request({
      requester: agent, target: 'orders-db', action: read,
      requirement: { groups: ['dba'], min: 1, ttl_seconds: 900 }, mode: 'ticket', reasons: ['writes need a dba'], decisionId: 'd', sessionId: 's', policyRevision: null,
    });
    const api = await server();
    const token = (await bearer('bob', ['dba'], { agent: false })).slice('Bearer '.length);
    const show = await runCliAsync(['approvals', 'show', id, '--server', api, '--token', token]);
    expect(show.stdout).toContain(`approve what you read: gatehouse approvals approve ${id} --action-hash ${read.hash}\n`);

    // After the approver read it, a store admin writes another request's text and hash: each agrees with the other.
    const current = (await gateway.store.getApproval(id))!;
    const other = canonicalAction('orders-db', { postgres: { text: 'DELETE FROM orders' } });
    await gateway.store.updateApproval({ ...current, action: other.text, action_hash: other.hash }, current.version);

    const approve = await runCliAsync(['approvals', 'approve', id, '--action-hash', read.hash, '--server', api, '--token', token]);
    expect(approve.code).toBe(1);
    expect(approve.stderr).toContain(`approval ${id} cannot be approved: its action hash is ${other.hash}, not the ${read.hash} you were shown`);
    expect(await gateway.approvals.get(id)).toMatchObject({ status: 'pending', votes: [] });

    const malformed = await app.inject({ method: 'POST', url: `/v1/approvals/${id}/approve`, headers: { authorization: `Bearer ${token}` }, payload: { action_hash: 'abc' } });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.body).toContain('64 hex digits');
    const approved = await runCliAsync(['approvals', 'approve', id, '--action-hash', other.hash, '--server', api, '--token', token]);
    expect(approved.code, approved.stderr).toBe(0);
    expect(await gateway.approvals.get(id)).toMatchObject({ status: 'approved' });
  });

  it('is flagged by gatehouse approvals show and list, which print no action for it', async () => {
    const id = await swapped();
    const api = await server();
    const token = (await bearer('bob', ['dba'], { agent: false })).slice('Bearer '.length);
    const show = await runCliAsync(['approvals', 'show', id, '--server', api, '--token', token]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toContain(`action (sha256 ${(await gateway.store.getApproval(id))!.action_hash}): NOT SHOWN\nWARNING: ${MISMATCH}. Do not approve this request; deny or revoke it.\n`);
    expect(show.stdout).not.toContain('SELECT 1');
    const list = await runCliAsync(['approvals', 'list', '--server', api, '--token', token]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split('\n').find((line) => line.startsWith(id))).toMatch(new RegExp(`  WARNING: ${MISMATCH}$`));
  });
});
