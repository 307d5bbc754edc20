// Evaluates in a worker thread, to measure what a worker pool would cost per decision.
import { parentPort, workerData } from 'node:worker_threads';
import { loadBundle } from '../engine/bundle/bundle.js';
import { CompiledPolicy } from '../engine/policy/compiled-policy.js';
import { PolicyEvaluator } from '../engine/policy/evaluator.js';

const evaluator = new PolicyEvaluator({ timeoutMs: 1000 });
evaluator.activate(await CompiledPolicy.load(await loadBundle(workerData.bundle as string)));
parentPort!.on('message', (msg: { id: number; entrypoint: string; input: unknown }) => {
  parentPort!.postMessage({ id: msg.id, result: evaluator.evaluate(msg.entrypoint, msg.input) });
});
parentPort!.postMessage('ready');
