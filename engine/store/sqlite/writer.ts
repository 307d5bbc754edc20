/**
 * Where the SQLite store's writes run: on a writer thread with its own
 * connection for a file ({@link ThreadWriter}), on the store's connection for
 * ":memory:", whose data no other connection can see ({@link InlineWriter}).
 */
import type Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../../observability/logger.js';
import { SqliteWrites, errorFromWire, type WriteRequest, type WriterMessage, type WriterReply } from './sqlite-writes.js';

export interface Writer {
  /** Runs one write transaction; resolves once it has committed durably, rejects with the error it failed with. */
  write(request: WriteRequest): Promise<unknown>;
  /** Waits for the writes already made, then releases the connection. Later writes reject. */
  close(): Promise<void>;
}

/** What a closed better-sqlite3 connection throws, for writes made after close(). */
const notOpen = () => new TypeError('The database connection is not open');

/** Writes on the caller's connection and thread (":memory:": no fsync to wait for, and no other connection sees the data). */
export class InlineWriter implements Writer {
  readonly #writes: SqliteWrites;
  #closed = false;

  constructor(db: Database.Database) {
    this.#writes = new SqliteWrites(db);
  }

  async write(request: WriteRequest): Promise<unknown> {
    if (this.#closed) throw notOpen();
    return this.#writes.execute(request);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/**
 * Writes on a worker thread (writer-thread.ts) that owns a second connection
 * to the same file, started on the first write. Writes run one at a time in
 * the order they were made. The thread keeps the process alive only while a
 * write is in flight. If it dies, the writes in flight reject (their outcome
 * is unknown: they may have committed) and the next write starts another.
 */
export class ThreadWriter implements Writer {
  readonly #path: string;
  readonly #logger: Logger;
  #worker: Worker | null = null;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closing: Promise<void> | null = null;

  /** `path`: the file's real path, which the store's connection has created and migrated. */
  constructor(path: string, logger: Logger) {
    this.#path = path;
    this.#logger = logger;
  }

  write(request: WriteRequest): Promise<unknown> {
    if (this.#closing) return Promise.reject(notOpen());
    let worker: Worker;
    try {
      worker = this.#worker ?? this.#start();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.#send(worker, request);
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  async #shutDown(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    // The thread answers in order: by the time it answers this, every write
    // sent before it has committed or failed, and its promise has settled.
    let failure: unknown = null;
    try {
      await this.#send(worker, { op: 'close' });
    } catch (err) {
      failure = err;
    }
    this.#worker = null;
    await worker.terminate();
    if (failure) throw failure;
  }

  #send(worker: Worker, request: WriteRequest | { op: 'close' }): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      try {
        worker.postMessage({ ...request, id } satisfies WriterMessage);
      } catch (err) {
        // A value structured clone cannot copy, as binding it would have failed.
        reject(err as Error);
        return;
      }
      this.#pending.set(id, { resolve, reject });
      if (this.#pending.size === 1) worker.ref();
    });
  }

  #start(): Worker {
    const worker = spawnWriterThread(this.#path);
    this.#worker = worker;
    worker.unref();
    worker.on('message', (reply: WriterReply) => {
      const pending = this.#pending.get(reply.id);
      if (!pending) return;
      this.#pending.delete(reply.id);
      if (this.#pending.size === 0) worker.unref();
      if (reply.ok) pending.resolve(reply.value);
      else pending.reject(errorFromWire(reply.error));
    });
    worker.on('error', (err) => this.#lost(worker, err));
    worker.on('exit', (code) => this.#lost(worker, new Error(`it exited with code ${code}`)));
    return worker;
  }

  /** The thread died (an uncaught error, or it could not open the file). */
  #lost(worker: Worker, cause: Error): void {
    if (this.#worker !== worker) return;
    this.#worker = null;
    const err = new Error(`the SQLite store's writer thread stopped: ${cause.message}`, { cause });
    this.#logger.error({ err: cause.message, writes_in_flight: this.#pending.size }, "the SQLite store's writer thread stopped; writes in flight failed");
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(err);
  }
}

/**
 * The writer thread's entry: the compiled writer-thread.js beside this file
 * (dist/, production), else writer-thread.ts from source (vitest, tsx), loaded
 * through tsx, since Node 20 applies neither vitest's transform nor the
 * parent's --import loaders to a worker's entry.
 */
function spawnWriterThread(path: string): Worker {
  const options = { workerData: { path }, name: 'gatehouse-sqlite-writer' };
  const compiled = new URL('./writer-thread.js', import.meta.url);
  if (existsSync(fileURLToPath(compiled))) return new Worker(compiled, options);
  const source = new URL('./writer-thread.ts', import.meta.url);
  let tsx: string;
  try {
    // The ESM entry (the "import" condition): tsx's CommonJS one cannot be import()ed.
    tsx = import.meta.resolve('tsx/esm/api');
  } catch (err) {
    throw new Error(`the SQLite store's writer thread is TypeScript source (${fileURLToPath(source)}) and tsx is not installed; run the compiled build (npm run build)`, { cause: err });
  }
  const bootstrap = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(source.href)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}
