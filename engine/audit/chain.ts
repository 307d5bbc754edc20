import { createHash } from 'node:crypto';

/** The `prev` of every stream's first record: there is nothing before it. */
export const GENESIS = '0'.repeat(64);

/** Where a stream's chain ends: the last record's seq and hash (0 and GENESIS when empty). */
export interface ChainHead {
  seq: number;
  hash: string;
}

export const EMPTY_HEAD: ChainHead = Object.freeze({ seq: 0, hash: GENESIS });

/**
 * The hash of one record: SHA-256 (hex) of the canonical JSON of
 * {event, prev, seq, stream}.
 *
 * `eventJson` is already canonical (it is stored that way), so the record's
 * canonical form is built by concatenation with the keys in RFC 8785 order
 * (event < prev < seq < stream) rather than by parsing and re-serialising the
 * event: this runs once per event on the write path and once per event in
 * `audit verify`. Stream names are restricted by the config schema and
 * `prev` is hex, so JSON.stringify gives their canonical string form, and a
 * safe integer's decimal form is its canonical number form.
 */
export function recordHash(stream: string, seq: number, prev: string, eventJson: string): string {
  return createHash('sha256')
    .update(`{"event":${eventJson},"prev":"${prev}","seq":${seq},"stream":${JSON.stringify(stream)}}`)
    .digest('hex');
}
