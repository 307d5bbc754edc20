/**
 * Long SQL is analysed on worker threads, not on the main one. Parsing is
 * linear in the text but not cheap: 800 KB of function calls (under the
 * 1 MiB message cap) take the parser and the walk 0.5–0.8 s, and on the
 * main thread every other session, Check and exchange would wait that long
 * for each such message (red-team round 26: a few sessions sending them
 * held other clients' `SELECT 1` for 1–11 s). Text up to INLINE_CHARS is
 * analysed where it arrives, a few milliseconds at most, so ordinary
 * statements pay no trip between threads.
 *
 * No queue of our own: a session decides one message at a time, so no
 * more texts wait here than there are sessions, each capped by
 * max_message_bytes.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { workerModule } from '../../../engine/worker-module.js';
import { SqlAnalysisError, type ShapedAnalysis } from './analyse.js';
import type { AnalysisReply } from './analysis-thread.js';

/** Longer text is analysed on a thread; 8 KiB of the costliest SQL parse in about 4 ms. */
export const INLINE_CHARS = 8 * 1024;

/** A thread's old-generation heap, MiB: a megabyte of SQL makes a parse tree of tens of megabytes. */
const MAX_HEAP_MB = 1024;

export class SqlAnalysisThreads {
  private readonly pool: Piscina<string, AnalysisReply>;

  /** `onThreadError`: a thread failed outside any text it was given (its tasks are refused as it fails, and a new thread starts). */
  constructor(onThreadError: (err: Error) => void, threads = defaultAnalysisThreads()) {
    const module = workerModule(new URL('./analysis-thread.js', import.meta.url), 'the SQL analysis threads');
    this.pool = new Piscina({
      filename: module.url.href,
      execArgv: module.execArgv,
      minThreads: 0,
      maxThreads: threads,
      idleTimeout: 30_000,
      resourceLimits: { maxOldGenerationSizeMb: MAX_HEAP_MB },
    });
    // Unheard, Piscina's 'error' event would end the process, and every session with it.
    this.pool.on('error', onThreadError);
  }

  /**
   * As analyseSqlSyncWithShape, on a thread: throws SqlAnalysisError for
   * text it cannot analyse, and when the thread could not (it ran out of
   * heap, or the pool closed): what is not analysed is denied.
   */
  async analyse(text: string): Promise<ShapedAnalysis> {
    let reply: AnalysisReply;
    try {
      reply = await this.pool.run(text);
    } catch (err) {
      throw new SqlAnalysisError(`the gateway could not analyse it: ${(err as Error).message}`, undefined, { cause: err });
    }
    if ('error' in reply) throw new SqlAnalysisError(reply.error, reply.position);
    return reply;
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}

/** One thread, two on a machine with cores to spare: long statements are rare, and each thread holds a parser. */
function defaultAnalysisThreads(): number {
  return availableParallelism() > 2 ? 2 : 1;
}
