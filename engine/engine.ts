import type { Logger } from 'pino';
import type { BundleFiles } from './bundle/archive.js';
import type { BundleVerification, SignatureStatus } from './bundle/bundle.js';
import type { BundleError } from './bundle/errors.js';
import { FileBundleSource } from './bundle/sources/file-source.js';
import { HttpBundleSource } from './bundle/sources/http-source.js';
import type { BundleSource } from './bundle/sources/source.js';
import type { GatehouseConfig } from './config/schema.js';
import { EngineMetrics } from './observability/metrics.js';
import { BundleActivator } from './policy/activator.js';
import { PolicyEvaluator, type Evaluation } from './policy/evaluator.js';

type PolicyConfig = GatehouseConfig['policy'];

export interface PolicyStatus {
  source: string;
  revision: string | null;
  activated_at: string | null;
  signature: string;
  entrypoints: string[];
}

/**
 * The protocol-free core that every front end calls. For now it owns policy:
 * a bundle source, the activator that verifies and swaps bundles in, and the
 * evaluator.
 */
export class Engine {
  readonly evaluator: PolicyEvaluator;
  private readonly source: BundleSource;
  private readonly activator: BundleActivator;

  /**
   * `requiredEntrypoints`: what a bundle must have to be activated; by
   * default every configured entrypoint. The gateway asks only for those of
   * the target kinds it serves, so a bundle holding just an OPA-Envoy policy
   * can run an HTTP-only gateway.
   */
  constructor(
    private readonly policy: PolicyConfig,
    private readonly logger: Logger,
    readonly metrics = new EngineMetrics(),
    requiredEntrypoints: readonly string[] = Object.values(policy.entrypoints),
  ) {
    this.evaluator = new PolicyEvaluator({ timeoutMs: policy.timeout_ms, metrics });
    this.activator = new BundleActivator(this.evaluator, {
      verification: verificationOf(policy),
      requiredEntrypoints: [...requiredEntrypoints],
      logger,
      metrics,
    });
    this.source = sourceOf(policy);
  }

  /** Starts watching the bundle source; resolves once the first bundle is activated or refused. */
  async start(): Promise<void> {
    const activator = this.activator;
    await new Promise<void>((firstAttempt) => {
      this.source.start({
        async deliver(files: BundleFiles) {
          await activator.deliver(files);
          firstAttempt();
        },
        fail(error: BundleError) {
          activator.fail(error);
          firstAttempt();
        },
      });
    });
    this.logger.info({ source: this.source.location, revision: this.evaluator.policy?.revision ?? null }, 'policy engine started');
  }

  async stop(): Promise<void> {
    await this.source.stop();
  }

  evaluate(entrypoint: string, input: unknown): Evaluation {
    return this.evaluator.evaluate(entrypoint, input);
  }

  revision(): string | null {
    return this.evaluator.policy?.revision ?? null;
  }

  status(): PolicyStatus {
    const active = this.evaluator.policy;
    return {
      source: this.source.location,
      revision: active?.revision ?? null,
      activated_at: active?.activatedAt.toISOString() ?? null,
      signature: active ? describeSignature(active.bundle.signature) : 'none',
      entrypoints: active ? [...active.bundle.entrypoints.keys()] : [],
    };
  }
}

export function verificationOf(policy: PolicyConfig): BundleVerification | undefined {
  const v = policy.bundle.verification;
  if (!v) return undefined;
  return {
    required: v.required,
    scope: v.scope,
    keys: v.keys.map((k) => ({ id: k.id, algorithm: k.algorithm, key: k.key.reveal() })),
  };
}

function sourceOf(policy: PolicyConfig): BundleSource {
  const { source, polling, token, poll_interval_ms } = policy.bundle;
  if (source.kind === 'file') return new FileBundleSource(source.path, { intervalMs: poll_interval_ms });
  return new HttpBundleSource(source.url, {
    minDelayMs: polling.min_delay_seconds * 1000,
    maxDelayMs: polling.max_delay_seconds * 1000,
    token,
  });
}

export function describeSignature(signature: SignatureStatus): string {
  switch (signature.state) {
    case 'verified':
      return `verified (key ${signature.keyId})`;
    case 'unsigned':
      return 'unsigned';
    case 'not_checked':
      return 'signed, not verified (no keys configured)';
  }
}
