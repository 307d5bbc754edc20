/**
 * What the client is owed, in order. Every message forwarded to the server
 * leaves an entry saying which backend messages answer it; every answer the
 * proxy makes up itself (a denial) is an entry too, so it reaches the client
 * exactly where the server's answer would have been.
 */
import type { Portal, PreparedStatement, RunningStatement } from './statement-state.js';

export type Pending =
  /** Query, Sync (`sync`) and FunctionCall: everything up to and including ReadyForQuery. `execution`: see Relay.executionsSent. */
  | { kind: 'ready'; running: RunningStatement | null; sync?: true; execution?: number }
  /** `previous`: the proxy's entry the Parse replaced, put back if the server does not prepare the statement. */
  | { kind: 'parseComplete'; name: string; previous: PreparedStatement | undefined }
  /** The same for the portal a Bind creates. */
  | { kind: 'bindComplete'; name: string; previous: Portal | undefined }
  | { kind: 'closeComplete' }
  /** `internal`: the proxy asked, to learn a portal's columns; the client never sees the answer. `epoch`: Relay.epoch when it was sent. */
  | { kind: 'describe'; statement: PreparedStatement | null; portal: Portal | null; internal: boolean; epoch: number }
  /** `portal`: its row masking, set by the answer to a Describe sent before the Execute. */
  | { kind: 'execute'; running: RunningStatement; portal: Portal; execution?: number }
  /**
   * A denied statement's stand-in (Relay DENIED_STAND_IN): the server's error
   * is replaced by `denial`; `extended` stands in for a Parse, Bind or Execute (the
   * server then skips to Sync), else for a Query or FunctionCall (its ReadyForQuery is passed on).
   */
  | { kind: 'denied'; denial: Buffer; extended: boolean }
  /** A Query of the proxy's own (a session setting): answered, error or not, by ReadyForQuery; the client sees none of it. */
  | { kind: 'setting'; settle(error: Buffer | null): void; error: Buffer | null };

export class PendingResponses {
  private readonly entries: Pending[] = [];
  private head = 0;

  get first(): Pending | undefined {
    return this.entries[this.head];
  }

  get empty(): boolean {
    return this.head >= this.entries.length;
  }

  push(entry: Pending): void {
    this.entries.push(entry);
  }

  /** Every entry not yet answered, first to last. */
  *[Symbol.iterator](): IterableIterator<Pending> {
    for (let i = this.head; i < this.entries.length; i++) yield this.entries[i]!;
  }

  shift(): Pending | undefined {
    const entry = this.entries[this.head];
    if (entry === undefined) return undefined;
    this.entries[this.head++] = undefined as unknown as Pending;
    // Compact now and then instead of shifting the array on every message.
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
    return entry;
  }

  /**
   * After an error in an extended-protocol message the server ignores
   * everything up to Sync, a Query or FunctionCall sent before the Sync
   * included; so are the answers the proxy would have given. Each entry
   * dropped goes to `skipped`. Returns false when no Sync has been
   * forwarded yet.
   */
  dropUntilSync(skipped: (entry: Pending) => void): boolean {
    while (!this.empty) {
      const entry = this.first!;
      if (entry.kind === 'ready' && entry.sync) return true;
      this.shift();
      skipped(entry);
    }
    return false;
  }
}
