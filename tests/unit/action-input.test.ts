import { describe, expect, it } from 'vitest';
import { canonicalAction } from '../../engine/approvals/action.js';
import { approvableAction, checkAction } from '../../engine/authorize/action-input.js';
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
  it('leaves the caller\'s credential headers out of what an approval binds and stores', () => {
    const first = withHeaders({ authorization: 'Bearer first-token', Cookie: 'session=1' });
    const retry = withHeaders({ authorization: 'Bearer second-token', Cookie: 'session=2' });
    const stored = canonicalAction('crm-api', approvableAction(first, 'http'));
    expect(stored.text).not.toContain('first-token');
    expect(stored.text).not.toContain('session=1');
    expect(stored.text).toContain('content-type');
    expect(canonicalAction('crm-api', approvableAction(retry, 'http')).hash).toBe(stored.hash);
    // The caller's action itself is untouched: policy still sees every header.
    expect(JSON.stringify(first)).toContain('first-token');
  });

  it('still tells different requests apart, and leaves other protocols as they are', () => {
    const refund = canonicalAction('crm-api', approvableAction(withHeaders({}), 'http'));
    const other = withHeaders({ 'x-amount': '999' });
    expect(canonicalAction('crm-api', approvableAction(other, 'http')).hash).not.toBe(refund.hash);
    const select = exampleAction('orders-select.json');
    expect(approvableAction(select, 'postgres')).toBe(select);
  });
});
