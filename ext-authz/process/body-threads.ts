/**
 * Bodies are read (decoded, parsed, masked, scanned for the credential:
 * body.ts) on worker threads, not on the main one. That work is linear in
 * the decoded body, but a body may decode to max_body_bytes (16 MiB, from
 * a 16 KB gzip), which is seconds of CPU and a GiB of heap: on the main
 * thread it would hold every Check and every other exchange for as long.
 * Each thread's heap is capped, so a body that needs more is refused
 * instead of taking the gateway down; Piscina replaces a thread that dies.
 *
 * Bodies wait for a thread here, first come first served, and only so many
 * (maxQueue): past that a body is refused at once (BodyRefused: the
 * exchange answers 502) rather than queued behind reads that may take
 * seconds each, to be cut off at Envoy's message_timeout anyway. A read
 * whose exchange is gone (its signal aborted: Envoy reset the stream) is
 * dropped from the queue, or, when a thread is reading it, the thread is
 * stopped (Piscina terminates it and starts another), so nothing goes on
 * reading bodies no one waits for (red-team round 22: one thread, a few
 * slow bodies, every other masked response past message_timeout for ~50 s).
 *
 * The queue is ours, not Piscina's: Piscina 5's maxQueue does not count a
 * task that carries an AbortSignal (it waits in a second queue the limit
 * does not see), and such tasks are not handed out in order (they are put
 * back at the tail, or with stricterFIFO at the head). Piscina is given
 * at most one body per thread.
 */
import { Piscina } from 'piscina';
import { defaultBodyThreads } from '../../engine/config/schema.js';
import type { FieldMaskRule } from '../../engine/masking/json-fields.js';
import type { HashKey } from '../../engine/masking/strategies.js';
import { workerModule } from '../../engine/worker-module.js';
import type { MaskCount } from '../../engine/recording/types.js';
import { BodyRefused, type BodyHeaders, type BodyOptions, type BodyOutcome } from './body.js';
import type { BodyReply, BodyTask } from './body-thread.js';

export interface BodyThreadsOptions {
  /** The HMAC key for "hash" mask rules, as the exchange compiles them with. */
  hashKey: HashKey | undefined;
  /** Threads reading bodies at once (default: defaultBodyThreads(), listeners.ext_authz.body_threads). */
  threads?: number;
  /** Each thread's old-generation heap, in MiB (default 2048). */
  maxHeapMb?: number;
  /** Bodies that may wait while every thread reads (default QUEUE_PER_THREAD per thread); more are refused. */
  maxQueue?: number;
  /** A thread failed outside any body it was given (default: ignored; its reads are refused as it fails, and a new thread starts). */
  onThreadError?: (err: Error) => void;
}

/**
 * Bodies that may wait, per thread. A body as APIs send them is read in
 * about a millisecond, so a thread works through 16 waiting ones in tens of
 * milliseconds, far inside Envoy's message_timeout (1 s), and a burst of
 * responses is not refused; behind reads that take seconds (a body that
 * decodes to 16 MiB) a waiting body would time out at Envoy anyway, and is
 * better refused at once. The main process then holds at most 16 waiting
 * bodies per thread (each within Envoy's buffer limit, 1 MiB by default).
 */
export const QUEUE_PER_THREAD = 16;

export interface BodyRead {
  outcome: BodyOutcome;
  /** What the plan masked in this body. */
  masked: MaskCount[];
}

/**
 * A read dropped because its signal was aborted (its exchange is gone):
 * queued, it never ran; running, its thread was stopped. Nothing is to be
 * sent for it.
 */
export class BodyReadAborted extends Error {
  override name = 'AbortError';
}

interface Waiting {
  /** Hands this read a thread (the slot passes from a read that ended). */
  go(): void;
  /** The threads closed while it waited. */
  stop(err: Error): void;
}

export class BodyThreads {
  private readonly pool: Piscina<BodyTask, BodyReply>;
  private readonly maxHeapMb: number;
  readonly threads: number;
  readonly maxQueue: number;
  /** Reads holding a thread (handed to Piscina, or about to be). */
  private running = 0;
  /** Reads waiting for a thread, oldest first. */
  private readonly waiting: Waiting[] = [];
  private closed = false;

  constructor(options: BodyThreadsOptions) {
    const { url, execArgv } = workerModule(new URL('./body-thread.js', import.meta.url), 'the ext_proc body threads');
    this.threads = options.threads ?? defaultBodyThreads();
    if (!Number.isInteger(this.threads) || this.threads < 1) throw new RangeError(`body threads must be a whole number of at least 1, not ${this.threads}`);
    this.maxQueue = options.maxQueue ?? QUEUE_PER_THREAD * this.threads;
    if (!Number.isInteger(this.maxQueue) || this.maxQueue < 0) throw new RangeError(`the body queue must be a whole number of at least 0, not ${this.maxQueue}`);
    this.maxHeapMb = options.maxHeapMb ?? 2048;
    this.pool = new Piscina({
      filename: url.href,
      workerData: { hashKey: options.hashKey },
      minThreads: this.threads,
      maxThreads: this.threads,
      resourceLimits: { maxOldGenerationSizeMb: this.maxHeapMb },
      ...(execArgv ? { execArgv } : {}),
    });
    // Unheard, Piscina's 'error' event would end the process, and every exchange with it.
    this.pool.on('error', options.onThreadError ?? (() => undefined));
  }

  /** The threads' ids: a thread stopped with its read (its signal aborted) is replaced by a new one. */
  get threadIds(): number[] {
    return this.pool.threads.map((thread) => thread.threadId);
  }

  /** Bodies handed over and not yet answered (waiting or being read). */
  get reading(): number {
    return this.running + this.waiting.length;
  }

  /**
   * Reads `raw` under `rules`; throws BodyRefused as processBody does, and
   * when every thread is busy and maxQueue bodies already wait. An aborted
   * `signal` drops the read: it rejects with BodyReadAborted.
   */
  async read(raw: Buffer, headers: BodyHeaders, rules: readonly FieldMaskRule[], options: BodyOptions, signal?: AbortSignal): Promise<BodyRead> {
    if (this.closed) throw new Error('the body threads are closed');
    if (signal?.aborted) throw aborted(signal);
    const turn = this.turn(signal);
    if (turn) await turn;
    let reply: BodyReply;
    try {
      // Copied, not transferred: `raw` may share its ArrayBuffer with grpc-js's.
      reply = await this.pool.run({ raw, headers, rules, options }, signal ? { signal } : {});
    } catch (err) {
      if (signal?.aborted) throw aborted(signal);
      if ((err as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY') {
        throw new BodyRefused(`reading the body took more than the ${this.maxHeapMb} MiB a body thread may use`);
      }
      throw err;
    } finally {
      this.release();
    }
    // Answered as the exchange went: it is not to be sent.
    if (signal?.aborted) throw aborted(signal);
    if ('refused' in reply) throw new BodyRefused(reply.refused);
    const { replacement } = reply.outcome;
    // A Buffer comes back from the thread as a plain Uint8Array.
    const outcome = replacement === null ? reply.outcome : { ...reply.outcome, replacement: Buffer.from(replacement.buffer, replacement.byteOffset, replacement.byteLength) };
    return { outcome, masked: reply.masked };
  }

  /** Takes a thread: at once (undefined), or a promise of one, rejected when the signal aborts first. Throws when the queue is full. */
  private turn(signal: AbortSignal | undefined): Promise<void> | undefined {
    if (this.running < this.threads) {
      this.running++;
      return undefined;
    }
    if (this.waiting.length >= this.maxQueue) throw new BodyRefused(this.busy());
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.waiting.splice(this.waiting.indexOf(waiting), 1);
        reject(aborted(signal!));
      };
      const waiting: Waiting = {
        go: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        stop: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiting);
    });
  }

  /** Why a body is refused when the queue is full, naming the limit. */
  private busy(): string {
    const threads = this.threads === 1 ? 'the body thread is' : `all ${this.threads} body threads are`;
    const waiting = this.maxQueue === 0 ? 'no body may wait' : this.maxQueue === 1 ? '1 body already waits, the most that may' : `${this.maxQueue} bodies already wait, the most that may`;
    return `${threads} busy and ${waiting}`;
  }

  /** A read ended: its thread goes to the oldest waiting read, if any. */
  private release(): void {
    const next = this.waiting.shift();
    if (next) next.go();
    else this.running--;
  }

  /** Stops the threads: reads waiting or running are rejected. */
  close(): Promise<void> {
    this.closed = true;
    for (const waiting of this.waiting.splice(0)) waiting.stop(new Error('the body threads are closed'));
    return this.pool.destroy();
  }
}

function aborted(signal: AbortSignal): BodyReadAborted {
  return new BodyReadAborted('the body read was dropped: its exchange is gone', { cause: signal.reason });
}
