import { describe, expect, it } from 'vitest';
import { canonicalAction } from '../../engine/approvals/action.js';
import { approvableAction, checkAction, unbindable } from '../../engine/authorize/action-input.js';
import { exampleAction } from '../helpers/actions.js';

function withHeaders(headers: Record<string, string>): Record<string, unknown> {
  const action = exampleAction('crm-refund.json') as { attributes: { request: { http: { headers: Record<string, string> } } } };
  action.attributes.request.http.headers = { ...action.attributes.request.http.headers, ...headers };
  return action as unknown as Record<string, unknown>;
}

describe('checkAction', () => {
  it('accepts the protocol part of an input and refuses gateway-owned keys', () => {
    expect(checkAction(exampleAction('orders-select.json'), 'postgres').ok).toBe(true);
    expect(checkAction({ postgres: {}, approval: { id: 'x', status: 'approved' } }, 'postgres')).toEqual({
      ok: false, problem: 'the action must not set approval: the gateway sets it from verified facts',
    });
    expect(checkAction([], 'ssh')).toMatchObject({ ok: false });
    expect(checkAction({ postgres: {} }, 'http')).toEqual({ ok: false, problem: 'a http target\'s action needs a "attributes" object' });
  });
});

describe('approvableAction', () => {
  it('neither binds nor stores the agent\'s token, which the gateway takes off and a retry renews', () => {
    const first = withHeaders({ authorization: 'Bearer first-token', Cookie: 'session=1' });
    const retry = withHeaders({ authorization: 'Bearer second-token', Cookie: 'session=1' });
    const stored = canonicalAction('crm-api', approvableAction(first, 'http'));
    expect(stored.text).not.toContain('first-token');
    expect(stored.text).toContain('content-type');
    expect(canonicalAction('crm-api', approvableAction(retry, 'http')).hash).toBe(stored.hash);
    // The caller's action itself is untouched: policy still sees every header.
    expect(JSON.stringify(first)).toContain('first-token');
  });

  it('binds credentials the upstream receives (cookies, API keys, query tokens) by digest, never storing them', () => {
    const approved = withHeaders({ Cookie: 'tenant=acme', 'x-api-key': 'key-1' });
    (approved.attributes as { request: { http: { path: string } } }).request.http.path += '?key=alpha&password=hunter2';
    const stored = canonicalAction('crm-api', approvableAction(approved, 'http'));
    for (const secret of ['tenant=acme', 'key-1', 'alpha', 'hunter2']) expect(stored.text).not.toContain(secret);
    expect(stored.text).toMatch(/"withheld_sha256":"[0-9a-f]{64}"/);
    expect(canonicalAction('crm-api', approvableAction(structuredClone(approved), 'http')).hash).toBe(stored.hash);

    const variants: Array<(http: { path: string; headers: Record<string, string> }) => void> = [
      (http) => { http.headers.Cookie = 'tenant=other'; },
      (http) => { http.headers['x-api-key'] = 'key-2'; },
      (http) => { delete http.headers.Cookie; },
      (http) => { http.path = http.path.replace('key=alpha', 'key=beta'); },
      (http) => { http.path = http.path.replace('password=hunter2', 'password=hunter3'); },
      (http) => { http.path += ';id=8'; },
      (http) => { http.path += '#&id=8'; },
    ];
    for (const change of variants) {
      const other = structuredClone(approved) as { attributes: { request: { http: { path: string; headers: Record<string, string> } } } };
      change(other.attributes.request.http);
      expect(canonicalAction('crm-api', approvableAction(other as never, 'http')).hash, change.toString()).not.toBe(stored.hash);
    }
  });

  it('binds what a client can send to change what an upstream does, and stores no token header or query token', () => {
    const refund = canonicalAction('crm-api', approvableAction(withHeaders({}), 'http'));
    const clientHeaders: Record<string, string>[] = [{ 'x-forwarded-host': 'other-tenant.example' }, { 'x-forwarded-prefix': '/admin' }, { forwarded: 'host=x' }, { 'x-real-ip': '10.9.9.9' }];
    for (const header of clientHeaders) {
      expect(canonicalAction('crm-api', approvableAction(withHeaders(header), 'http')).hash, JSON.stringify(header)).not.toBe(refund.hash);
    }
    const tokens = withHeaders({
      'x-auth-token': 'tok-alpha', 'private-token': 'tok-bravo', 'x-vault-token': 'tok-charlie', 'api-key': 'tok-delta',
      // Vendors' names for keys and sessions, and a URL header with a token in its query.
      'X-Goog-Api-Key': 'tok-foxtrot', 'Ocp-Apim-Subscription-Key': 'tok-golf', 'X-Session-Token': 'tok-hotel', 'X-Shopify-Access-Token': 'tok-india', 'X-Auth': 'tok-juliet',
      referer: 'https://app.example/cb?access_token=tok-kilo&page=2',
      // Under names that say nothing: the value says it is a credential.
      authentication: 'Bearer tok-papa', 'x-upstream': 'Basic dG9rLXF1ZWJlYw==', 'x-context': 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0b2stcm9tZW8ifQ.c2ln',
    });
    (tokens.attributes as { request: { http: { path: string } } }).request.http.path += '?access_token=tok-echo&auth_token=tok-lima&token[]=tok-mike;session_id=tok-november';
    const stored = canonicalAction('crm-api', approvableAction(tokens, 'http')).text;
    for (const token of ['tok-alpha', 'tok-bravo', 'tok-charlie', 'tok-delta', 'tok-echo', 'tok-foxtrot', 'tok-golf', 'tok-hotel', 'tok-india', 'tok-juliet', 'tok-kilo', 'tok-lima', 'tok-mike', 'tok-november', 'tok-papa', 'dG9rLXF1ZWJlYw', 'eyJzdWIiOiJ0b2stcm9tZW8ifQ']) {
      expect(stored).not.toContain(token);
    }
    expect(stored).toContain('https://app.example/cb?access_token=[REDACTED]&page=2');
    // Still bound: another token in the Referer is another request.
    const other = structuredClone(tokens) as { attributes: { request: { http: { headers: Record<string, string> } } } };
    other.attributes.request.http.headers.referer = 'https://app.example/cb?access_token=tok-oscar&page=2';
    expect(canonicalAction('crm-api', approvableAction(other as never, 'http')).hash).not.toBe(canonicalAction('crm-api', approvableAction(tokens, 'http')).hash);
  });

  it('binds what the client put in X-Forwarded-For and any x-envoy-* header Envoy did not set itself', () => {
    const plain = canonicalAction('crm-api', approvableAction(withHeaders({ 'x-forwarded-for': '10.0.0.7' }), 'http'));
    // The address Envoy appends changes with the agent's host; an approval does not bind it.
    expect(canonicalAction('crm-api', approvableAction(withHeaders({ 'x-forwarded-for': '10.0.0.8' }), 'http')).hash).toBe(plain.hash);
    const changed: Record<string, string>[] = [{ 'x-forwarded-for': '203.0.113.50, 10.0.0.7' }, { 'x-envoy-retry-on': '5xx' }, { 'x-envoy-max-retries': '5' }];
    for (const header of changed) {
      expect(canonicalAction('crm-api', approvableAction(withHeaders(header), 'http')).hash, JSON.stringify(header)).not.toBe(plain.hash);
    }
    expect(canonicalAction('crm-api', approvableAction(withHeaders({ 'x-forwarded-for': '10.0.0.7', 'x-envoy-external-address': '10.0.0.7', 'x-envoy-internal': 'false' }), 'http')).hash).toBe(plain.hash);
  });

  it('still tells different requests apart, and leaves other protocols as they are', () => {
    const refund = canonicalAction('crm-api', approvableAction(withHeaders({}), 'http'));
    const other = withHeaders({ 'x-amount': '999' });
    expect(canonicalAction('crm-api', approvableAction(other, 'http')).hash).not.toBe(refund.hash);
    const select = exampleAction('orders-select.json');
    expect(approvableAction(select, 'postgres')).toBe(select);
  });
});

describe('approvableAction for a request Envoy describes', () => {
  function envoyAction(overrides: { time: string; id: string; port: number; extra?: Record<string, string> }): Record<string, unknown> {
    const action = withHeaders({ 'x-request-id': overrides.id, traceparent: `00-${overrides.id}-01`, 'user-agent': 'curl/8', ...overrides.extra }) as {
      attributes: Record<string, unknown> & { request: { http: Record<string, unknown> } };
    };
    action.attributes.request = { ...action.attributes.request, time: overrides.time } as never;
    action.attributes.source = { address: { socketAddress: { address: '10.0.0.1', portValue: overrides.port } } };
    action.attributes.request.http.id = overrides.id;
    return action as unknown as Record<string, unknown>;
  }

  it('binds the request, not what changes on every retry (time, ids, tracing, the peer port)', () => {
    const first = canonicalAction('crm-api', approvableAction(envoyAction({ time: '2026-11-30T10:00:00Z', id: 'a1', port: 50001 }), 'http'));
    const retry = canonicalAction('crm-api', approvableAction(envoyAction({ time: '2026-11-30T10:05:00Z', id: 'b2', port: 50002 }), 'http'));
    expect(retry.hash).toBe(first.hash);
    expect(first.text).toContain('/api/customers/42/refunds');
    expect(first.text).toContain('{\\"amount\\":10}');
  });

  it('binds headers that change what the request does', () => {
    const plain = canonicalAction('crm-api', approvableAction(envoyAction({ time: 't', id: 'a1', port: 1 }), 'http'));
    const overridden = canonicalAction('crm-api', approvableAction(envoyAction({ time: 't', id: 'a1', port: 1, extra: { 'x-http-method-override': 'DELETE' } }), 'http'));
    expect(overridden.hash).not.toBe(plain.hash);
  });
});

describe('unbindable', () => {
  it('refuses to bind a header value that reached Check with bytes replaced (not UTF-8)', () => {
    expect(unbindable(withHeaders({}), 'http')).toBeNull();
    expect(unbindable(withHeaders({ 'x-account': '\uFFFD' }), 'http')).toContain('the request header x-account is not UTF-8 text');
    expect(unbindable(withHeaders({ 'x-account': '\uFFFD' }), 'postgres')).toBeNull();
  });

  it('refuses a body of bytes (raw_body) with no Content-Length: it may have been cut at the limit', () => {
    const raw = (length?: string) => {
      const action = withHeaders({}) as { attributes: { request: { http: Record<string, unknown> & { headers: Record<string, string> } } } };
      const http = action.attributes.request.http;
      delete http.body;
      delete http.headers['content-length'];
      http.rawBody = Buffer.from([0xff, 0x41, 0x41]).toString('base64');
      if (length !== undefined) http.headers['content-length'] = length;
      return action as unknown as Record<string, unknown>;
    };
    expect(unbindable(raw(), 'http')).toContain('has no Content-Length');
    expect(unbindable(raw('3'), 'http')).toBeNull();
  });
});
