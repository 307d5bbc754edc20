import type { Logger } from 'pino';
import type { BundleFiles } from '../bundle/archive.js';
import { parseBundle, type BundleVerification } from '../bundle/bundle.js';
import { BundleError } from '../bundle/errors.js';
import type { BundleReceiver } from '../bundle/sources/source.js';
import type { EngineMetrics } from '../observability/metrics.js';
import { CompiledPolicy } from './compiled-policy.js';
import type { PolicyEvaluator } from './evaluator.js';

export type ActivationResult =
  | { status: 'activated'; revision: string }
  | { status: 'unchanged'; revision: string }
  | { status: 'rejected'; error: BundleError };

export interface ActivatorOptions {
  verification?: BundleVerification;
  /** Entrypoints the gateway will call; a bundle without them is refused. */
  requiredEntrypoints: readonly string[];
  logger: Logger;
  metrics?: EngineMetrics;
}

/**
 * Turns delivered bundle files into the active policy: verify, parse,
 * instantiate, then swap. Any failure leaves the current policy serving and
 * is logged with its reason and counted. Deliveries are handled in order, so
 * an older bundle can never overtake a newer one.
 */
export class BundleActivator implements BundleReceiver {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly evaluator: PolicyEvaluator,
    private readonly options: ActivatorOptions,
  ) {}

  deliver(files: BundleFiles): Promise<ActivationResult> {
    const result = this.queue.then(() => this.activate(files));
    this.queue = result;
    return result;
  }

  fail(error: BundleError): void {
    this.reject(error);
  }

  private async activate(files: BundleFiles): Promise<ActivationResult> {
    try {
      const bundle = await parseBundle(files, this.options.verification);
      const current = this.evaluator.policy;
      if (current && current.bundle.digest === bundle.digest) {
        return { status: 'unchanged', revision: bundle.revision };
      }
      const policy = await CompiledPolicy.load(bundle, this.options.requiredEntrypoints);
      warmUp(policy, this.options.requiredEntrypoints);
      const previous = this.evaluator.activate(policy);
      this.options.logger.info(
        {
          revision: bundle.revision,
          previous_revision: previous?.revision ?? null,
          signature: bundle.signature,
          entrypoints: [...bundle.entrypoints.keys()],
        },
        'policy bundle activated',
      );
      return { status: 'activated', revision: bundle.revision };
    } catch (err) {
      const error = err instanceof BundleError ? err : new BundleError('corrupt', (err as Error).message);
      this.reject(error);
      return { status: 'rejected', error };
    }
  }

  private reject(error: BundleError): void {
    this.options.metrics?.recordRejection(error.kind);
    this.options.logger.warn(
      { reason: error.kind, active_revision: this.evaluator.policy?.revision ?? null },
      `policy bundle rejected: ${error.message}`,
    );
  }
}

/**
 * A fresh WASM instance's first evaluations run unoptimised code and can
 * take longer than the evaluation budget (policy.timeout_ms), which would
 * deny the first real requests after a start or a reload. A few throwaway
 * evaluations before the swap take that cost instead.
 */
function warmUp(policy: CompiledPolicy, entrypoints: readonly string[]): void {
  for (let round = 0; round < 20; round++) {
    for (const entrypoint of entrypoints) {
      try {
        policy.evaluate(entrypoint, {});
      } catch {
        // Only the time matters here; a policy that fails on {} is judged on real input.
      }
    }
  }
}
