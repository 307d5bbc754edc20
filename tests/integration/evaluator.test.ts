import { beforeAll, describe, expect, it } from 'vitest';
import { parseBundle } from '../../engine/bundle/bundle.js';
import { readBundleArchive } from '../../engine/bundle/archive.js';
import { EngineMetrics } from '../../engine/observability/metrics.js';
import { CompiledPolicy } from '../../engine/policy/compiled-policy.js';
import { PolicyEvaluator } from '../../engine/policy/evaluator.js';
import { buildBundle, repoRoot } from '../helpers/opa.js';

const ENTRYPOINTS = ['allow', 'malformed', 'misspelt', 'sometimes', 'conflict', 'echo'].map((e) => `fixtures/${e}`);

let policy: CompiledPolicy;
beforeAll(async () => {
  const tarball = buildBundle(`${repoRoot}/tests/fixtures/policies/failing`, [
    '-t', 'wasm', '-r', 'fixture-1', ...ENTRYPOINTS.flatMap((e) => ['-e', e]),
  ]);
  policy = await CompiledPolicy.load(await parseBundle(await readBundleArchive(tarball)));
});

function evaluator(timeoutMs = 1000, metrics?: EngineMetrics): PolicyEvaluator {
  const e = new PolicyEvaluator({ timeoutMs, metrics });
  e.activate(policy);
  return e;
}

describe('PolicyEvaluator', () => {
  it('returns the decision with its metadata', () => {
    const { decision, metadata } = evaluator().evaluate('fixtures/echo', { who: 'agent-1' });
    expect(decision).toEqual({ action: 'allow', reasons: ['agent-1'], mask: [], http_status: 200 });
    expect(metadata.entrypoint).toBe('fixtures/echo');
    expect(metadata.bundle_revision).toBe('fixture-1');
    expect(metadata.decision_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(metadata.eval_ns).toBeGreaterThan(0);
    expect(metadata.failure).toBeUndefined();
  });

  it('gives every decision its own id', () => {
    const e = evaluator();
    const ids = new Set(Array.from({ length: 100 }, () => e.evaluate('fixtures/allow', {}).metadata.decision_id));
    expect(ids.size).toBe(100);
  });

  const failures: [string, string, unknown, RegExp][] = [
    ['malformed output', 'fixtures/malformed', {}, /^policy returned a malformed decision: action: /],
    ['a misspelt key', 'fixtures/misspelt', {}, /malformed decision: .*Unrecognized key: "reason"/],
    ['an undefined result', 'fixtures/sometimes', { defined: false }, /^fixtures\/sometimes is undefined for this input$/],
    ['an evaluation error', 'fixtures/conflict', { values: [1, 2] }, /^policy evaluation failed: /],
    ['an unknown entrypoint', 'fixtures/nope', {}, /^entrypoint fixtures\/nope is not in bundle revision "fixture-1"$/],
  ];
  for (const [what, entrypoint, input, reason] of failures) {
    it(`denies on ${what}, saying why`, () => {
      const { decision, metadata } = evaluator().evaluate(entrypoint, input);
      expect(decision.action).toBe('deny');
      expect(decision.mask).toEqual([]);
      expect(decision.reasons).toHaveLength(1);
      expect(decision.reasons[0]).toMatch(reason);
      expect(metadata.failure).toBeDefined();
    });
  }

  it('keeps working after an evaluation error', () => {
    const e = evaluator();
    expect(e.evaluate('fixtures/conflict', { values: [1, 2] }).decision.action).toBe('deny');
    expect(e.evaluate('fixtures/sometimes', { defined: true }).decision.action).toBe('allow');
  });

  it('denies a decision that took longer than the budget', () => {
    // A budget no evaluation can meet: the allow must still come back as a deny.
    const { decision, metadata } = evaluator(1e-9).evaluate('fixtures/allow', {});
    expect(decision.action).toBe('deny');
    expect(metadata.failure).toBe('timeout');
    expect(decision.reasons[0]).toMatch(/^policy evaluation took [\d.]+ ms, over the 1e-9 ms budget$/);
  });

  it('denies when no bundle is loaded', () => {
    const { decision, metadata } = new PolicyEvaluator({ timeoutMs: 50 }).evaluate('fixtures/allow', {});
    expect(decision).toEqual({ action: 'deny', reasons: ['no policy bundle is loaded'], mask: [] });
    expect(metadata).toMatchObject({ failure: 'no_bundle', bundle_revision: null });
  });

  it('counts decisions and failures in its metrics', async () => {
    const metrics = new EngineMetrics();
    const e = evaluator(1000, metrics);
    e.evaluate('fixtures/allow', {});
    e.evaluate('fixtures/malformed', {});
    const text = await metrics.registry.metrics();
    expect(text).toContain('gatehouse_policy_decisions_total{entrypoint="fixtures/allow",action="allow"} 1');
    expect(text).toContain('gatehouse_policy_failures_total{entrypoint="fixtures/malformed",reason="invalid_output"} 1');
    expect(text).toContain('gatehouse_bundle_info{revision="fixture-1"} 1');
    expect(text).toMatch(/gatehouse_policy_evaluation_seconds_count\{entrypoint="fixtures\/allow"\} 1/);
  });
});
