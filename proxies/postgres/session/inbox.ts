import type { FrontendMessage } from '../protocol/frontend-messages.js';

export type Handler = (message: FrontendMessage, raw: Buffer) => Promise<void> | void;

/**
 * Client messages, handled strictly one after another: a decision is
 * asynchronous (an audit write, perhaps a human's approval), and the
 * messages after it must wait for it, as the server would have them.
 * A handler that returns synchronously costs no promise.
 */
export class Inbox {
  private readonly queue: Array<[FrontendMessage, Buffer]> = [];
  private running = false;
  private stopped = false;
  private bytes = 0;

  constructor(
    private handler: Handler,
    private readonly onError: (error: unknown) => void,
    /** Called whenever the queue has run empty: a reader held back for it can go on. */
    private readonly onEmpty: () => void = () => undefined,
  ) {}

  /** The bytes of the messages waiting their turn. */
  get queuedBytes(): number {
    return this.bytes;
  }

  /** Swaps the handler (startup → relay); messages already queued go to the new one. */
  handleWith(handler: Handler): void {
    this.handler = handler;
  }

  push(message: FrontendMessage, raw: Buffer): void {
    this.queue.push([message, raw]);
    this.bytes += raw.length;
    if (!this.running) this.drain();
  }

  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    this.bytes = 0;
  }

  /** Synchronous while handlers are; an asynchronous one pauses the queue until it settles. */
  private drain(): void {
    this.running = true;
    try {
      while (!this.stopped && this.queue.length > 0) {
        const [message, raw] = this.queue.shift()!;
        this.bytes -= raw.length;
        const pending = this.handler(message, raw);
        if (pending) {
          pending.then(() => this.drain(), (error: unknown) => this.fail(error));
          return;
        }
      }
    } catch (error) {
      this.fail(error);
      return;
    }
    this.running = false;
    this.onEmpty();
  }

  private fail(error: unknown): void {
    this.stop();
    this.running = false;
    this.onError(error);
  }
}
