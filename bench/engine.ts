// make bench-engine: how fast the engine decides, per entrypoint, on the
// golden inputs in policies/testdata. Peers measured in the same run:
//   - a worker-thread round trip (what a worker pool would add per decision);
//   - OPA's own Go evaluator (`opa bench`) on the same bundle and input.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { parse } from 'yaml';
import { loadBundle } from '../engine/bundle/bundle.js';
import { EngineMetrics } from '../engine/observability/metrics.js';
import { CompiledPolicy } from '../engine/policy/compiled-policy.js';
import { PolicyEvaluator } from '../engine/policy/evaluator.js';

const BUNDLE = process.env.BUNDLE ?? 'build/bundle.tar.gz';
const OPA = process.env.OPA ?? '.tools/bin/opa';
const ITERATIONS = Number(process.env.ITERATIONS ?? 100_000);
const TARGET_P50_US = 25;
const POLICY_DIRS = ['policies/lib', 'policies/http', 'policies/postgres', 'policies/ssh', 'policies/data'];

interface Case { name: string; input: Record<string, unknown> }
const suites = readdirSync('policies/testdata')
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => parse(readFileSync(join('policies/testdata', f), 'utf8')) as { entrypoint: string; cases: Case[] });

const evaluator = new PolicyEvaluator({ timeoutMs: 1000, metrics: new EngineMetrics() });
evaluator.activate(await CompiledPolicy.load(await loadBundle(BUNDLE)));

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function measureInThread(entrypoint: string, inputs: unknown[]): { p50: number; p99: number; perSecond: number } {
  for (let i = 0; i < 20_000; i++) evaluator.evaluate(entrypoint, inputs[i % inputs.length]);
  const samples = new Float64Array(ITERATIONS);
  const started = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) {
    const t0 = process.hrtime.bigint();
    evaluator.evaluate(entrypoint, inputs[i % inputs.length]);
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  samples.sort();
  return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99), perSecond: ITERATIONS / seconds };
}

async function measureWorkerRoundTrip(entrypoint: string, inputs: unknown[]): Promise<number> {
  // Node 20 does not apply --import loaders to a worker's .ts entry, so register tsx first.
  const entry = new URL('./eval-worker.ts', import.meta.url).href;
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
  const worker = new Worker(bootstrap, { eval: true, workerData: { bundle: BUNDLE } });
  await new Promise((ready) => worker.once('message', ready));
  const rounds = 20_000;
  const samples = new Float64Array(rounds);
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise((done) => {
      worker.once('message', done);
      worker.postMessage({ id: i, entrypoint, input: inputs[i % inputs.length] });
    });
    samples[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  await worker.terminate();
  samples.sort();
  return percentile(samples.subarray(rounds / 4), 0.5); // after warm-up
}

function measureOpaGo(entrypoint: string, input: unknown): number {
  const dir = mkdtempSync(join(tmpdir(), 'gh-bench-'));
  writeFileSync(join(dir, 'input.json'), JSON.stringify(input));
  const out = execFileSync(OPA, [
    // The same Rego the bundle was built from; opa's Go binary has no WASM engine.
    'bench', ...POLICY_DIRS.flatMap((d) => ['-d', d]), '--ignore', '*_test.rego', '-i', join(dir, 'input.json'), '--format', 'json', '--benchmem=false', '--metrics=false',
    `data.${entrypoint.replaceAll('/', '.')}`,
  ], { encoding: 'utf8' });
  const result = JSON.parse(out) as { N: number; T: number };
  return result.T / result.N / 1000;
}

console.log(`engine benchmark: ${ITERATIONS} decisions per entrypoint, bundle ${BUNDLE}, node ${process.version}\n`);
console.log('entrypoint                     p50 µs   p99 µs   decisions/s   worker p50 µs   opa(Go) µs   opa/gatehouse');
let worst = 0;
for (const suite of suites) {
  const inputs = suite.cases.map((c) => c.input);
  const inThread = measureInThread(suite.entrypoint, inputs);
  const worker = await measureWorkerRoundTrip(suite.entrypoint, inputs);
  const opaGo = measureOpaGo(suite.entrypoint, inputs[0]);
  worst = Math.max(worst, inThread.p50);
  console.log(
    `${suite.entrypoint.padEnd(30)} ${inThread.p50.toFixed(1).padStart(6)} ${inThread.p99.toFixed(1).padStart(8)} ${Math.round(inThread.perSecond).toString().padStart(13)} ${worker.toFixed(1).padStart(15)} ${opaGo.toFixed(1).padStart(12)} ${(opaGo / inThread.p50).toFixed(2).padStart(14)}x`,
  );
}
console.log(`\ntarget: p50 ≤ ${TARGET_P50_US} µs — ${worst <= TARGET_P50_US ? 'met' : 'NOT met'} (worst p50 ${worst.toFixed(1)} µs)`);
console.log('worker p50 is one decision sent to a worker thread and back; opa(Go) is `opa bench` (topdown) on the first input.');
