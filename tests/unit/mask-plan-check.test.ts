import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MaskPlanCheck } from '../../ext-authz/check/mask-plan.js';
import type { MaskRule } from '../../engine/policy/decision.js';

const good: MaskRule[] = [
  { field: 'customers[*].email', strategy: 'partial' },
  { field: 'customers[*].notes', detectors: ['email', 'payment_card'], strategy: 'redact' },
];

describe('MaskPlanCheck (can Process apply this plan?)', () => {
  it('passes a plan Process can apply, and none at all', () => {
    const check = new MaskPlanCheck(randomBytes(32));
    expect(check.problem(good)).toBeNull();
    expect(check.problem([])).toBeNull();
  });

  it('refuses, every time it is asked, a plan that cannot be applied', () => {
    const check = new MaskPlanCheck(undefined);
    const cases: Array<[MaskRule[], RegExp]> = [
      [[{ field: 'a...b', strategy: 'redact' }], /the mask plan cannot be applied/],
      [[{ field: 'notes', detectors: ['horoscope'], strategy: 'redact' }], /horoscope/],
      [[{ field: 'phone', strategy: 'hash' }], /hash key/],
      [[{ column: 'public.customers.ssn', strategy: 'redact' }], /cannot apply to an HTTP response/],
    ];
    for (const [rules, why] of cases) {
      // Asked twice: the second answer comes from the memo and must still refuse.
      expect(check.problem(rules)).toMatch(why);
      expect(check.problem(rules)).toMatch(why);
    }
  });

  it('keeps at most maxPlans answers, and answers the same after forgetting one', () => {
    const check = new MaskPlanCheck(undefined, 2);
    const bad: MaskRule[] = [{ field: 'phone', strategy: 'hash' }];
    expect(check.problem(bad)).toMatch(/hash key/);
    check.problem(good);
    check.problem([{ field: 'email', strategy: 'partial' }]);
    expect(check.problem(bad)).toMatch(/hash key/);
  });
});
