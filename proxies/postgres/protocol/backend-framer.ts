/**
 * Splits the server's byte stream into whole messages without decoding
 * them: the proxy forwards most backend messages untouched, so binary
 * columns pass through byte-exact and the common path costs one length read
 * per message. Messages the proxy must read (RowDescription, ErrorResponse,
 * …) are decoded one by one with pg-protocol's parser (backend-decode.ts).
 */
export type BackendMessageCallback = (code: number, message: Buffer) => void;

export class BackendFramer {
  private pending: Buffer | null = null;

  /** Calls `onMessage` with each complete message (type byte and length included), in order. */
  push(chunk: Buffer, onMessage: BackendMessageCallback): void {
    let data = chunk;
    if (this.pending) {
      data = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    const end = data.length;
    let pos = 0;
    while (end - pos >= 5) {
      const next = pos + 1 + data.readInt32BE(pos + 1);
      if (next > end) break;
      onMessage(data[pos]!, data.subarray(pos, next));
      pos = next;
    }
    if (pos < end) this.pending = data.subarray(pos);
  }
}
