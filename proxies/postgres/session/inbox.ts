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
    if (!this.running) void this.drain();
  }

  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (!this.stopped && this.queue.length > 0) {
        const [message, raw] = this.queue.shift()!;
        const pending = this.handler(message, raw);
        if (pending) await pending;
      }
    } catch (error) {
      this.stop();
      this.onError(error);
    } finally {
      this.running = false;
    }
  }
}
