/**
 * A body thread (body-threads.ts): reads one body through its mask plan
 * (body.ts) and answers what to send, what to record and what was masked.
 * A refusal comes back as its reason, since an Error's class does not
 * survive the trip between threads.
 */
import { workerData } from 'node:worker_threads';
import type { MaskCount } from '../../engine/audit/events.js';
import { compileFieldMasks, type FieldMaskRule, type FieldMasks } from '../../engine/masking/json-fields.js';
import type { HashKey } from '../../engine/masking/strategies.js';
import { BodyRefused, processBody, type BodyHeaders, type BodyOptions, type BodyOutcome } from './body.js';

export interface BodyTask {
  raw: Uint8Array;
  headers: BodyHeaders;
  /** The decision's mask rules, valid: the exchange compiled them before it asked. */
  rules: readonly FieldMaskRule[];
  options: BodyOptions;
}

export type BodyReply = { outcome: BodyOutcome; masked: MaskCount[] } | { refused: string };

const { hashKey } = workerData as { hashKey: HashKey | undefined };

/** Plans by their rules: an exchange's rules come from few policies, and compiling them again per body is waste. */
const plans = new Map<string, FieldMasks>();
const MAX_PLANS = 256;

function planFor(rules: readonly FieldMaskRule[]): FieldMasks {
  const key = JSON.stringify(rules);
  let plan = plans.get(key);
  if (!plan) {
    if (plans.size >= MAX_PLANS) plans.delete(plans.keys().next().value!);
    plan = compileFieldMasks(rules, { hashKey });
    plans.set(key, plan);
  }
  plan.reset();
  return plan;
}

export default async function readBody(task: BodyTask): Promise<BodyReply> {
  const plan = task.rules.length === 0 ? null : planFor(task.rules);
  const raw = Buffer.from(task.raw.buffer, task.raw.byteOffset, task.raw.byteLength);
  try {
    const outcome = await processBody(raw, task.headers, plan, task.options);
    return { outcome, masked: plan?.counts() ?? [] };
  } catch (err) {
    if (err instanceof BodyRefused) return { refused: err.message };
    throw err;
  }
}
