/**
 * Masking in DataRow messages ('D', Int32 length, Int16 column count, then
 * per column an Int32 length, -1 for NULL, and that many bytes), rewritten
 * byte-exact: hand-written because node-postgres' parser decodes every field
 * as UTF-8, which would corrupt binary values on the way back out.
 *
 * Only masked columns are ever decoded. Everything else, including the
 * column count and unmasked fields with whatever bytes they hold, is copied
 * as whole stretches of memory; a row in which nothing changed is returned
 * as the same Buffer.
 *
 * What a masked column becomes depends on its type and format (from
 * RowDescription), because the client decodes it by type:
 *
 *   text-like (text, varchar, bpchar, name, unknown, json, xml; and any
 *   type that is not built in, OID ≥ 16384, such as citext or an enum, in
 *   text format): the strategy applies to the UTF-8 string. In binary
 *   format these types send the same UTF-8 bytes, so the same applies.
 *   jsonb in binary format is a version byte (1) and the JSON text; any
 *   other version is not understood and becomes NULL.
 *
 *   json/jsonb whole-value replacements are written as a JSON string
 *   ("\"[REDACTED]\"", "\"hash:…\""), since the client parses the column
 *   as JSON; detector spans are replaced in place inside the document.
 *
 *   everything else (int, numeric, date, uuid, bytea, arrays, binary values
 *   of types that are not built in, …): no marker fits the type, and a
 *   client parsing "[REDACTED]" as an int fails, so redact/partial/hash make
 *   the value NULL, as does null. A detector rule on such a column scans
 *   the text format and makes the value NULL when anything matched; in
 *   binary format it cannot read the value without knowing the type, so it
 *   makes it NULL (fail closed).
 *
 * Text is assumed to be UTF-8 (the proxy runs sessions with
 * client_encoding UTF8). A detector rule that finds nothing leaves the
 * original bytes, valid UTF-8 or not; a value that is masked is re-encoded.
 */
import type { ColumnMasker } from '../../../engine/masking/masker.js';
import { REDACTED } from '../../../engine/masking/strategies.js';

/** A DataRow that cannot be read: the proxy must not forward it, and closes the connection. */
export class DataRowError extends Error {
  override name = 'DataRowError';
  readonly sqlState = '08P01';
}

const TYPE_NAME = 19, TYPE_TEXT = 25, TYPE_JSON = 114, TYPE_XML = 142, TYPE_UNKNOWN = 705, TYPE_BPCHAR = 1042,
  TYPE_VARCHAR = 1043, TYPE_JSONB = 3802;
const TEXT_TYPES = new Set([TYPE_NAME, TYPE_TEXT, TYPE_JSON, TYPE_XML, TYPE_UNKNOWN, TYPE_BPCHAR, TYPE_VARCHAR, TYPE_JSONB]);
/** PostgreSQL's FirstNormalObjectId: types with lower OIDs are built in. */
const FIRST_USER_OID = 16384;
const JSONB_VERSION = 1;

// What to do with a masked column; chosen once per result, not per row.
const PASS = 0; // not masked: copied
const TO_NULL = 1; // becomes NULL without being read
const CONSTANT = 2; // a fixed replacement (whole-value redact), without being read
const TEXT = 3; // decoded, masked, re-encoded
const SCAN_TO_NULL = 4; // decoded and scanned; NULL when anything matched
// Results of masking one field.
const UNCHANGED = -2;
const NULL = -1;

const readInt32 = (b: Buffer, p: number) => (b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!;
function writeInt32(b: Buffer, p: number, v: number): void {
  b[p] = v >>> 24;
  b[p + 1] = v >>> 16;
  b[p + 2] = v >>> 8;
  b[p + 3] = v;
}

/**
 * Copies source[from, to) to target at `at`; returns the bytes copied.
 * Buffer#copy builds a view per call, which costs more than the copy for
 * the short stretches between masked fields, so those are copied in a loop.
 */
const SHORT_COPY = 64;
function copyBytes(source: Buffer, from: number, to: number, target: Buffer, at: number): number {
  const n = to - from;
  if (n <= SHORT_COPY) {
    for (let k = 0; k < n; k++) target[at + k] = source[from + k]!;
  } else {
    target.set(source.subarray(from, to), at);
  }
  return n;
}

/**
 * The UTF-8 length of a string, as Buffer.byteLength counts it (a lone
 * surrogate is 3 bytes: it is written as U+FFFD). Masked values are short
 * and mostly ASCII, for which this loop beats the call into C++.
 */
function utf8Length(text: string): number {
  let n = text.length;
  for (let k = 0; k < text.length; k++) {
    const c = text.charCodeAt(k);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && k + 1 < text.length && (text.charCodeAt(k + 1) & 0xfc00) === 0xdc00) {
      n += 2; // a pair: 2 units, 4 bytes
      k++;
    } else n += 2;
  }
  return n;
}

/** Writes `text` (`bytes` long in UTF-8) at `at`: ASCII in a loop, anything else by Buffer#write. */
function writeUtf8(text: string, target: Buffer, at: number, bytes: number): number {
  if (bytes !== text.length) return target.write(text, at, bytes, 'utf8');
  for (let k = 0; k < bytes; k++) target[at + k] = text.charCodeAt(k);
  return bytes;
}

/**
 * Rewrites the DataRows of one result. Built from the result's
 * RowDescription (formats, type OIDs) and the masker for each column
 * (undefined: leave it alone). Not re-entrant: per-row scratch space is
 * kept on the instance.
 */
export class DataRowRewriter {
  readonly columns: number;
  /** False when no column is masked: `rewrite` returns every row as it is. */
  readonly active: boolean;
  private readonly maskers: (ColumnMasker | undefined)[];
  private readonly kinds: Uint8Array;
  private readonly jsonbBinary: Uint8Array; // 1: a version byte precedes the text
  private readonly quote: Uint8Array; // 1: whole-value results are written as JSON strings
  private readonly constants: (Buffer | undefined)[];
  // Per-row scratch, indexed by column.
  private readonly changedAt: Int32Array;
  private readonly fieldPos: Int32Array;
  private readonly fieldEnd: Int32Array;
  private readonly newLength: Int32Array;
  private readonly newText: (string | undefined)[];

  constructor(maskers: readonly (ColumnMasker | undefined)[], formats: readonly number[], typeOids: readonly number[]) {
    const n = maskers.length;
    if (formats.length !== n || typeOids.length !== n) {
      throw new TypeError(`DataRowRewriter: ${n} maskers, ${formats.length} formats and ${typeOids.length} type OIDs; one of each per column`);
    }
    this.columns = n;
    this.maskers = [...maskers];
    this.kinds = new Uint8Array(n);
    this.jsonbBinary = new Uint8Array(n);
    this.quote = new Uint8Array(n);
    this.constants = new Array<Buffer | undefined>(n);
    this.changedAt = new Int32Array(n);
    this.fieldPos = new Int32Array(n);
    this.fieldEnd = new Int32Array(n);
    this.newLength = new Int32Array(n);
    this.newText = new Array<string | undefined>(n);
    let active = false;
    for (let i = 0; i < n; i++) {
      const masker = maskers[i];
      const format = formats[i];
      if (format !== 0 && format !== 1) throw new TypeError(`DataRowRewriter: column ${i} has format code ${format}; only 0 (text) and 1 (binary) exist`);
      if (masker === undefined) continue;
      active = true;
      const oid = typeOids[i]!;
      const whole = masker.detectors.length === 0;
      const textLike = TEXT_TYPES.has(oid) || (oid >= FIRST_USER_OID && format === 0);
      const jsonbBinary = oid === TYPE_JSONB && format === 1;
      const quote = whole && (oid === TYPE_JSON || oid === TYPE_JSONB);
      this.jsonbBinary[i] = jsonbBinary ? 1 : 0;
      this.quote[i] = quote ? 1 : 0;
      if (whole && masker.strategy === 'null') this.kinds[i] = TO_NULL;
      else if (!textLike) this.kinds[i] = whole || format === 1 ? TO_NULL : SCAN_TO_NULL;
      else if (whole && masker.strategy === 'redact') {
        const text = Buffer.from(quote ? JSON.stringify(REDACTED) : REDACTED, 'utf8');
        this.constants[i] = jsonbBinary ? Buffer.concat([Buffer.from([JSONB_VERSION]), text]) : text;
        this.kinds[i] = CONSTANT;
      } else this.kinds[i] = TEXT;
    }
    this.active = active;
  }

  /**
   * The row with its masked columns replaced, or `message` itself when none
   * changed. Throws DataRowError for a message that is not a well-formed
   * DataRow of this result's width.
   */
  rewrite(message: Buffer): Buffer {
    if (!this.active) return message;
    const size = message.length;
    if (size < 7 || message[0] !== 0x44) throw new DataRowError('expected a DataRow message');
    const declared = readInt32(message, 1);
    if (declared !== size - 1) throw new DataRowError(`DataRow length field says ${declared} bytes, the message has ${size - 1}`);
    const count = (message[5]! << 8) | message[6]!;
    if (count !== this.columns) throw new DataRowError(`DataRow has ${count} columns, the RowDescription ${this.columns}`);

    const kinds = this.kinds;
    let pos = 7;
    let changed = 0;
    let delta = 0;
    for (let i = 0; i < count; i++) {
      if (pos + 4 > size) throw new DataRowError(`DataRow column ${i} runs past the end of the message`);
      const len = readInt32(message, pos);
      const start = pos + 4;
      if (len < 0) {
        if (len !== -1) throw new DataRowError(`DataRow column ${i} has length ${len}`);
        pos = start;
        continue;
      }
      const end = start + len;
      if (end > size) throw new DataRowError(`DataRow column ${i} runs past the end of the message`);
      const kind = kinds[i]!;
      if (kind !== PASS) {
        const replaced = this.maskField(i, kind, message, start, end);
        if (replaced !== UNCHANGED) {
          this.changedAt[changed++] = i;
          this.fieldPos[i] = pos;
          this.fieldEnd[i] = end;
          this.newLength[i] = replaced;
          delta += (replaced === NULL ? 0 : replaced) - len;
        }
      }
      pos = end;
    }
    if (pos !== size) throw new DataRowError(`DataRow has ${size - pos} bytes after its last column`);
    if (changed === 0) return message;

    const out = Buffer.allocUnsafe(size + delta);
    out[0] = 0x44;
    writeInt32(out, 1, size + delta - 1);
    let from = 5; // the column count is unchanged: it is copied with the first stretch
    let o = 5;
    for (let k = 0; k < changed; k++) {
      const i = this.changedAt[k]!;
      o += copyBytes(message, from, this.fieldPos[i]!, out, o);
      const len = this.newLength[i]!;
      writeInt32(out, o, len);
      o += 4;
      if (len > 0) {
        const constant = this.constants[i];
        if (constant !== undefined) {
          o += copyBytes(constant, 0, constant.length, out, o);
        } else {
          if (this.jsonbBinary[i]) out[o++] = JSONB_VERSION;
          o += writeUtf8(this.newText[i]!, out, o, len - this.jsonbBinary[i]!);
          this.newText[i] = undefined;
        }
      }
      from = this.fieldEnd[i]!;
    }
    copyBytes(message, from, size, out, o);
    return out;
  }

  /** The new byte length of field `i` (NULL or UNCHANGED), its text left in newText. */
  private maskField(i: number, kind: number, message: Buffer, start: number, end: number): number {
    const masker = this.maskers[i]!;
    switch (kind) {
      case TO_NULL:
        masker.countValue();
        return NULL;
      case CONSTANT:
        masker.countValue();
        return this.constants[i]!.length;
      case SCAN_TO_NULL: {
        const value = message.toString('utf8', start, end);
        return masker.mask(value) === value ? UNCHANGED : NULL;
      }
      default: {
        let from = start;
        const prefixed = this.jsonbBinary[i] === 1;
        if (prefixed) {
          if (end === start || message[start] !== JSONB_VERSION) {
            masker.countValue(); // a jsonb version we cannot read: fail closed
            return NULL;
          }
          from++;
        }
        const value = message.toString('utf8', from, end);
        const masked = masker.mask(value);
        if (masked === value) return UNCHANGED;
        if (masked === null) return NULL;
        const text = this.quote[i] ? JSON.stringify(masked) : masked;
        this.newText[i] = text;
        return utf8Length(text) + (prefixed ? 1 : 0);
      }
    }
  }
}

/** One row, for callers without a result to keep a rewriter for. */
export function rewriteDataRow(
  message: Buffer,
  maskers: readonly (ColumnMasker | undefined)[],
  formats: readonly number[],
  typeOids: readonly number[],
): Buffer {
  return new DataRowRewriter(maskers, formats, typeOids).rewrite(message);
}
