/**
 * Hold mode on the HTTP path: Check keeps Envoy's call open until a human
 * decides, so the request goes upstream the moment it is approved; when
 * Envoy gives up (its ext_authz timeout, or the client went away) the
 * held request is withdrawn, denied and audited, never left pending.
 */
import { request as httpRequest } from 'node:http';
import { connect as connectTcp } from 'node:net';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../engine/config/load.js';
import { startCrmApi, type CrmApi } from '../../examples/crm-api/server.js';
import { runCli } from '../helpers/cli.js';
import { CRM_API_TOKEN, envoyCheckRequest, headerMap, startExtAuthzStack, type ExtAuthzStack } from '../helpers/ext-authz-stack.js';
import { startStandinAt, type StandinUnderTest } from '../helpers/http-stack.js';
import { waitFor } from '../helpers/wait.js';

let stack: ExtAuthzStack;
let crm: CrmApi;
let standin: StandinUnderTest;
let sre: string;
let lead: string;

beforeAll(async () => {
  crm = await startCrmApi({ token: CRM_API_TOKEN });
  stack = await startExtAuthzStack({ approvalMode: 'hold', upstreamUrl: crm.url });
  const { targets } = loadConfig(stack.config, { ...process.env, CRM_API_TOKEN: 'unused-by-the-stand-in' });
  standin = await startStandinAt(stack.grpcAddress, targets);
  sre = stack.token('agent-sre', ['sre-agents']);
  lead = stack.token('lena', ['sre-leads'], { human: true });
}, 120_000);

afterAll(async () => {
  await standin?.close();
  await stack?.stop();
  await crm?.close();
});

interface Approval { id: string; status: string; action: { action: { attributes: { request: { http: { path: string } } } } } }

function approvals(status: string): Approval[] {
  const res = runCli(['approvals', 'list', '--status', status, '--json', '--server', stack.api, '--token', lead]);
  expect(res.code, res.stderr).toBe(0);
  return (JSON.parse(res.stdout) as { approvals: Approval[] }).approvals;
}

/** The approval request a held Check created (listing all: it may have ended by the time we look). */
function heldFor(path: string): Promise<Approval> {
  return waitFor(() => approvals('all').find((a) => a.action.action.attributes.request.http.path === path), `an approval request for ${path}`, 30_000);
}

describe('a held Check', () => {
  it('answers allow, with the credential, once a human approves', async () => {
    const path = '/customers/8/refund';
    const answer = stack.check(envoyCheckRequest({ method: 'POST', path, token: sre, headers: { 'content-type': 'application/json' }, body: '{"amount": 5}' }), 60_000);
    const held = await heldFor(path);
    const approved = runCli(['approvals', 'approve', held.id, '--server', stack.api, '--token', lead]);
    expect(approved.code, approved.stderr).toBe(0);
    const res = await answer;
    expect(res.status?.code).toBe(GrpcStatus.OK);
    expect(headerMap(res.ok_response?.headers).authorization).toBe(`Bearer ${CRM_API_TOKEN}`);
  });

  it('turns into a ticket just before Envoy\'s deadline, leaving the request pending for a human', async () => {
    const path = '/customers/9/refund';
    const request = envoyCheckRequest({ method: 'POST', path, token: sre, headers: { 'content-type': 'application/json' }, body: '{"amount": 6}' });
    // Envoy's ext_authz timeout (here 2 s) is shorter than the target's hold (60 s).
    const res = await stack.check(request, 2_000);
    expect(res.status?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    const body = JSON.parse(res.denied_response?.body ?? '{}') as { error: string; approval_id: string };
    expect(body.error).toBe('approval_required');
    expect(headerMap(res.denied_response?.headers)['retry-after']).toMatch(/^\d+$/);
    const held = approvals('pending').find((a) => a.id === body.approval_id);
    expect(held?.action.action.attributes.request.http.path).toBe(path);

    expect(runCli(['approvals', 'approve', body.approval_id, '--server', stack.api, '--token', lead]).code).toBe(0);
    expect((await stack.check(request, 2_000)).status?.code).toBe(GrpcStatus.OK);
  });

  it('is withdrawn when Envoy cancels the call (the client went away), so nobody approves a request that is gone', async () => {
    const path = '/customers/10/refund';
    const client = stack.authorizationClient() as unknown as { Check(r: unknown, cb: (e: ServiceError | null) => void): { cancel(): void } };
    const outcome = new Promise<ServiceError | null>((resolve) => {
      const call = client.Check(envoyCheckRequest({ method: 'POST', path, token: sre, headers: { 'content-type': 'application/json' }, body: '{"amount": 7}' }), resolve);
      void heldFor(path).then(() => call.cancel());
    });
    expect((await outcome)?.code).toBe(GrpcStatus.CANCELLED);
    const held = await heldFor(path);
    const ended = await waitFor(() => approvals('all').find((a) => a.id === held.id && a.status !== 'pending'), 'the held approval to end', 15_000);
    expect(ended.status).toBe('expired');
    const denial = runCli(['audit', 'export', '--config', stack.config]).stdout.split('\n').find((l) => l.includes(held.id) && l.includes('went away'));
    expect(denial, 'a deny audit event naming the approval').toBeDefined();
  });
});

describe('a held request through the stand-in', () => {
  it('is withdrawn when the client disconnects, as Envoy cancels the Check, and never reaches the upstream', async () => {
    const path = '/customers/11/refund';
    const body = '{"amount": 8}';
    const req = httpRequest(`${standin.url}${path}`, {
      method: 'POST', headers: { authorization: `Bearer ${sre}`, 'content-type': 'application/json', 'content-length': String(body.length) },
    });
    req.on('error', () => undefined); // destroyed below, on purpose
    req.end(body);
    const held = await heldFor(path);
    req.destroy();
    const ended = await waitFor(() => approvals('all').find((a) => a.id === held.id && a.status !== 'pending'), 'the held approval to end', 15_000);
    expect(ended.status).toBe('expired');
    expect(runCli(['approvals', 'approve', held.id, '--server', stack.api, '--token', lead]).code).not.toBe(0);
    const access = await waitFor(() => standin.logs.map((l) => l.access as { path?: string; details?: string } | undefined).find((a) => a?.path === path), 'the access log line of the request', 15_000);
    expect(access.details).toBe('downstream_remote_disconnect');
    expect(crm.requests().filter((r) => r.path === path)).toEqual([]);
  });

  it('withdraws a held request pipelined behind another when the connection closes', async () => {
    const paths = ['/customers/12/refund', '/customers/13/refund'];
    const body = '{"amount": 9}';
    const { hostname, port, host } = new URL(standin.url);
    const request = (path: string) => `POST ${path} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${sre}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const socket = connectTcp(Number(port), hostname);
    socket.on('error', () => undefined);
    socket.write(request(paths[0]!) + request(paths[1]!));
    const held = await Promise.all(paths.map((p) => heldFor(p)));
    socket.destroy();
    for (const { id } of held) {
      const ended = await waitFor(() => approvals('all').find((a) => a.id === id && a.status !== 'pending'), `approval ${id} to end`, 15_000);
      expect(ended.status).toBe('expired');
    }
    expect(crm.requests().filter((r) => paths.includes(r.path))).toEqual([]);
  });
});
