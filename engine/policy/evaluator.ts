import { randomUUID } from 'node:crypto';
import type { EngineMetrics } from '../observability/metrics.js';
import type { CompiledPolicy } from './compiled-policy.js';
import { errorMessage } from './compiled-policy.js';
import { decisionSchema, describeInvalidOutput, failClosed, fromEnvoyResult, type Decision, type FailureKind } from './decision.js';

export interface EvaluationMetadata {
  decision_id: string;
  entrypoint: string;
  /** The revision of the bundle that decided, or null when none was loaded. */
  bundle_revision: string | null;
  /** Wall time of the evaluation, including input encoding and output validation. */
  eval_ns: number;
  /** Set when the engine denied on the policy's behalf (fail closed). */
  failure?: FailureKind;
}

export interface Evaluation {
  decision: Decision;
  metadata: EvaluationMetadata;
}

export interface EvaluatorOptions {
  /**
   * Decisions slower than this are denied. WASM runs synchronously on the
   * calling thread and cannot be interrupted, so the budget is checked when
   * the evaluation returns: a slow policy costs latency but never allows.
   */
  timeoutMs: number;
  metrics?: EngineMetrics;
}

/**
 * Evaluates decisions against the active policy. Swapping the active policy
 * is a single reference assignment, and an evaluation reads the reference
 * once, so a reload never splits an evaluation across two bundles.
 */
export class PolicyEvaluator {
  private active: CompiledPolicy | null = null;
  private readonly timeoutNs: number;

  constructor(private readonly options: EvaluatorOptions) {
    this.timeoutNs = options.timeoutMs * 1e6;
  }

  get policy(): CompiledPolicy | null {
    return this.active;
  }

  /** Makes `policy` the one that decides from now on; returns the one it replaced. */
  activate(policy: CompiledPolicy): CompiledPolicy | null {
    const previous = this.active;
    this.active = policy;
    this.options.metrics?.recordActivation(policy.revision);
    return previous;
  }

  evaluate(entrypoint: string, input: unknown): Evaluation {
    const started = process.hrtime.bigint();
    const policy = this.active;
    const outcome = policy ? decide(policy, entrypoint, input) : fail('no_bundle', 'no policy bundle is loaded');
    const evalNs = Number(process.hrtime.bigint() - started);

    let { decision, failure } = outcome;
    if (!failure && evalNs > this.timeoutNs) {
      failure = 'timeout';
      decision = failClosed(
        `policy evaluation took ${(evalNs / 1e6).toFixed(1)} ms, over the ${this.options.timeoutMs} ms budget`,
      );
    }

    this.options.metrics?.recordEvaluation(entrypoint, decision.action, evalNs / 1e9, failure);
    const metadata: EvaluationMetadata = {
      decision_id: randomUUID(),
      entrypoint,
      bundle_revision: policy ? policy.revision : null,
      eval_ns: evalNs,
    };
    if (failure) metadata.failure = failure;
    return { decision, metadata };
  }
}

interface Outcome {
  decision: Decision;
  failure?: FailureKind;
}

function decide(policy: CompiledPolicy, entrypoint: string, input: unknown): Outcome {
  if (!policy.hasEntrypoint(entrypoint)) {
    return fail('unknown_entrypoint', `entrypoint ${entrypoint} is not in bundle revision "${policy.revision}"`);
  }
  let output: unknown;
  try {
    output = policy.evaluate(entrypoint, input);
  } catch (err) {
    return fail('evaluation_error', `policy evaluation failed: ${errorMessage(err)}`);
  }
  if (output === undefined) return fail('no_decision', `${entrypoint} is undefined for this input`);

  const parsed = decisionSchema.safeParse(fromEnvoyResult(output, entrypoint));
  if (!parsed.success) {
    return fail('invalid_output', `policy returned a malformed decision: ${describeInvalidOutput(parsed.error)}`);
  }
  return { decision: parsed.data };
}

function fail(failure: FailureKind, reason: string): Outcome {
  return { decision: failClosed(reason), failure };
}
