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

  constructor(
    private handler: Handler,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Swaps the handler (startup → relay); messages already queued go to the new one. */
  handleWith(handler: Handler): void {
    this.handler = handler;
  }

  push(message: FrontendMessage, raw: Buffer): void {
    this.queue.push([message, raw]);
    if (!this.running) this.drain();
  }

  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
  }

  /** Synchronous while handlers are; an asynchronous one pauses the queue until it settles. */
  private drain(): void {
    this.running = true;
    try {
      while (!this.stopped && this.queue.length > 0) {
        const [message, raw] = this.queue.shift()!;
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
  }

  private fail(error: unknown): void {
    this.stop();
    this.running = false;
    this.onError(error);
  }
}
