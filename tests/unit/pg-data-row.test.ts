/**
 * DataRow rewriting: masked columns replaced with correct field and message
 * lengths, everything else byte-identical (binary values with invalid UTF-8
 * included), NULLs in and out, the per-type policy (text-like, json/jsonb,
 * types that cannot hold a marker), malformed rows refused; and
 * property-based tests (fast-check) over arbitrary rows and plans.
 */
import fc from 'fast-check';
import { Parser } from 'pg-protocol/dist/parser.js';
import { describe, expect, it } from 'vitest';
import { compileMasker, type ColumnMasker } from '../../engine/masking/masker.js';
import { createHasher } from '../../engine/masking/strategies.js';
import { DataRowError, DataRowRewriter, rewriteDataRow } from '../../proxies/postgres/protocol/data-row.js';

const KEY = 'k'.repeat(32);
const TEXT = 25, VARCHAR = 1043, INT4 = 23, BYTEA = 17, JSON_OID = 114, JSONB = 3802, UUID = 2950, CITEXT = 16_385;

// ── Building and reading DataRows by hand ─────────────────────────────────

const int16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
type Field = Buffer | string | null;
function dataRow(fields: Field[]): Buffer {
  const body = Buffer.concat([
    int16(fields.length),
    ...fields.flatMap((f) => {
      if (f === null) return [int32(-1)];
      const bytes = typeof f === 'string' ? Buffer.from(f, 'utf8') : f;
      return [int32(bytes.length), bytes];
    }),
  ]);
  return Buffer.concat([Buffer.from('D'), int32(body.length + 4), body]);
}

/** Reads a DataRow strictly: the length field must match and every byte must belong to a field. */
function parseRow(message: Buffer): (Buffer | null)[] {
  expect(message[0]).toBe(0x44);
  expect(message.readInt32BE(1)).toBe(message.length - 1);
  const count = message.readInt16BE(5);
  const fields: (Buffer | null)[] = [];
  let pos = 7;
  for (let i = 0; i < count; i++) {
    const len = message.readInt32BE(pos);
    pos += 4;
    if (len === -1) fields.push(null);
    else {
      fields.push(Buffer.from(message.subarray(pos, pos + len)));
      pos += len;
    }
  }
  expect(pos).toBe(message.length);
  return fields;
}
const texts = (message: Buffer) => parseRow(message).map((f) => (f === null ? null : f.toString('utf8')));

/** What node-postgres makes of the row: the rewritten bytes must be a DataRow it reads. */
function pgProtocolFields(message: Buffer): (string | null)[] {
  const out: (string | null)[] = [];
  new Parser().parse(message, (m) => out.push(...(m as unknown as { fields: (string | null)[] }).fields));
  return out;
}

const redact = () => compileMasker({ strategy: 'redact' });
const partial = () => compileMasker({ strategy: 'partial' });
const hash = () => compileMasker({ strategy: 'hash' }, { hashKey: KEY });
const nullify = () => compileMasker({ strategy: 'null' });
const detect = (strategy: 'redact' | 'partial' | 'hash' | 'null', ...detectors: string[]) =>
  compileMasker({ strategy, detectors }, { hashKey: KEY });
const int4 = (n: number) => int32(n);
/** Invalid UTF-8 on purpose: a lone continuation byte, an overlong NUL, a truncated sequence. */
const NOT_UTF8 = Buffer.from([0x80, 0xc0, 0x80, 0xff, 0xe2, 0x82, 0x00]);

describe('DataRowRewriter', () => {
  it('returns the same Buffer when no column is masked', () => {
    const row = dataRow([int4(1), 'Ada', NOT_UTF8, null]);
    const rewriter = new DataRowRewriter([undefined, undefined, undefined, undefined], [1, 0, 1, 0], [INT4, TEXT, BYTEA, TEXT]);
    expect(rewriter.active).toBe(false);
    expect(rewriter.rewrite(row)).toBe(row);
  });

  it('masks text columns and leaves the others byte-identical, with correct lengths', () => {
    const row = dataRow([int4(42), 'Ada Lovelace', 'ada@example.com', '078-05-1120', NOT_UTF8]);
    const ssn = redact();
    const email = partial();
    const out = new DataRowRewriter([undefined, undefined, email, ssn, undefined], [1, 0, 0, 0, 1], [INT4, TEXT, TEXT, TEXT, BYTEA]).rewrite(row);
    const fields = parseRow(out);
    expect(fields[0]).toEqual(int4(42));
    expect(fields[1]!.toString()).toBe('Ada Lovelace');
    expect(fields[2]!.toString()).toBe('a***@example.com');
    expect(fields[3]!.toString()).toBe('[REDACTED]');
    expect(fields[4]).toEqual(NOT_UTF8);
    // The untouched stretches are the original bytes: the tail of the message is identical.
    expect(out.subarray(out.length - NOT_UTF8.length - 4).equals(row.subarray(row.length - NOT_UTF8.length - 4))).toBe(true);
    expect(ssn.counts('ssn')).toEqual([{ column: 'ssn', detector: null, count: 1 }]);
    expect(email.counts('email')).toEqual([{ column: 'email', detector: null, count: 1 }]);
    expect(pgProtocolFields(out).slice(1, 4)).toEqual(['Ada Lovelace', 'a***@example.com', '[REDACTED]']);
  });

  it('copies long unmasked stretches around a masked field byte for byte', () => {
    const long = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 37) % 256));
    const row = dataRow([long, 'ada@example.com', long, NOT_UTF8]);
    const out = new DataRowRewriter([undefined, redact(), undefined, undefined], [1, 0, 1, 1], [BYTEA, TEXT, BYTEA, BYTEA]).rewrite(row);
    expect(parseRow(out)).toEqual([long, Buffer.from('[REDACTED]'), long, NOT_UTF8]);
  });

  it('keeps NULL as NULL (uncounted) and turns values into NULL with the null strategy', () => {
    const a = redact();
    const b = nullify();
    const row = dataRow([null, 'secret', null]);
    const out = new DataRowRewriter([a, b, undefined], [0, 0, 0], [TEXT, TEXT, TEXT]).rewrite(row);
    expect(parseRow(out)).toEqual([null, null, null]);
    expect(out.length).toBe(row.length - 'secret'.length);
    expect(a.counts('a')).toEqual([]);
    expect(b.counts('b')).toEqual([{ column: 'b', detector: null, count: 1 }]);
    const allNull = dataRow([null, null, null]);
    expect(new DataRowRewriter([a, b, undefined], [0, 0, 0], [TEXT, TEXT, TEXT]).rewrite(allNull)).toBe(allNull);
  });

  it('masks multi-byte values, counting bytes not characters, and keeps multi-byte text around spans intact', () => {
    const row = dataRow(['Zoë 🚀 Müller-Lüdenscheidt', 'Grüße 🚀 an zoë@exämple.de 🎉', 'tail']);
    const out = new DataRowRewriter([partial(), detect('redact', 'email'), undefined], [0, 0, 0], [TEXT, VARCHAR, TEXT]).rewrite(row);
    expect(texts(out)).toEqual(['*** * ******-********eidt', 'Grüße 🚀 an [REDACTED:email] 🎉', 'tail']);
    expect(pgProtocolFields(out)).toEqual(texts(out));
  });

  it('masks text-like columns in binary format (the same UTF-8 bytes)', () => {
    const row = dataRow([int4(7), Buffer.from('bob@example.com'), Buffer.from('call 415-555-2671')]);
    const out = new DataRowRewriter([undefined, redact(), detect('partial', 'phone')], [1, 1, 1], [INT4, VARCHAR, TEXT]).rewrite(row);
    expect(texts(out).slice(1)).toEqual(['[REDACTED]', 'call ***-***-2671']);
    expect(parseRow(out)[0]).toEqual(int4(7));
  });

  it('makes masked values of types that cannot hold a marker NULL, without reading them', () => {
    const row = dataRow([int4(123456789), Buffer.from('123456789'), NOT_UTF8, Buffer.alloc(16, 0xab)]);
    const maskers = [redact(), partial(), hash(), redact()];
    const out = new DataRowRewriter(maskers, [1, 0, 1, 1], [INT4, INT4, BYTEA, UUID]).rewrite(row);
    expect(parseRow(out)).toEqual([null, null, null, null]);
    expect(out.length).toBe(7 + 4 * 4);
    for (const m of maskers) expect(m.counts('c')).toEqual([{ column: 'c', detector: null, count: 1 }]);
  });

  it('scans non-text types in text format with detectors, NULL only when something matched; binary fails closed', () => {
    const ssnInText = detect('redact', 'us_ssn');
    const match = dataRow(['123456789', '42']);
    const out = new DataRowRewriter([ssnInText, ssnInText], [0, 0], [20, 20]).rewrite(match);
    expect(parseRow(out)).toEqual([null, Buffer.from('42')]);
    expect(ssnInText.counts('n')).toEqual([{ column: 'n', detector: 'us_ssn', count: 1 }]);
    const noMatch = dataRow(['42']);
    expect(new DataRowRewriter([detect('redact', 'us_ssn')], [0], [20]).rewrite(noMatch)).toBe(noMatch);
    const binary = detect('redact', 'us_ssn');
    expect(parseRow(new DataRowRewriter([binary], [1], [20]).rewrite(dataRow([Buffer.alloc(8)])))).toEqual([null]);
    expect(binary.counts('n')).toEqual([{ column: 'n', detector: null, count: 1 }]);
  });

  it('treats types that are not built in as text in text format, and as opaque in binary', () => {
    const row = dataRow(['Jane@Example.com', 'Jane@Example.com']);
    const out = new DataRowRewriter([partial(), partial()], [0, 1], [CITEXT, CITEXT]).rewrite(row);
    expect(texts(out)).toEqual(['J***@Example.com', null]);
  });

  it('writes whole-value json/jsonb replacements as JSON strings, and keeps the jsonb version byte', () => {
    const doc = '{"email":"ada@example.com","n":1}';
    const jsonb = Buffer.concat([Buffer.from([1]), Buffer.from(doc)]);
    const row = dataRow([doc, jsonb, doc, jsonb]);
    const out = new DataRowRewriter([redact(), redact(), hash(), detect('redact', 'email')], [0, 1, 0, 1], [JSON_OID, JSONB, JSONB, JSONB]).rewrite(row);
    const fields = parseRow(out);
    expect(JSON.parse(fields[0]!.toString())).toBe('[REDACTED]');
    expect(fields[1]![0]).toBe(1);
    expect(JSON.parse(fields[1]!.subarray(1).toString())).toBe('[REDACTED]');
    expect(JSON.parse(fields[2]!.toString())).toBe(createHasher(KEY)(doc));
    expect(fields[3]![0]).toBe(1);
    expect(JSON.parse(fields[3]!.subarray(1).toString())).toEqual({ email: '[REDACTED:email]', n: 1 });
  });

  it('makes a jsonb value of an unknown version NULL', () => {
    const masker = detect('redact', 'email');
    const row = dataRow([Buffer.concat([Buffer.from([2]), Buffer.from('"a@example.com"')]), Buffer.alloc(0)]);
    const out = new DataRowRewriter([masker, masker], [1, 1], [JSONB, JSONB]).rewrite(row);
    expect(parseRow(out)).toEqual([null, null]);
  });

  it('leaves the original bytes when a detector finds nothing, even if they are not valid UTF-8', () => {
    const row = dataRow([Buffer.concat([Buffer.from('plain '), NOT_UTF8]), 'x']);
    expect(new DataRowRewriter([detect('redact', 'email', 'phone'), undefined], [0, 0], [TEXT, TEXT]).rewrite(row)).toBe(row);
  });

  it('rewrites rows with zero columns and rows with every column masked', () => {
    const empty = dataRow([]);
    expect(new DataRowRewriter([], [], []).rewrite(empty)).toBe(empty);
    expect(rewriteDataRow(empty, [], [], [])).toBe(empty);
    const row = dataRow(['a@example.com', int4(5), 'x', 'ssn 123-45-6789', '']);
    const out = rewriteDataRow(row, [redact(), hash(), nullify(), detect('partial', 'us_ssn'), redact()], [0, 1, 0, 0, 0], [TEXT, INT4, TEXT, TEXT, TEXT]);
    expect(texts(out)).toEqual(['[REDACTED]', null, null, 'ssn ***-**-6789', '[REDACTED]']);
  });

  it('refuses malformed rows and rows of the wrong width', () => {
    const rewriter = new DataRowRewriter([redact(), undefined], [0, 0], [TEXT, TEXT]);
    const good = dataRow(['a', 'b']);
    const refuses = (message: Buffer, why: RegExp) => expect(() => rewriter.rewrite(message)).toThrow(why);
    refuses(dataRow(['a']), /1 columns, the RowDescription 2/);
    refuses(Buffer.concat([Buffer.from('T'), good.subarray(1)]), /expected a DataRow/);
    refuses(good.subarray(0, good.length - 1), /length field says/);
    const longer = Buffer.concat([good, Buffer.from('zz')]);
    longer.writeInt32BE(longer.length - 1, 1);
    refuses(longer, /2 bytes after its last column/);
    const pastEnd = Buffer.from(good);
    pastEnd.writeInt32BE(100, 7);
    refuses(pastEnd, /column 0 runs past the end/);
    const negative = Buffer.from(good);
    negative.writeInt32BE(-2, 7);
    refuses(negative, /column 0 has length -2/);
    expect(() => rewriter.rewrite(dataRow(['a']))).toThrow(DataRowError);
    expect(() => new DataRowRewriter([redact()], [0, 0], [TEXT])).toThrow(/one of each per column/);
    expect(() => new DataRowRewriter([redact()], [2], [TEXT])).toThrow(/format code 2/);
  });
});

// ── Properties ────────────────────────────────────────────────────────────

const field: fc.Arbitrary<Buffer | null> = fc.oneof(
  fc.constant(null),
  fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  fc.string({ unit: 'grapheme', maxLength: 30 }).map((s) => Buffer.from(s, 'utf8')),
  fc.constantFrom('ada@example.com', 'ssn 123-45-6789', 'call (415) 555-2671', '4111 1111 1111 1111').map((s) => Buffer.from(s)),
);
const OIDS = [TEXT, VARCHAR, INT4, BYTEA, JSON_OID, JSONB, UUID, CITEXT];
const MASKERS: (() => ColumnMasker)[] = [
  redact, partial, hash, nullify,
  () => detect('redact', 'email', 'us_ssn'), () => detect('partial', 'phone', 'payment_card'), () => detect('hash', 'email'), () => detect('null', 'us_ssn'),
];
const column = fc.record({
  value: field,
  format: fc.constantFrom(0, 1),
  oid: fc.constantFrom(...OIDS),
  masker: fc.option(fc.nat(MASKERS.length - 1), { nil: undefined }),
});

describe('DataRowRewriter properties', () => {
  it('with no maskers, every row comes back as the same bytes', () => {
    fc.assert(fc.property(fc.array(column, { maxLength: 12 }), (columns) => {
      const row = dataRow(columns.map((c) => c.value));
      const out = new DataRowRewriter(columns.map(() => undefined), columns.map((c) => c.format), columns.map((c) => c.oid)).rewrite(row);
      expect(out).toBe(row);
    }));
  });

  it('after rewriting, the row parses with the same width and the unmasked columns unchanged', () => {
    fc.assert(fc.property(fc.array(column, { maxLength: 12 }), (columns) => {
      const row = dataRow(columns.map((c) => c.value));
      const before = Buffer.from(row);
      const maskers = columns.map((c) => (c.masker === undefined ? undefined : MASKERS[c.masker]!()));
      const out = new DataRowRewriter(maskers, columns.map((c) => c.format), columns.map((c) => c.oid)).rewrite(row);
      expect(row.equals(before)).toBe(true); // the input is never written to
      const fields = parseRow(out);
      expect(fields).toHaveLength(columns.length);
      columns.forEach((c, i) => {
        if (c.masker === undefined || c.value === null) expect(fields[i]).toEqual(c.value);
      });
      if (out !== row) expect(pgProtocolFields(out)).toHaveLength(columns.length);
    }));
  });

  it('a whole-value redact on a text column is the marker, whatever the value', () => {
    fc.assert(fc.property(fc.array(field, { minLength: 1, maxLength: 6 }), fc.constantFrom(0, 1), (values, format) => {
      const out = new DataRowRewriter(values.map(() => redact()), values.map(() => format), values.map(() => TEXT)).rewrite(dataRow(values));
      expect(texts(out)).toEqual(values.map((v) => (v === null ? null : '[REDACTED]')));
    }));
  });
});
