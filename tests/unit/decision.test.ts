import { describe, expect, it } from 'vitest';
import { decisionSchema, describeInvalidOutput } from '../../engine/policy/decision.js';

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
