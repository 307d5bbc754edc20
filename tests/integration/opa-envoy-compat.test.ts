/**
 * A policy written for the OPA-Envoy plugin runs unchanged: OPA-Envoy input
 * document in, the plugin's result object out. examples/opa-envoy/authz.rego
 * (OPA's Envoy tutorial style) is compiled to WASM as it is and Gatehouse is
 * pointed at its entrypoint with policy.entrypoints.http.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CRM_API_TOKEN, envoyCheckRequest, headerMap, startExtAuthzStack, type ExtAuthzStack } from '../helpers/ext-authz-stack.js';
import { buildBundle, makeTempDir, removeDir, repoRoot } from '../helpers/opa.js';

const POLICY = join(repoRoot, 'examples/opa-envoy/authz.rego');
let dir: string;
let stack: ExtAuthzStack;

beforeAll(async () => {
  dir = makeTempDir('gatehouse-opa-envoy-');
  const bundle = join(dir, 'bundle.tar.gz');
  writeFileSync(bundle, buildBundle(POLICY, ['-t', 'wasm', '-e', 'envoy/authz/allow', '--capabilities', join(repoRoot, 'policies/capabilities.json')]));
  stack = await startExtAuthzStack({ bundle: { file: bundle, httpEntrypoint: 'envoy/authz/allow' } });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (dir) removeDir(dir);
});

describe('an OPA-Envoy policy, unchanged', () => {
  it('reads parsed_path and the request headers, and its allow object becomes Envoy header and query mutations', async () => {
    const token = stack.token('agent-people', ['support-agents']);
    const res = await stack.check(envoyCheckRequest({ method: 'GET', path: '/people/42?debug=1&fields=name', token, headers: { 'x-debug': 'on' } }));
    expect(res.status?.code).toBe(GrpcStatus.OK);
    const set = headerMap(res.ok_response?.headers);
    expect(set['x-ext-auth-allow']).toBe('yes');
    // The policy decoded the token's claims itself, as it would under opa-envoy-plugin.
    expect(set['x-ext-auth-user']).toBe('agent-people');
    // Gatehouse's own part of an allow still applies: the target credential replaces the agent's token.
    expect(set.authorization).toBe(`Bearer ${CRM_API_TOKEN}`);
    expect(res.ok_response?.headers_to_remove).toContain('x-debug');
    expect(headerMap(res.ok_response?.response_headers_to_add)['x-policy']).toBe('envoy.authz');
    expect(res.ok_response?.query_parameters_to_remove).toEqual(['debug']);
  });

  it('answers a denial with the policy\'s own status, headers and body', async () => {
    const token = stack.token('agent-people', ['support-agents']);
    const res = await stack.check(envoyCheckRequest({ method: 'POST', path: '/people', token, headers: { 'content-type': 'application/json' }, body: '{"name":"Eve"}' }));
    expect(res.status?.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(res.denied_response?.status?.code).toBe('Forbidden');
    expect(res.denied_response?.body).toBe('{"error": "forbidden by envoy.authz"}');
    expect(headerMap(res.denied_response?.headers)).toMatchObject({ 'content-type': 'application/json', 'x-ext-auth-allow': 'no' });
  });

  it('reads the caller\'s groups from the token claims, allowing an admin\'s POST', async () => {
    const admin = stack.token('agent-admin', ['admin']);
    const res = await stack.check(envoyCheckRequest({ method: 'POST', path: '/people', token: admin, headers: { 'content-type': 'application/json' }, body: '{"name":"Eve"}' }));
    expect(res.status?.code).toBe(GrpcStatus.OK);
    expect(headerMap(res.ok_response?.headers)['x-ext-auth-user']).toBe('agent-admin');
  });
});
