/**
 * Authorization/Check as Envoy calls it: a real grpc-js client sends
 * CheckRequests shaped exactly as Envoy's ext_authz filter builds them (from
 * Envoy's own protos) to `gatehouse serve`, which runs the project's policy
 * bundle. Each answer is checked the way Envoy would read it.
 */
import { createHmac } from 'node:crypto';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { structToJson } from '../../ext-authz/struct.js';
import { runCli } from '../helpers/cli.js';
import { CRM_API_TOKEN, envoyCheckRequest, headerMap, startExtAuthzStack, type ExtAuthzStack } from '../helpers/ext-authz-stack.js';

let stack: ExtAuthzStack;
let support: string;
let sre: string;
let lead: string;

beforeAll(async () => {
  stack = await startExtAuthzStack({
    // A database target too: a route that names it by mistake must be refused clearly.
    targetsYaml: `  - name: orders-db
    kind: postgres
    upstream: {address: 127.0.0.1:9, database: orders}
    credentials: {username: gatehouse, password: unused-here}`,
  });
  support = stack.token('agent-support', ['support-agents']);
  sre = stack.token('agent-sre', ['sre-agents']);
  lead = stack.token('lena', ['sre-leads'], { human: true });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

function deniedBody(res: Awaited<ReturnType<ExtAuthzStack['check']>>): Record<string, unknown> {
  return JSON.parse(res.denied_response?.body ?? '{}') as Record<string, unknown>;
}

function auditExport(): string {
  const out = runCli(['audit', 'export', '--config', stack.config]);
  expect(out.code, out.stderr).toBe(0);
  return out.stdout;
}

describe('Check allows', () => {
  it('swaps the agent token for the target credential and hands ext_proc the mask plan', async () => {
    const res = await stack.check(envoyCheckRequest({ method: 'GET', path: '/customers?limit=2', token: support }));
    expect(res.status?.code).toBe(GrpcStatus.OK);
    expect(res.http_response).toBe('ok_response');
    const set = headerMap(res.ok_response?.headers);
    expect(set.authorization).toBe(`Bearer ${CRM_API_TOKEN}`);
    expect(res.ok_response?.headers?.find((h) => h.header.key === 'authorization')?.append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
    // The credential overwrites the agent's Authorization header: removing it as well would race the two lists.
    expect(res.ok_response?.headers_to_remove ?? []).not.toContain('authorization');

    const metadata = structToJson(res.dynamic_metadata);
    const { decision_id: decisionId, exchange: exchangeJson } = metadata.gatehouse as { decision_id: string; exchange: string };
    const exchange = JSON.parse(exchangeJson) as Record<string, unknown>;
    // Envoy's access log reads the decision id as its own field.
    expect(decisionId).toBe(exchange.decision_id);
    expect(exchange).toMatchObject({
      target: 'crm-api',
      identity: { sub: 'agent-support', groups: ['support-agents'], act: null },
      source_ip: '10.1.2.3',
      record: true,
      credential_header: 'authorization',
    });
    expect(exchange.mask).toEqual([
      { field: '$..email', strategy: 'partial' },
      { field: '$..phone', strategy: 'hash' },
      { field: '$..notes', detectors: ['email', 'payment_card'], strategy: 'redact' },
    ]);
    expect(JSON.stringify(metadata)).not.toContain(CRM_API_TOKEN);

    const events = auditExport();
    const event = events.trim().split('\n').map((l) => JSON.parse(l) as { policy: { uid: string }; http_request?: { uid?: string } })
      .find((e) => e.policy.uid === exchange.decision_id);
    // Envoy's x-request-id joins the audit event to Envoy's access log line.
    expect(event?.http_request?.uid).toBe('3b1f6c2e-8d0a-4e55-9c1b-2a7d5f0e9b41');
    expect(events).not.toContain(CRM_API_TOKEN);
    expect(events).not.toContain(support);
  });
});

describe('Check denies', () => {
  it('answers a request the policy refuses with 403, the reasons and the decision id', async () => {
    const res = await stack.check(envoyCheckRequest({ method: 'POST', path: '/customers', token: support, headers: { 'content-type': 'application/json' }, body: '{"name":"x"}' }));
    expect(res.status?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(res.http_response).toBe('denied_response');
    expect(res.denied_response?.status?.code).toBe('Forbidden');
    expect(headerMap(res.denied_response?.headers)['content-type']).toBe('application/json');
    const body = deniedBody(res);
    expect(body.error).toBe('denied');
    expect(String(body.reasons)).toMatch(/POST \/customers needs write access/);
    expect(auditExport()).toContain(body.decision_id as string);
  });

  it('keeps credentials a client put in the query string out of the audit event', async () => {
    const res = await stack.check(envoyCheckRequest({ method: 'DELETE', path: '/customers/3?api_key=sk-live-93f1&reason=dup', token: support }));
    const { decision_id: decisionId } = deniedBody(res);
    const event = auditExport().split('\n').find((l) => l.includes(decisionId as string));
    expect(event).toContain('/customers/3?api_key=[REDACTED]&reason=dup');
    expect(event).not.toContain('sk-live-93f1');
  });

  it('keeps a JWT in the path, or in a method-override header, out of the reasons, as out of the request facts', async () => {
    // A short HS256 JWT another service issued, e.g. a password-reset or magic-link token.
    const b64 = (s: string) => Buffer.from(s).toString('base64url');
    const head = `${b64('{"alg":"HS256"}')}.${b64('{"sub":"u1","exp":9999999999}')}`;
    const jwt = `${head}.${createHmac('sha256', 'k').update(head).digest('base64url')}`;
    const inPath = await stack.check(envoyCheckRequest({ method: 'POST', path: `/password-reset/${jwt}`, token: support }));
    // The override header's value is clipped at 100 characters in the reason, inside the token's signature.
    const inHeader = await stack.check(envoyCheckRequest({ method: 'GET', path: '/customers', token: support, headers: { 'x-http-method-override': jwt } }));
    const events = auditExport().split('\n');
    for (const [res, reason] of [
      [inPath, 'group support-agents has read-only access to crm-api; POST /password-reset/[REDACTED] needs write access'],
      [inHeader, 'group support-agents has read-only access to crm-api; GET /customers with x-http-method-override: [REDACTED]... needs write access'],
    ] as const) {
      const body = deniedBody(res);
      expect(body.reasons).toEqual([reason]);
      const line = events.find((l) => l.includes(body.decision_id as string));
      expect(line).not.toContain(head);
      const event = JSON.parse(line!) as { policy: { data: { reasons: string[] } } };
      expect(event.policy.data.reasons).toEqual([reason]);
    }
  });

  it('answers a missing or bad token with 401 and a Bearer challenge', async () => {
    for (const token of [undefined, 'not-a-jwt']) {
      const res = await stack.check(envoyCheckRequest({ method: 'GET', path: '/customers', token }));
      expect(res.status?.code).toBe(GrpcStatus.UNAUTHENTICATED);
      expect(res.denied_response?.status?.code).toBe('Unauthorized');
      expect(headerMap(res.denied_response?.headers)['www-authenticate']).toMatch(/^Bearer realm="gatehouse", error="invalid_token"/);
      expect(deniedBody(res).error).toBe('unauthenticated');
    }
  });

  it('denies a route that names no target, saying so', async () => {
    const res = await stack.check(envoyCheckRequest({ method: 'GET', path: '/customers', token: support, target: null }));
    expect(res.status?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(String(deniedBody(res).reasons)).toMatch(/names no target/);
  });

  it('denies a route that names a target of another kind, saying what it should name', async () => {
    const res = await stack.check(envoyCheckRequest({ method: 'GET', path: '/customers', token: support, target: 'orders-db' }));
    expect(res.status?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(String(deniedBody(res).reasons)).toMatch(/target orders-db is a postgres target; an Envoy route must name an http target/);
  });

  it('denies a JSON body that does not parse, as the OPA-Envoy plugin cannot decide it either', async () => {
    const res = await stack.check(envoyCheckRequest({ method: 'GET', path: '/customers', token: support, headers: { 'content-type': 'application/json' }, body: '{"broken"' }));
    expect(res.status?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(String(deniedBody(res).reasons)).toMatch(/not valid JSON/);
  });

  it('denies, audited, a time protojson cannot write (past year 9999) rather than failing the call', async () => {
    const request = envoyCheckRequest({ method: 'GET', path: '/customers', token: support }) as { attributes: { request: { time: unknown } } };
    request.attributes.request.time = { seconds: '99999999999999', nanos: 0 };
    const res = await stack.check(request);
    expect(res.status?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    const body = deniedBody(res);
    expect(String(body.reasons)).toMatch(/request time \(attributes\.request\.time\) is not a Timestamp/);
    const event = JSON.parse(auditExport().split('\n').find((l) => l.includes(body.decision_id as string))!) as { policy: { data: { failure: string } }; message: string };
    expect([event.policy.data.failure, event.message]).toEqual(['invalid_action', 'GET /customers']);
  });

  it('decides, and denies, a request with no method or path rather than failing on it', async () => {
    const res = await stack.check({ attributes: { request: { http: { headers: { authorization: `Bearer ${support}` } } }, context_extensions: { target: 'crm-api' } } });
    expect(res.status?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(String(deniedBody(res).reasons)).toMatch(/no method/);
  });
});

describe('Check with a ticket approval', () => {
  it('answers 403 with the approval id, status URL and Retry-After; once approved the same request passes once', async () => {
    const request = envoyCheckRequest({ method: 'POST', path: '/customers/7/refund', token: sre, headers: { 'content-type': 'application/json' }, body: '{"amount": 12}' });
    const first = await stack.check(request);
    expect(first.status?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(first.denied_response?.status?.code).toBe('Forbidden');
    const headers = headerMap(first.denied_response?.headers);
    const body = deniedBody(first);
    expect(body.error).toBe('approval_required');
    expect(headers['retry-after']).toMatch(/^\d+$/);
    expect(headers['x-gatehouse-approval-id']).toBe(body.approval_id);
    expect(body.status_url).toBe(`${stack.api}/v1/approvals/${String(body.approval_id)}`);
    expect(headers.link).toBe(`<${String(body.status_url)}>; rel="status"`);

    // Asking again before anyone approves is the same pending request, not a new one.
    expect(deniedBody(await stack.check(request)).approval_id).toBe(body.approval_id);

    const approved = runCli(['approvals', 'approve', String(body.approval_id), '--server', stack.api, '--token', lead]);
    expect(approved.code, approved.stderr).toBe(0);

    // A fresh token, as an agent retrying later would have: the approval binds the action, not the token.
    const retry = await stack.check(envoyCheckRequest({ method: 'POST', path: '/customers/7/refund', token: stack.token('agent-sre', ['sre-agents']), headers: { 'content-type': 'application/json' }, body: '{"amount": 12}' }));
    expect(retry.status?.code).toBe(GrpcStatus.OK);
    expect(headerMap(retry.ok_response?.headers).authorization).toBe(`Bearer ${CRM_API_TOKEN}`);

    const again = await stack.check(request);
    expect(again.status?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(deniedBody(again).approval_id).not.toBe(body.approval_id);
  });

  it('gives identical requests sent at once one approval request, which lets exactly one of them through', async () => {
    const request = envoyCheckRequest({ method: 'POST', path: '/customers/6/refund', token: sre, headers: { 'content-type': 'application/json' }, body: '{"amount": 3}' });
    const answers = await Promise.all([1, 2, 3, 4].map(() => stack.check(request)));
    const ids = new Set(answers.map((a) => deniedBody(a).approval_id));
    expect(ids.size).toBe(1);
    const [id] = [...ids];
    expect(runCli(['approvals', 'approve', String(id), '--server', stack.api, '--token', lead]).code).toBe(0);
    const retries = await Promise.all([1, 2, 3].map(() => stack.check(request)));
    expect(retries.filter((r) => r.status?.code === GrpcStatus.OK)).toHaveLength(1);
  });

  it('denies, without asking anyone, a body it cannot tell is whole (no Content-Length), or whose bytes reached it replaced', async () => {
    const chunked = envoyCheckRequest({ method: 'POST', path: '/customers/7/refund', token: sre, headers: { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' }, body: 'a=xxxx' }) as { attributes: { request: { http: { headers: Record<string, string> } } } };
    delete chunked.attributes.request.http.headers['content-length'];
    const notUtf8 = envoyCheckRequest({ method: 'POST', path: '/customers/7/refund', token: sre, headers: { 'content-type': 'application/octet-stream' }, body: 'amount=\uFFFD\uFFFD' });
    // Bytes in raw_body (pack_as_bytes, or the stand-in's body that is not UTF-8), with no Content-Length.
    const chunkedBytes = envoyCheckRequest({ method: 'POST', path: '/customers/7/refund', token: sre, headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } }) as { attributes: { request: { http: Record<string, unknown> } } };
    chunkedBytes.attributes.request.http.raw_body = Buffer.concat([Buffer.from([0xff]), Buffer.alloc(8191, 0x41)]);
    for (const [request, why] of [[chunked, 'has no Content-Length'], [notUtf8, 'is not UTF-8 text'], [chunkedBytes, 'has no Content-Length']] as const) {
      const res = await stack.check(request);
      expect(res.status?.code).toBe(GrpcStatus.PERMISSION_DENIED);
      const denied = deniedBody(res);
      expect(denied.approval_id).toBeUndefined();
      expect(JSON.stringify(denied)).toContain(why);
    }
  });

  it('denies, without asking anyone, a request whose body Envoy cut short: an approval could not bind the rest', async () => {
    for (const type of ['application/json', 'text/plain']) {
      const cut = envoyCheckRequest({ method: 'POST', path: '/customers/7/refund', token: sre, headers: { 'content-type': type, 'content-length': '9000' }, body: '{"amount": 12' });
      const res = await stack.check(cut);
      expect(res.status?.code).toBe(GrpcStatus.PERMISSION_DENIED);
      const denied = deniedBody(res);
      expect(denied.approval_id).toBeUndefined();
      expect(JSON.stringify(denied)).toContain('an approval could not bind all of it');
    }
  });
});
