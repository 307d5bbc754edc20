/**
 * The incomplete tail of a message stream, kept as the chunks it arrived
 * in and joined once the message it starts is whole. Joining on every
 * chunk would copy a large message over and over (quadratic): a 100 MB
 * value in 64 KB chunks would be copied some 800 times.
 */
export class PendingBytes {
  private chunks: Buffer[] = [];
  private length = 0;
  /** Bytes the tail needs before a message can end in it. */
  private need = 0;

  /** Bytes held back. */
  get size(): number {
    return this.length;
  }

  /** Keeps `tail`, which needs `need` bytes in all before a message can end in it. */
  hold(tail: Buffer, need: number): void {
    this.chunks = [tail];
    this.length = tail.length;
    this.need = need;
  }

  /** `chunk` joined to what is held, or null while that is still too short (the chunk is then held too). */
  add(chunk: Buffer): Buffer | null {
    if (this.length === 0) return chunk;
    this.chunks.push(chunk);
    this.length += chunk.length;
    if (this.length < this.need) return null;
    const data = Buffer.concat(this.chunks, this.length);
    this.clear();
    return data;
  }

  clear(): void {
    this.chunks = [];
    this.length = 0;
  }
}
