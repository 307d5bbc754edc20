/**
 * Splits the server's byte stream into whole messages without decoding
 * them: the proxy forwards most backend messages untouched, so binary
 * columns pass through byte-exact and the common path costs one length read
 * per message. Messages the proxy must read (RowDescription, ErrorResponse,
 * …) are decoded one by one with pg-protocol's parser (backend-decode.ts).
 */
import { PendingBytes } from './pending-bytes.js';

export type BackendMessageCallback = (code: number, message: Buffer) => void;

/** The server declared a message larger than the gateway will hold (a message is held whole to be masked). */
export class BackendMessageTooLarge extends Error {
  constructor(readonly code: number, readonly length: number, readonly limit: number) {
    super(`the database sent a ${String.fromCharCode(code)} message of ${length} bytes, over the gateway's limit of ${limit}`);
  }
}

export class BackendFramer {
  private readonly pending = new PendingBytes();

  /** `maxMessageBytes`: refused from its header, before any of its body is buffered. */
  constructor(private readonly maxMessageBytes = Number.POSITIVE_INFINITY) {}

  /** Calls `onMessage` with each complete message (type byte and length included), in order. */
  push(chunk: Buffer, onMessage: BackendMessageCallback): void {
    const data = this.pending.add(chunk);
    if (data === null) return;
    const end = data.length;
    let pos = 0;
    while (end - pos >= 5) {
      const length = data.readInt32BE(pos + 1);
      if (length < 4) throw new RangeError(`backend message ${String.fromCharCode(data[pos]!)} declares length ${length} (minimum 4)`);
      if (length > this.maxMessageBytes) throw new BackendMessageTooLarge(data[pos]!, length, this.maxMessageBytes);
      const next = pos + 1 + length;
      if (next > end) break;
      onMessage(data[pos]!, data.subarray(pos, next));
      pos = next;
    }
    if (pos < end) this.pending.hold(data.subarray(pos), end - pos >= 5 ? 1 + data.readInt32BE(pos + 1) : 5);
  }
}
