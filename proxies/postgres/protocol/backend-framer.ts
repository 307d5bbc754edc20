/**
 * Splits the server's byte stream into whole messages without decoding
 * them: the proxy forwards most backend messages untouched, so binary
 * columns pass through byte-exact and the common path costs one length read
 * per message. Messages the proxy must read (RowDescription, ErrorResponse,
 * …) are decoded one by one with pg-protocol's parser (backend-decode.ts).
 */
export type BackendMessageCallback = (code: number, message: Buffer) => void;

export class BackendFramer {
  /**
   * The incomplete tail, as the chunks it came in: joined once the message
   * is whole. Joining on every chunk would copy a 100 MB value hundreds of
   * times over (quadratic), stalling every session on the event loop.
   */
  private pending: Buffer[] = [];
  private pendingLength = 0;
  /** Bytes the pending tail needs before a message can end in it (its header first). */
  private need = 0;

  /** Calls `onMessage` with each complete message (type byte and length included), in order. */
  push(chunk: Buffer, onMessage: BackendMessageCallback): void {
    let data = chunk;
    if (this.pendingLength > 0) {
      this.pending.push(chunk);
      this.pendingLength += chunk.length;
      if (this.pendingLength < this.need) return;
      data = Buffer.concat(this.pending, this.pendingLength);
      this.pending = [];
      this.pendingLength = 0;
    }
    const end = data.length;
    let pos = 0;
    while (end - pos >= 5) {
      const length = data.readInt32BE(pos + 1);
      if (length < 4) throw new RangeError(`backend message ${String.fromCharCode(data[pos]!)} declares length ${length} (minimum 4)`);
      const next = pos + 1 + length;
      if (next > end) break;
      onMessage(data[pos]!, data.subarray(pos, next));
      pos = next;
    }
    if (pos < end) {
      this.pending.push(data.subarray(pos));
      this.pendingLength = end - pos;
      this.need = end - pos >= 5 ? 1 + data.readInt32BE(pos + 1) : 5;
    }
  }
}
