import type { BundleFiles } from '../archive.js';
import type { BundleError } from '../errors.js';

/**
 * Where bundles come from. A source delivers the current bundle as soon as it
 * starts and again whenever it changes; what to do with it (verify, load,
 * activate or reject) is the receiver's business.
 */
export interface BundleSource {
  /** Where the bundles come from, for logs and /health. Never contains credentials. */
  readonly location: string;
  start(receiver: BundleReceiver): void;
  stop(): Promise<void>;
}

export interface BundleReceiver {
  /** Called one at a time: the source waits for the promise before delivering again. */
  deliver(files: BundleFiles): Promise<unknown>;
  /** The source could not produce a bundle; it keeps trying. */
  fail(error: BundleError): void;
}
