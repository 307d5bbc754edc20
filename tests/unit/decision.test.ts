import { describe, expect, it } from 'vitest';
import { decisionSchema, describeInvalidOutput, fromEnvoyResult } from '../../engine/policy/decision.js';

function problemsOf(output: unknown): string {
  const parsed = decisionSchema.safeParse(output);
  expect(parsed.success).toBe(false);
  return parsed.success ? '' : describeInvalidOutput(parsed.error);
}

describe('decision schema', () => {
  it('accepts the output contract and fills defaults', () => {
    expect(decisionSchema.parse({ action: 'allow' })).toEqual({ action: 'allow', reasons: [], mask: [] });
    const approve = decisionSchema.parse({
      action: 'approve',
      reasons: ['prod write'],
      mask: [{ column: 'public.customers.ssn', strategy: 'redact' }, { field: 'notes', detectors: ['email'], strategy: 'hash' }],
      approval: { groups: ['dba'] },
    });
    // No mode: the target's config chooses, then hold (engine/authorize).
    expect(approve.approval).toEqual({ groups: ['dba'], min: 1, ttl_seconds: 900 });
    expect(decisionSchema.parse({ action: 'approve', approval: { groups: ['dba'], mode: 'ticket' } }).approval?.mode).toBe('ticket');
  });

  it('accepts the OPA-Envoy fields an HTTP decision may carry', () => {
    const d = decisionSchema.parse({ action: 'deny', http_status: 403, body: 'no', headers: { 'x-a': 'b' }, request_headers_to_remove: ['authorization'] });
    expect(d.http_status).toBe(403);
  });

  it('rejects what a policy author could get wrong, saying where', () => {
    expect(problemsOf({ action: 'permit' })).toMatch(/^action: /);
    expect(problemsOf({ action: 'allow', reason: ['typo'] })).toMatch(/Unrecognized key: "reason"/);
    expect(problemsOf({ action: 'approve' })).toBe('approval: an "approve" decision must say who approves ("approval")');
    expect(problemsOf({ action: 'allow', mask: [{ strategy: 'redact' }] })).toMatch(/^mask\.0: a mask rule names exactly one of/);
    expect(problemsOf({ action: 'allow', mask: [{ column: 'a.b.c', strategy: 'scramble' }] })).toMatch(/^mask\.0\.strategy/);
    expect(problemsOf({ action: 'approve', approval: { groups: [] } })).toMatch(/^approval\.groups/);
    expect(problemsOf(true)).toMatch(/^\(decision\): /);
  });
});

describe('OPA-Envoy result forms', () => {
  const parse = (output: unknown) => decisionSchema.safeParse(fromEnvoyResult(output, 'envoy/authz/allow'));

  it('turns a boolean into allow or deny, saying which rule said no', () => {
    expect(parse(true).data).toEqual({ action: 'allow', reasons: [], mask: [] });
    expect(parse(false).data).toEqual({ action: 'deny', reasons: ['envoy/authz/allow is false'], mask: [] });
  });

  it('turns an object with allowed into a decision that keeps the plugin fields', () => {
    const d = parse({ allowed: false, http_status: 401, body: 'who?', headers: [{ 'x-a': '1' }, { 'x-a': ['2', '3'], 'x-b': '4' }] }).data;
    expect(d).toMatchObject({ action: 'deny', http_status: 401, body: 'who?', headers: { 'x-a': ['1', '2', '3'], 'x-b': ['4'] } });
    expect(d?.reasons).toEqual(['envoy/authz/allow returned allowed: false']);
    expect(parse({ allowed: true, response_headers_to_add: { 'x-p': 'y' } }).data).toMatchObject({ action: 'allow', response_headers_to_add: { 'x-p': 'y' } });
  });

  it('leaves Gatehouse decisions and broken results to the schema, which refuses the latter', () => {
    expect(fromEnvoyResult({ action: 'allow', allowed: true }, 'e')).toEqual({ action: 'allow', allowed: true });
    expect(parse({ action: 'allow', allowed: true }).success).toBe(false);
    expect(parse({ allowed: 'yes' }).success).toBe(false);
    expect(parse({ allowed: true, http_status: 'teapot' }).success).toBe(false);
    expect(parse(42).success).toBe(false);
  });
});
