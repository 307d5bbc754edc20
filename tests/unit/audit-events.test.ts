import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../engine/audit/canonical.js';
import { approvalEvent, decisionEvent, type DecisionFacts } from '../../engine/audit/events.js';
import type { ApprovalRecord } from '../../engine/store/store.js';
import { sampleFacts } from '../helpers/audit.js';

/** Every key path of a JSON value down to arrays: the shape, not the values. */
function shape(value: unknown, prefix = ''): string[] {
  if (Array.isArray(value)) return [`${prefix}[]`];
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => shape(v, prefix ? `${prefix}.${k}` : k)).sort();
  return [prefix];
}

const withFacts = (patch: Partial<DecisionFacts>): DecisionFacts => ({ ...sampleFacts(1), ...patch });

describe('decision events', () => {
  it('give allow, deny and approve exactly the same fields', () => {
    const allow = decisionEvent(withFacts({ action: 'allow' }), 's1');
    const deny = decisionEvent(withFacts({ action: 'deny', policy: { ...sampleFacts(1).policy, failure: 'timeout' } }), 's1');
    const approve = decisionEvent(withFacts({ action: 'approve', approval_id: 'ap-1' }), 's1');
    expect(shape(deny)).toEqual(shape(allow));
    expect(shape(approve)).toEqual(shape(allow));
  });

  it('carry the AU-3 content in OCSF places', () => {
    const event = decisionEvent(sampleFacts(4), 'gw-1');
    expect(event).toMatchObject({
      class_uid: 4002, category_uid: 4, activity_id: 3, activity_name: 'Get', type_uid: 400203,
      time: sampleFacts(4).time,
      metadata: { product: { name: 'Gatehouse' }, uid: expect.any(String), log_name: 'gw-1', version: '1.3.0' },
      action: 'Allowed', disposition: 'Allowed', disposition_id: 1, status: 'Success', severity_id: 1,
      actor: { user: { uid: 'agent-analyst-7', type: 'Agent', groups: [{ name: 'analysts' }] }, idp: { name: 'https://idp.example.com' }, session: { uid: 'session-4' } },
      src_endpoint: { ip: '10.0.0.7' },
      dst_endpoint: { name: 'orders-api', svc_name: 'http' },
      http_request: { http_method: 'GET', url: { path: '/orders/4', hostname: 'orders.internal' } },
      message: 'GET /orders/4',
      policy: { name: 'gatehouse/http/decision', version: 'rev-1', uid: 'decision-4', data: { reasons: ['analysts may read orders'], failure: null } },
      unmapped: {
        decision: 'allow', agent: true, act: { sub: 'alice@example.com' }, target_labels: { env: 'prod' },
        masked: [{ column: 'customer.email', detector: 'email', count: 1 }], approval_id: null, action_hash: 'a'.repeat(64),
      },
    });
  });

  it('mark denials blocked, and fail-closed denials more severe', () => {
    expect(decisionEvent(withFacts({ action: 'deny' }), 's')).toMatchObject({ action_id: 2, disposition_id: 2, disposition: 'Blocked', status_id: 2, severity_id: 2 });
    const failed = decisionEvent(withFacts({ action: 'deny', policy: { ...sampleFacts(1).policy, failure: 'evaluation_error' } }), 's');
    expect(failed).toMatchObject({ severity_id: 3, policy: { data: { failure: 'evaluation_error' } } });
  });

  it('tell a held request and an approved replay apart', () => {
    expect(decisionEvent(withFacts({ action: 'approve', approval_id: 'ap-1' }), 's')).toMatchObject({ action: 'Denied', disposition: 'Pending Approval' });
    expect(decisionEvent(withFacts({ action: 'allow', approval_id: 'ap-1' }), 's')).toMatchObject({ action: 'Allowed', disposition_id: 8, disposition: 'Approved' });
  });

  it('use the class that fits the protocol', () => {
    const pg = decisionEvent(withFacts({
      target: { name: 'orders-db', kind: 'postgres', labels: {} },
      request: { protocol: 'postgres', database: 'orders', role: 'analyst', text: 'DELETE FROM t', statement_kinds: ['delete'] },
    }), 's');
    expect(pg).toMatchObject({ class_uid: 6005, category_uid: 6, activity_id: 7, type_uid: 600507, database: { name: 'orders' }, query_info: { query_string: 'DELETE FROM t' } });
    const ssh = decisionEvent(withFacts({
      target: { name: 'bastion', kind: 'ssh', labels: {} },
      request: { protocol: 'ssh', user: 'deploy', request: 'exec', command: 'uptime' },
    }), 's');
    expect(ssh).toMatchObject({ class_uid: 4007, activity_id: 1, type_uid: 400701, unmapped: { ssh: { command: 'uptime' } } });
    const refused = decisionEvent(withFacts({ target: { name: 'nope', kind: null, labels: {} }, request: null, action: 'deny' }), 's');
    expect(refused).toMatchObject({ class_uid: 0, activity_id: 0, type_uid: 0, dst_endpoint: { name: 'nope', svc_name: null } });
  });

  it('record an unknown caller with the same fields', () => {
    const anonymous = decisionEvent(withFacts({ identity: null, action: 'deny' }), 's');
    expect(shape(anonymous.actor)).toEqual(shape(decisionEvent(sampleFacts(1), 's').actor));
    expect(anonymous).toMatchObject({ actor: { user: { uid: null } }, unmapped: { agent: false, act: null } });
  });

  it('are JSON values that survive canonicalisation unchanged', () => {
    const text = canonicalJson(decisionEvent(sampleFacts(2), 's'));
    expect(JSON.parse(text)).toEqual(decisionEvent({ ...sampleFacts(2), event_id: JSON.parse(text).metadata.uid }, 's'));
  });
});

describe('approval events', () => {
  const approval: ApprovalRecord = {
    id: 'ap-1', status: 'approved', version: 3,
    requester: { sub: 'agent-7', iss: 'https://idp', act: { sub: 'alice' }, groups: ['analysts'] },
    target: 'orders-db', action: '{"q":1}', action_hash: 'b'.repeat(64), reasons: ['writes to prod need approval'],
    groups: ['dba'], min: 1, mode: 'hold', created_at: '2025-01-01T00:00:00Z', expires_at: '2025-01-01T00:15:00Z',
    votes: [{ sub: 'bob', decision: 'approve', comment: 'ok', at: '2025-01-01T00:01:00Z' }],
    resolution: null, resolved_at: '2025-01-01T00:01:00Z', decision_id: 'd-1', session_id: 'sess-1', policy_revision: 'rev-1',
  };
  const bob = { sub: 'bob', iss: 'https://idp', groups: ['dba'], agent: false, act: null, claims: {} };

  it('are Entity Management events about the approval', () => {
    expect(approvalEvent({ approval: { ...approval, status: 'pending', votes: [] }, transition: 'requested' }, 's')).toMatchObject({
      class_uid: 3004, category_uid: 3, activity_id: 1, type_uid: 300401, entity: { uid: 'ap-1', type: 'approval', data: { status: 'pending' } },
      actor: { app_name: 'Gatehouse' }, unmapped: { transition: 'requested', session_id: 'sess-1' },
    });
    expect(approvalEvent({ approval, transition: 'approved', by: bob, reason: 'ok' }, 's')).toMatchObject({
      activity_id: 3, type_uid: 300403, comment: 'ok', actor: { user: { uid: 'bob', type: 'User' } },
      entity: { version: '3', data: { approvals: ['bob'], denials: [] } },
    });
  });

  it('never copy the action itself, only its hash', () => {
    expect(JSON.stringify(approvalEvent({ approval, transition: 'consumed' }, 's'))).not.toContain('{"q":1}');
  });
});

describe('caller-named kinds', () => {
  it('does not mistake Object.prototype names for known activities', async () => {
    const { decisionEvent } = await import('../../engine/audit/events.js');
    const facts = {
      identity: null, source_ip: null,
      target: { name: 'db', kind: 'postgres' as const, labels: {} },
      request: { protocol: 'postgres' as const, database: 'd', role: 'r', text: 'x', statement_kinds: ['constructor'] },
      summary: 'x', action: 'deny' as const,
      policy: { entrypoint: 'e', bundle_revision: null, decision_id: 'd', reasons: [] },
      masked: [], approval_id: null, session_id: 's', action_hash: null,
    };
    expect(decisionEvent(facts, 's')).toMatchObject({ activity_id: 99, activity_name: 'constructor' });
    const http = { ...facts, target: { ...facts.target, kind: 'http' as const }, request: { protocol: 'http' as const, method: 'toString', path: '/', host: null } };
    expect(decisionEvent(http, 's')).toMatchObject({ activity_id: 99 });
  });
});
