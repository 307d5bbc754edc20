import { createHash, type Hash } from 'node:crypto';

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
  return finishRecordHash(startRecordHash(eventJson), stream, seq, prev);
}

/**
 * recordHash in two steps, for a writer that has the event before it knows
 * where in the chain it goes: the canonical record starts with the event, so
 * the event's bytes (nearly all of them) can be hashed as soon as it is
 * appended, and only the short tail once seq and prev are known.
 *
 * The parts are hashed one after the other rather than joined into one
 * string first. The bytes are the same: the parts next to the event text
 * begin and end with ASCII, so no boundary splits a surrogate pair. And the
 * event text is then flattened once, in place, instead of being copied into
 * a larger string that is thrown away (see AuditLog.append).
 */
export function startRecordHash(eventJson: string): Hash {
  return createHash('sha256').update('{"event":').update(eventJson);
}

/** Completes a startRecordHash() hash; each one can be finished once. */
export function finishRecordHash(started: Hash, stream: string, seq: number, prev: string): string {
  return started.update(`,"prev":"${prev}","seq":${seq},"stream":${streamText(stream)}}`).digest('hex');
}

let lastStream = '';
let lastStreamText = '""';

/** JSON.stringify(stream), remembered for the stream last asked for: a writer asks for its own every time. */
function streamText(stream: string): string {
  if (stream !== lastStream) {
    lastStreamText = JSON.stringify(stream);
    lastStream = stream;
  }
  return lastStreamText;
}
