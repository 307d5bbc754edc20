/**
 * Bodies are read (decoded, parsed, masked, scanned for the credential:
 * body.ts) on worker threads, not on the main one. That work is linear in
 * the decoded body, but a body may decode to max_body_bytes (16 MiB, from
 * a 16 KB gzip), which is seconds of CPU and a GiB of heap: on the main
 * thread it would hold every Check and every other exchange for as long.
 * Piscina queues bodies for the threads and replaces one that dies; each
 * thread's heap is capped, so a body that needs more is refused instead of
 * taking the gateway down.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { FieldMaskRule } from '../../engine/masking/json-fields.js';
import type { HashKey } from '../../engine/masking/strategies.js';
import { workerModule } from '../../engine/worker-module.js';
import type { MaskCount } from '../../engine/recording/types.js';
import { BodyRefused, type BodyHeaders, type BodyOptions, type BodyOutcome } from './body.js';
import type { BodyReply, BodyTask } from './body-thread.js';

export interface BodyThreadsOptions {
  /** The HMAC key for "hash" mask rules, as the exchange compiles them with. */
  hashKey: HashKey | undefined;
  /** Threads reading bodies at once (default: one less than the cores, at least one: the main thread keeps one). */
  threads?: number;
  /** Each thread's old-generation heap, in MiB (default 2048). */
  maxHeapMb?: number;
}

export interface BodyRead {
  outcome: BodyOutcome;
  /** What the plan masked in this body. */
  masked: MaskCount[];
}

export class BodyThreads {
  private readonly pool: Piscina<BodyTask, BodyReply>;
  private readonly maxHeapMb: number;
  /** Bodies handed over and not yet answered (queued or being read). */
  reading = 0;

  constructor(options: BodyThreadsOptions) {
    const { url, execArgv } = workerModule(new URL('./body-thread.js', import.meta.url), 'the ext_proc body threads');
    const threads = options.threads ?? Math.max(1, availableParallelism() - 1);
    this.maxHeapMb = options.maxHeapMb ?? 2048;
    this.pool = new Piscina({
      filename: url.href,
      workerData: { hashKey: options.hashKey },
      minThreads: threads,
      maxThreads: threads,
      resourceLimits: { maxOldGenerationSizeMb: this.maxHeapMb },
      ...(execArgv ? { execArgv } : {}),
    });
  }

  /** Reads `raw` under `rules`; throws BodyRefused as processBody does. */
  async read(raw: Buffer, headers: BodyHeaders, rules: readonly FieldMaskRule[], options: BodyOptions): Promise<BodyRead> {
    let reply: BodyReply;
    this.reading++;
    try {
      // Copied, not transferred: `raw` may share its ArrayBuffer with grpc-js's.
      reply = await this.pool.run({ raw, headers, rules, options });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY') {
        throw new BodyRefused(`reading the body took more than the ${this.maxHeapMb} MiB a body thread may use`);
      }
      throw err;
    } finally {
      this.reading--;
    }
    if ('refused' in reply) throw new BodyRefused(reply.refused);
    const { replacement } = reply.outcome;
    // A Buffer comes back from the thread as a plain Uint8Array.
    const outcome = replacement === null ? reply.outcome : { ...reply.outcome, replacement: Buffer.from(replacement.buffer, replacement.byteOffset, replacement.byteLength) };
    return { outcome, masked: reply.masked };
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}
