/**
 * Exclusive writers for audit streams: a session-level advisory lock per
 * stream, held on a dedicated connection until close(). A session lock dies
 * with its connection, so the lock is released however this process ends,
 * and a dropped connection means the claim is gone: appends to a claimed
 * stream then re-claim first, and fail with StreamBusyError if another
 * process took the stream meanwhile.
 */
import pg from 'pg';
import type { Logger } from '../../observability/logger.js';
import { StreamBusyError } from '../store.js';

/** Namespaces the lock keys, so other users of advisory locks in the same database do not collide with ours. */
const LOCK_SQL = "SELECT pg_try_advisory_lock(hashtextextended('gatehouse.audit-stream:' || $1, 0)) AS ok";

export class PgStreamClaims {
  #client: pg.Client | null = null;
  #connecting: Promise<pg.Client> | null = null;
  readonly #held = new Set<string>();
  /** Streams claimed whose lock went with a dropped connection. */
  #lost = false;
  #closed = false;

  constructor(
    private readonly connectionString: string,
    private readonly logger: Logger,
  ) {}

  async claim(stream: string): Promise<void> {
    if (this.#closed) throw new Error('store is closed');
    if (this.#held.has(stream) && !this.#lost) return;
    await this.#lock(await this.#session(), stream);
    this.#held.add(stream);
  }

  /** Before appending: re-takes the locks if their connection dropped. */
  async ensureHeld(streams: Iterable<string>): Promise<void> {
    if (!this.#lost) return;
    if (![...streams].some((s) => this.#held.has(s))) return;
    const client = await this.#session();
    for (const stream of this.#held) await this.#lock(client, stream);
    this.#lost = false;
    this.logger.info({ streams: [...this.#held] }, 'audit stream claims re-taken');
  }

  async #lock(client: pg.Client, stream: string): Promise<void> {
    const { rows } = await client.query<{ ok: boolean }>(LOCK_SQL, [stream]);
    if (!rows[0]?.ok) throw new StreamBusyError(stream);
  }

  #session(): Promise<pg.Client> {
    if (this.#client) return Promise.resolve(this.#client);
    this.#connecting ??= (async () => {
      const client = new pg.Client({ connectionString: this.connectionString });
      client.on('error', (err) => this.logger.warn({ err: { message: err.message } }, 'audit stream claim connection failed'));
      client.on('end', () => {
        if (this.#client !== client || this.#closed) return;
        this.#client = null;
        if (this.#held.size > 0) {
          this.#lost = true;
          this.logger.error({ streams: [...this.#held] }, 'audit stream claim connection dropped; the next append re-claims');
        }
      });
      try {
        await client.connect();
      } catch (err) {
        await client.end().catch(() => undefined);
        throw err;
      }
      this.#client = client;
      return client;
    })().finally(() => {
      this.#connecting = null;
    });
    return this.#connecting;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#client ?? (await this.#connecting?.catch(() => null)) ?? null;
    this.#client = null;
    this.#held.clear();
    // Ending the session releases its advisory locks.
    await client?.end().catch(() => undefined);
  }
}
