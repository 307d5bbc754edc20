import { readBundleArchive, DEFAULT_MAX_BUNDLE_BYTES } from '../archive.js';
import { BundleError } from '../errors.js';
import type { Secret } from '../../config/secret.js';
import type { BundleReceiver, BundleSource } from './source.js';

export interface HttpSourceOptions {
  /** Polling waits a random delay between these two after each successful poll. */
  minDelayMs: number;
  maxDelayMs: number;
  /** Sent as `Authorization: Bearer …`, like OPA's bearer credentials. */
  token?: Secret;
  requestTimeoutMs?: number;
  maxBytes?: number;
  fetch?: typeof fetch;
  random?: () => number;
}

/**
 * Polls a bundle server with OPA's bundle protocol: a GET with
 * `If-None-Match` carrying the last ETag, 304 when nothing changed, 200 with
 * the gzipped tarball otherwise. Any OPA bundle server, S3 bucket or nginx
 * serving a file works. Polls are jittered so a fleet does not poll in step,
 * and failures back off exponentially up to the maximum delay.
 */
export class HttpBundleSource implements BundleSource {
  readonly location: string;
  private etag: string | undefined;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private inFlight: AbortController | undefined;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly url: string,
    private readonly options: HttpSourceOptions,
  ) {
    const shown = new URL(url);
    shown.username = '';
    shown.password = '';
    this.location = shown.toString();
  }

  start(receiver: BundleReceiver): void {
    this.stopped = false;
    const tick = (): void => {
      this.running = this.poll(receiver).then((delay) => {
        if (!this.stopped) this.timer = setTimeout(tick, delay);
      });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.inFlight?.abort();
    await this.running;
  }

  /** Polls once and returns how long to wait before the next poll. */
  private async poll(receiver: BundleReceiver): Promise<number> {
    try {
      const body = await this.fetchIfChanged();
      this.failures = 0;
      if (body) await receiver.deliver(await readBundleArchive(body, this.options.maxBytes));
      return this.nextDelay();
    } catch (err) {
      if (this.stopped) return 0;
      this.failures += 1;
      receiver.fail(err instanceof BundleError ? err : new BundleError('unreadable', `${this.location}: ${(err as Error).message}`));
      return this.backoffDelay();
    }
  }

  private async fetchIfChanged(): Promise<Buffer | undefined> {
    const headers: Record<string, string> = { Accept: 'application/gzip, application/octet-stream' };
    if (this.etag) headers['If-None-Match'] = this.etag;
    if (this.options.token) headers.Authorization = `Bearer ${this.options.token.reveal()}`;

    this.inFlight = new AbortController();
    const timeout = setTimeout(() => this.inFlight?.abort(), this.options.requestTimeoutMs ?? 30_000);
    try {
      const response = await (this.options.fetch ?? fetch)(this.url, { headers, signal: this.inFlight.signal });
      if (response.status === 304) return undefined;
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new BundleError('unreadable', `${this.location} answered ${response.status} ${response.statusText}`);
      }
      const body = await readLimited(response, this.options.maxBytes ?? DEFAULT_MAX_BUNDLE_BYTES, this.location);
      this.etag = response.headers.get('etag') ?? undefined;
      return body;
    } finally {
      clearTimeout(timeout);
      this.inFlight = undefined;
    }
  }

  private nextDelay(): number {
    const { minDelayMs, maxDelayMs } = this.options;
    return minDelayMs + (this.options.random ?? Math.random)() * (maxDelayMs - minDelayMs);
  }

  private backoffDelay(): number {
    const { minDelayMs, maxDelayMs } = this.options;
    const ceiling = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(this.failures, 16));
    // Full jitter below the ceiling, but never hammer a failing server.
    return Math.max(minDelayMs / 2, (this.options.random ?? Math.random)() * ceiling);
  }
}

async function readLimited(response: Response, maxBytes: number, location: string): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) throw new BundleError('unreadable', `${location}: bundle of ${declared} bytes exceeds the ${maxBytes}-byte limit`);
  const chunks: Buffer[] = [];
  let size = 0;
  if (!response.body) return Buffer.alloc(0);
  for await (const chunk of response.body) {
    size += chunk.byteLength;
    if (size > maxBytes) throw new BundleError('unreadable', `${location}: bundle exceeds the ${maxBytes}-byte limit`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}
