/**
 * The golden decisions in policies/testdata, evaluated through the compiled
 * WASM bundle: `opa test` checks the Rego with OPA's Go evaluator, this
 * checks what the gateway actually runs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PolicyEvaluator } from '../../engine/policy/evaluator.js';
import { projectEvaluator } from '../helpers/gateway-bundle.js';
import { makeTempDir, removeDir, repoRoot } from '../helpers/opa.js';

interface GoldenCase {
  name: string;
  input: Record<string, unknown>;
  expect: { action: string; reasons: string[]; mask?: unknown[]; approval?: unknown; [key: string]: unknown };
}
interface GoldenSuite {
  entrypoint: string;
  cases: GoldenCase[];
}

const testdata = join(repoRoot, 'policies/testdata');
const suites = readdirSync(testdata)
  .filter((f) => f.endsWith('.yaml'))
  .map((file) => ({ file, ...(parse(readFileSync(join(testdata, file), 'utf8')) as GoldenSuite) }));

const sorted = <T>(items: readonly T[]): T[] => [...items].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

let evaluator: PolicyEvaluator;
let dir: string;
beforeAll(async () => {
  dir = makeTempDir('gatehouse-golden-');
  evaluator = await projectEvaluator(join(dir, 'bundle.tar.gz'));
});
afterAll(() => removeDir(dir));

it('has golden cases for every protocol', () => {
  expect(suites.map((s) => s.entrypoint).sort()).toEqual([
    'gatehouse/http/decision',
    'gatehouse/postgres/decision',
    'gatehouse/ssh/decision',
  ]);
  for (const suite of suites) expect(suite.cases.length, suite.file).toBeGreaterThanOrEqual(8);
});

for (const suite of suites) {
  describe(`${suite.file} (${suite.entrypoint})`, () => {
    for (const c of suite.cases) {
      it(c.name, () => {
        const { decision, metadata } = evaluator.evaluate(suite.entrypoint, c.input);
        expect(metadata.failure, decision.reasons.join('; ')).toBeUndefined();
        const { reasons, mask = [], approval, ...rest } = c.expect;
        expect(sorted(decision.reasons)).toEqual(sorted(reasons));
        expect(sorted(decision.mask)).toEqual(sorted(mask));
        expect(decision.approval).toEqual(approval);
        // action, and any other key a case pins (e.g. http_status).
        for (const [key, value] of Object.entries(rest)) expect(decision[key as keyof typeof decision], key).toEqual(value);
      });
    }
  });
}
