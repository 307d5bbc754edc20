/**
 * LISTEN on a dedicated connection (a pooled one would drop the
 * subscription when it goes back to the pool), reconnecting with back-off
 * when the connection drops. Notifications sent while it is down are lost
 * (PostgreSQL queues none for a listener that is gone), so whoever waits on
 * an approval must also re-read it now and then, not rely on a wake-up alone.
 */
import pg from 'pg';
import type { Logger } from '../../observability/logger.js';

const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5000;

export interface ListenerOptions {
  connectionString: string;
  channel: string;
  logger: Logger;
  onNotify(payload: string): void;
}

export class PgListener {
  #client: pg.Client | null = null;
  #closed = false;
  #timer: NodeJS.Timeout | null = null;
  #backoff = MIN_BACKOFF_MS;

  constructor(private readonly options: ListenerOptions) {}

  /** Resolves once LISTEN is in effect, so notifications from then on arrive. */
  async start(): Promise<void> {
    await this.#connect();
  }

  async #connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.connectionString });
    // Errors also end the connection; 'end' is where reconnection is decided.
    client.on('error', (err) => this.options.logger.warn({ err: { message: err.message } }, 'approval LISTEN connection failed'));
    client.on('notification', (n) => {
      if (n.channel === this.options.channel && n.payload !== undefined) this.options.onNotify(n.payload);
    });
    client.on('end', () => {
      if (this.#client !== client || this.#closed) return;
      this.#client = null;
      this.options.logger.warn({ channel: this.options.channel }, 'approval LISTEN connection dropped; reconnecting');
      this.#scheduleReconnect();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(this.options.channel)}`);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.#closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#client = client;
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#timer) return;
    const delay = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, MAX_BACKOFF_MS);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#connect().then(
        () => {
          if (this.#closed) return;
          this.#backoff = MIN_BACKOFF_MS;
          this.options.logger.info({ channel: this.options.channel }, 'approval LISTEN connection re-established');
        },
        (err: Error) => {
          this.options.logger.warn({ err: { message: err.message }, retry_ms: this.#backoff }, 'approval LISTEN reconnect failed');
          this.#scheduleReconnect();
        },
      );
    }, delay);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const client = this.#client;
    this.#client = null;
    await client?.end().catch(() => undefined);
  }
}
