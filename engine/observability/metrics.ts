import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Action, FailureKind } from '../policy/decision.js';
import type { BundleRejection } from '../bundle/errors.js';
import type { TokenRejection } from '../identity/identity.js';

/**
 * The engine's Prometheus metrics, on a registry of their own so that tests
 * and several engines in one process never share counters.
 */
export class EngineMetrics {
  readonly registry = new Registry();

  private readonly evaluationSeconds = new Histogram({
    name: 'gatehouse_policy_evaluation_seconds',
    help: 'Time to evaluate one policy decision in WASM, including input encoding and output validation.',
    labelNames: ['entrypoint'],
    // Decisions take microseconds; the top buckets exist to catch pathological policies.
    buckets: [5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 1e-3, 5e-3, 25e-3, 100e-3],
    registers: [this.registry],
  });

  private readonly decisions = new Counter({
    name: 'gatehouse_policy_decisions_total',
    help: 'Policy decisions by entrypoint and action.',
    labelNames: ['entrypoint', 'action'],
    registers: [this.registry],
  });

  private readonly failures = new Counter({
    name: 'gatehouse_policy_failures_total',
    help: 'Evaluations that failed closed (denied without the policy saying so), by reason.',
    labelNames: ['entrypoint', 'reason'],
    registers: [this.registry],
  });

  private readonly reloads = new Counter({
    name: 'gatehouse_bundle_reloads_total',
    help: 'Policy bundles activated.',
    registers: [this.registry],
  });

  private readonly rejections = new Counter({
    name: 'gatehouse_bundle_rejections_total',
    help: 'Policy bundles refused; the active bundle kept serving.',
    labelNames: ['reason'],
    registers: [this.registry],
  });

  private readonly bundleInfo = new Gauge({
    name: 'gatehouse_bundle_info',
    help: 'The active bundle (value 1), labelled with its revision.',
    labelNames: ['revision'],
    registers: [this.registry],
  });

  private readonly lastActivation = new Gauge({
    name: 'gatehouse_bundle_last_activation_timestamp_seconds',
    help: 'When the active bundle was activated.',
    registers: [this.registry],
  });

  private readonly tokenRejections = new Counter({
    name: 'gatehouse_token_rejections_total',
    help: 'Bearer tokens refused, by reason.',
    labelNames: ['reason'],
    registers: [this.registry],
  });

  // Resolving a labelled child hashes its label values; the hot path caches them.
  private readonly histogramByEntrypoint = new Map<string, Histogram.Internal<'entrypoint'>>();
  private readonly decisionCounters = new Map<string, Counter.Internal>();

  withProcessMetrics(): this {
    collectDefaultMetrics({ register: this.registry, prefix: 'gatehouse_' });
    return this;
  }

  recordEvaluation(entrypoint: string, action: Action, seconds: number, failure?: FailureKind): void {
    let histogram = this.histogramByEntrypoint.get(entrypoint);
    if (!histogram) {
      histogram = this.evaluationSeconds.labels(entrypoint);
      this.histogramByEntrypoint.set(entrypoint, histogram);
    }
    histogram.observe(seconds);

    const key = `${entrypoint}\0${action}`;
    let counter = this.decisionCounters.get(key);
    if (!counter) {
      counter = this.decisions.labels(entrypoint, action);
      this.decisionCounters.set(key, counter);
    }
    counter.inc();

    if (failure) this.failures.labels(entrypoint, failure).inc();
  }

  recordActivation(revision: string): void {
    this.reloads.inc();
    this.bundleInfo.reset();
    this.bundleInfo.labels(revision).set(1);
    this.lastActivation.set(Date.now() / 1000);
  }

  recordRejection(reason: BundleRejection): void {
    this.rejections.labels(reason).inc();
  }

  recordTokenRejection(reason: TokenRejection): void {
    this.tokenRejections.labels(reason).inc();
  }
}
