import { loadPolicy, type LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { setFlagsFromString } from 'node:v8';
import type { Bundle } from '../bundle/bundle.js';
import { BundleError } from '../bundle/errors.js';

// V8 compiles a WASM function on its first call, so the first decisions after
// a reload would take milliseconds, close to the evaluation budget, and a
// rarely taken path (a deny reason, an approval) would pay it later, on a
// live request. Compiling the whole module when the bundle loads, before it
// is swapped in, costs tens of milliseconds once, off the request path.
setFlagsFromString('--no-wasm-lazy-compilation');

/** 64 KiB WASM pages. A policy that needs more than 64 MiB for one decision is broken. */
const INITIAL_PAGES = 16;
const MAXIMUM_PAGES = 1024;

/**
 * One bundle's WASM module, instantiated with its data, ready to evaluate.
 * Instances are never mutated after load: a reload builds a new one and the
 * evaluator swaps the reference, so an evaluation always sees one bundle.
 */
export class CompiledPolicy {
  private constructor(
    readonly bundle: Bundle,
    private readonly instance: LoadedPolicy,
    readonly activatedAt: Date,
  ) {}

  static async load(bundle: Bundle, requiredEntrypoints: readonly string[] = []): Promise<CompiledPolicy> {
    const missing = requiredEntrypoints.filter((e) => !bundle.entrypoints.has(e));
    if (missing.length > 0) {
      throw new BundleError(
        'invalid_policy',
        `bundle lacks entrypoint(s) ${missing.join(', ')}; it has ${[...bundle.entrypoints.keys()].join(', ') || 'none'}`,
      );
    }
    let instance: LoadedPolicy;
    try {
      instance = await loadPolicy(bundle.wasm, { initial: INITIAL_PAGES, maximum: MAXIMUM_PAGES });
      instance.setData(bundle.data);
    } catch (err) {
      throw new BundleError('invalid_policy', `policy.wasm does not load: ${errorMessage(err)}`);
    }
    return new CompiledPolicy(bundle, instance, new Date());
  }

  get revision(): string {
    return this.bundle.revision;
  }

  hasEntrypoint(entrypoint: string): boolean {
    return this.bundle.entrypoints.has(entrypoint);
  }

  /**
   * Runs one entrypoint and returns its value, or `undefined` when the rule is
   * undefined for this input. Throws on evaluation errors.
   */
  evaluate(entrypoint: string, input: unknown): unknown {
    const resultSet = this.instance.evaluate(input, entrypoint) as { result: unknown }[] | undefined;
    return resultSet?.[0]?.result;
  }
}

/** opa-wasm throws strings and plain objects as well as Errors. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'string') return err;
  if (typeof err === 'object' && err !== null && 'message' in err) return String((err as { message: unknown }).message);
  return String(err);
}
