/**
 * The frontend message parser: round trips of every message type (built with
 * pg-protocol's serializer where it has one, by hand where it does not), fed
 * whole and byte by byte; every malformation with its SQLSTATE; and
 * property-based tests (fast-check) for arbitrary splits and arbitrary bytes.
 */
import fc from 'fast-check';
import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import type { FrontendMessage } from '../../proxies/postgres/protocol/frontend-messages.js';
import {
  FrontendParser, FrontendProtocolError, readPasswordMessage, readSASLInitialResponse, readSASLResponse,
  type FrontendParserOptions,
} from '../../proxies/postgres/protocol/frontend-parser.js';

// ── Building messages by hand ─────────────────────────────────────────────

const int16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const cstr = (s: string) => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
/** A typed message: type byte, Int32 length (counting itself), body. */
const typed = (code: string, ...body: Buffer[]) => {
  const b = Buffer.concat(body);
  return Buffer.concat([Buffer.from(code, 'latin1'), int32(b.length + 4), b]);
};
/** A startup-phase packet: Int32 length (counting itself), body. */
const untyped = (...body: Buffer[]) => {
  const b = Buffer.concat(body);
  return Buffer.concat([int32(b.length + 4), b]);
};
const startupPacket = (params: Record<string, string>, major = 3, minor = 0) =>
  untyped(int32((major << 16) | minor), ...Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]), Buffer.from([0]));
const sslRequest = () => untyped(int32(80877103));
const gssEncRequest = () => untyped(int32(80877104));
const functionCall = (oid: number, formats: number[], args: (Buffer | null)[], resultFormat: number) =>
  typed('F', int32(oid), int16(formats.length), ...formats.map(int16), int16(args.length),
    ...args.flatMap((a) => (a === null ? [int32(-1)] : [int32(a.length), a])), int16(resultFormat));
const STARTUP = startupPacket({ user: 'agent@orders', database: 'orders' });

// ── Feeding ───────────────────────────────────────────────────────────────

function feed(chunks: Buffer[], options?: FrontendParserOptions, parser = new FrontendParser(options)): FrontendMessage[] {
  const out: FrontendMessage[] = [];
  for (const chunk of chunks) parser.parse(chunk, (m) => out.push(m));
  return out;
}
const whole = (bytes: Buffer, options?: FrontendParserOptions) => feed([bytes], options);
const byteByByte = (bytes: Buffer, options?: FrontendParserOptions) =>
  feed(Array.from(bytes, (_, i) => bytes.subarray(i, i + 1)), options);
/** Regular-phase messages: prefix a startup packet, drop its result. */
const regular = (bytes: Buffer, split = false) => (split ? byteByByte : whole)(Buffer.concat([STARTUP, bytes])).slice(1);

function rejects(bytes: Buffer | Buffer[], options?: FrontendParserOptions): FrontendProtocolError {
  try {
    feed(Array.isArray(bytes) ? bytes : [bytes], options);
  } catch (error) {
    expect(error).toBeInstanceOf(FrontendProtocolError);
    return error as FrontendProtocolError;
  }
  throw new Error('expected a FrontendProtocolError');
}
const rejectsRegular = (bytes: Buffer, options?: FrontendParserOptions) => rejects([STARTUP, bytes], options);

// ── Round trips ───────────────────────────────────────────────────────────

describe('startup phase', () => {
  it('parses a StartupMessage from pg-protocol, then switches to typed messages', () => {
    const bytes = Buffer.concat([serialize.startup({ user: 'agent@orders', database: 'orders', application_name: 'psql' }), serialize.query('SELECT 1')]);
    for (const messages of [whole(bytes), byteByByte(bytes)]) {
      expect(messages).toEqual([
        { type: 'startup', majorVersion: 3, minorVersion: 0, parameters: new Map([
          ['user', 'agent@orders'], ['database', 'orders'], ['application_name', 'psql'], ['client_encoding', 'UTF8'],
        ]) },
        { type: 'query', sql: 'SELECT 1' },
      ]);
    }
  });

  it('parses a newer minor version and _pq_ options so the proxy can negotiate', () => {
    expect(whole(startupPacket({ user: 'u', '_pq_.test': 'x' }, 3, 2))).toEqual([
      { type: 'startup', majorVersion: 3, minorVersion: 2, parameters: new Map([['user', 'u'], ['_pq_.test', 'x']]) },
    ]);
  });

  it('parses an empty parameter list and non-ASCII UTF-8 values', () => {
    expect(whole(startupPacket({}))).toEqual([{ type: 'startup', majorVersion: 3, minorVersion: 0, parameters: new Map() }]);
    expect(whole(startupPacket({ application_name: 'Zoë 🐘' }))[0]).toMatchObject({ parameters: new Map([['application_name', 'Zoë 🐘']]) });
  });

  it('SSLRequest (pg-protocol) and GSSENCRequest keep the startup phase', () => {
    const parser = new FrontendParser();
    expect(feed([serialize.requestSsl()], {}, parser)).toEqual([{ type: 'sslRequest' }]);
    expect(parser.phase).toBe('startup');
    expect(feed([gssEncRequest()], {}, parser)).toEqual([{ type: 'gssEncRequest' }]);
    expect(feed([STARTUP], {}, parser)[0]).toMatchObject({ type: 'startup' });
    expect(parser.phase).toBe('regular');
  });

  it('CancelRequest (pg-protocol, and a 3.2 long key) ends the conversation', () => {
    const parser = new FrontendParser();
    expect(feed([serialize.cancel(4242, -559038737)], {}, parser)).toEqual([
      { type: 'cancelRequest', processId: 4242, secretKey: Buffer.from('deadbeef', 'hex') },
    ]);
    expect(parser.phase).toBe('cancel');
    expect(() => parser.parse(Buffer.from([0]), () => {})).toThrow(/after CancelRequest/);
    const key = Buffer.alloc(32, 7);
    expect(byteByByte(untyped(int32(80877102), int32(7), key))).toEqual([{ type: 'cancelRequest', processId: 7, secretKey: key }]);
  });
});

describe('regular messages round-trip (whole and byte by byte)', () => {
  const binary = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 0xc0, 0]);
  const cases: [string, Buffer, FrontendMessage[]][] = [
    ['Query', serialize.query('SELECT * FROM orders; SELECT 1'), [{ type: 'query', sql: 'SELECT * FROM orders; SELECT 1' }]],
    ['Query (empty)', serialize.query(''), [{ type: 'query', sql: '' }]],
    ['Parse', serialize.parse({ name: 's1', text: 'SELECT $1::int, $2', types: [23, 4294967295] }),
      [{ type: 'parse', name: 's1', sql: 'SELECT $1::int, $2', paramTypes: [23, 4294967295] }]],
    ['Parse (unnamed, no types)', serialize.parse({ text: 'SELECT 1' }), [{ type: 'parse', name: '', sql: 'SELECT 1', paramTypes: [] }]],
    ['Bind', serialize.bind({ portal: 'p1', statement: 's1', values: ['42', null, binary, ''], binary: true }),
      [{ type: 'bind', portal: 'p1', statement: 's1', paramFormats: [0, 0, 1, 0], params: [Buffer.from('42'), null, binary, Buffer.alloc(0)], resultFormats: [1] }]],
    ['Bind (no values)', serialize.bind(), [{ type: 'bind', portal: '', statement: '', paramFormats: [], params: [], resultFormats: [0] }]],
    ['Bind (one format for all, none for results)', typed('B', cstr(''), cstr('s'), int16(1), int16(1), int16(2), int32(1), Buffer.from([9]), int32(-1), int16(0)),
      [{ type: 'bind', portal: '', statement: 's', paramFormats: [1], params: [Buffer.from([9]), null], resultFormats: [] }]],
    ['Describe portal', serialize.describe({ type: 'P', name: 'p1' }), [{ type: 'describe', target: 'P', name: 'p1' }]],
    ['Describe statement', serialize.describe({ type: 'S' }), [{ type: 'describe', target: 'S', name: '' }]],
    ['Execute', serialize.execute({ portal: 'p1', rows: 100 }), [{ type: 'execute', portal: 'p1', maxRows: 100 }]],
    ['Execute (unnamed, all rows)', serialize.execute(), [{ type: 'execute', portal: '', maxRows: 0 }]],
    ['Sync', serialize.sync(), [{ type: 'sync' }]],
    ['Flush', serialize.flush(), [{ type: 'flush' }]],
    ['Close statement', serialize.close({ type: 'S', name: 's1' }), [{ type: 'close', target: 'S', name: 's1' }]],
    ['Close portal', serialize.close({ type: 'P' }), [{ type: 'close', target: 'P', name: '' }]],
    ['Terminate', serialize.end(), [{ type: 'terminate' }]],
    ['PasswordMessage', serialize.password('eyJhbGciOi.x.y'), [{ type: 'authenticationResponse', data: cstr('eyJhbGciOi.x.y') }]],
    ['FunctionCall', functionCall(1598, [1], [binary, null], 1),
      [{ type: 'functionCall', functionOid: 1598, argFormats: [1], args: [binary, null], resultFormat: 1 }]],
    ['CopyData', serialize.copyData(binary), [{ type: 'copyData', data: binary }]],
    ['CopyData (empty)', serialize.copyData(Buffer.alloc(0)), [{ type: 'copyData', data: Buffer.alloc(0) }]],
    ['CopyDone', serialize.copyDone(), [{ type: 'copyDone' }]],
    ['CopyFail', serialize.copyFail('client gave up ✋'), [{ type: 'copyFail', message: 'client gave up ✋' }]],
  ];
  for (const [name, bytes, expected] of cases) {
    it(name, () => {
      expect(regular(bytes)).toEqual(expected);
      expect(regular(bytes, true)).toEqual(expected);
    });
  }

  it('a pipeline of all of them in one chunk, in order', () => {
    const all = Buffer.concat(cases.map(([, bytes]) => bytes));
    expect(regular(all)).toEqual(cases.flatMap(([, , expected]) => expected));
  });

  it('Bind values are byte-exact views, not re-encoded (all 256 byte values)', () => {
    const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const [bind] = regular(serialize.bind({ values: [every] }));
    expect(bind).toMatchObject({ type: 'bind' });
    const value = (bind as { params: Buffer[] }).params[0]!;
    expect(value.equals(every)).toBe(true);
  });
});

describe("reading the 'p' message once the auth state is known", () => {
  const p = (bytes: Buffer) => regular(bytes)[0] as Extract<FrontendMessage, { type: 'authenticationResponse' }>;
  it('PasswordMessage', () => {
    expect(readPasswordMessage(p(serialize.password('token.jwt.sig')))).toBe('token.jwt.sig');
    expect(() => readPasswordMessage(p(typed('p', Buffer.from('no-nul'))))).toThrow(FrontendProtocolError);
    expect(() => readPasswordMessage(p(typed('p', cstr('a'), Buffer.from('x'))))).toThrow(/trailing/);
  });
  it('SASLInitialResponse and SASLResponse', () => {
    expect(readSASLInitialResponse(p(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', 'n,,n=,r=abc')))).toEqual({
      mechanism: 'SCRAM-SHA-256', response: Buffer.from('n,,n=,r=abc'),
    });
    expect(readSASLInitialResponse(p(typed('p', cstr('SCRAM-SHA-256'), int32(-1))))).toEqual({ mechanism: 'SCRAM-SHA-256', response: null });
    expect(() => readSASLInitialResponse(p(typed('p', cstr('SCRAM-SHA-256'), int32(5), Buffer.from('abc'))))).toThrow(/does not match/);
    expect(readSASLResponse(p(serialize.sendSCRAMClientFinalMessage('c=biws,r=abc,p=xyz')))).toEqual(Buffer.from('c=biws,r=abc,p=xyz'));
  });
});

// ── Malformations ─────────────────────────────────────────────────────────

describe('malformed input is a FrontendProtocolError with a SQLSTATE', () => {
  const cases: [string, () => FrontendProtocolError, string, RegExp][] = [
    ['unknown type byte', () => rejectsRegular(typed('Z', Buffer.alloc(0))), '08P01', /invalid frontend message type 'Z'/],
    ['unknown type byte, rejected before its length arrives', () => rejectsRegular(Buffer.from([0x01])), '08P01', /type 0x01/],
    ['length < 4', () => rejectsRegular(Buffer.concat([Buffer.from('Q'), int32(3)])), '08P01', /invalid length 3 of Query/],
    ['negative length', () => rejectsRegular(Buffer.concat([Buffer.from('d'), int32(-1)])), '08P01', /invalid length -1/],
    ['length over the maximum, refused at the header', () => rejectsRegular(Buffer.concat([Buffer.from('d'), int32(1025)]), { maxMessageSize: 1024 }),
      '54000', /CopyData message of 1025 bytes exceeds the maximum of 1024/],
    ['default maximum is 1 MiB', () => rejectsRegular(Buffer.concat([Buffer.from('Q'), int32(1024 * 1024 + 1)])), '54000', /exceeds/],
    ['startup length < 8', () => rejects(int32(7)), '08P01', /invalid length 7 of startup packet/],
    ['startup too large', () => rejects(Buffer.concat([int32(10_001), int32(196608)])), '54000', /startup packet of 10001 bytes/],
    ['protocol 2.0', () => rejects(startupPacket({ user: 'u' }, 2, 0)), '0A000', /unsupported frontend protocol 2\.0/],
    ['unknown 1234.x request code', () => rejects(untyped(int32((1234 << 16) | 5681))), '0A000', /1234\.5681/],
    ['startup without the final NUL', () => rejects(untyped(int32(196608), cstr('user'), cstr('u'))), '08P01', /no final NUL/],
    ['startup value without NUL', () => rejects(untyped(int32(196608), cstr('user'), Buffer.from('u'))), '08P01', /value of parameter "user" has no NUL/],
    ['startup bytes after the terminator', () => rejects(untyped(int32(196608), Buffer.from([0, 0x41]))), '08P01', /1 unexpected trailing/],
    ['startup parameter given twice', () => rejects(untyped(int32(196608), cstr('user'), cstr('a'), cstr('user'), cstr('b'), Buffer.from([0]))), '08P01', /"user" given twice/],
    ['SSLRequest with a body', () => rejects(untyped(int32(80877103), int32(0))), '08P01', /SSLRequest has length 12/],
    ['plaintext bytes behind an SSLRequest', () => rejects(Buffer.concat([sslRequest(), STARTUP])), '08P01', /unencrypted byte\(s\) followed SSLRequest/],
    ['plaintext bytes behind a GSSENCRequest', () => rejects(Buffer.concat([gssEncRequest(), Buffer.from('x')])), '08P01', /followed GSSENCRequest/],
    ['SSLRequest twice', () => rejects([sslRequest(), sslRequest()]), '08P01', /SSLRequest sent twice/],
    ['CancelRequest too short', () => rejects(untyped(int32(80877102), int32(1))), '08P01', /CancelRequest has length 12/],
    ['CancelRequest key too long', () => rejects(untyped(int32(80877102), int32(1), Buffer.alloc(257))), '08P01', /CancelRequest has length 269/],
    ['Query without NUL', () => rejectsRegular(typed('Q', Buffer.from('SELECT 1'))), '08P01', /Query message: query string has no NUL/],
    ['Query with trailing bytes', () => rejectsRegular(typed('Q', cstr('SELECT 1'), Buffer.from('x'))), '08P01', /Query message has 1 unexpected trailing/],
    ['Query not UTF-8', () => rejectsRegular(typed('Q', Buffer.from([0x53, 0xff, 0xfe, 0]))), '22021', /Query message: query string is not valid UTF-8/],
    ['NUL terminator found only in the next message', () => rejectsRegular(Buffer.concat([typed('Q', Buffer.from('x')), serialize.query('y')])), '08P01', /no NUL/],
    ['Sync with a body', () => rejectsRegular(typed('S', Buffer.from([0]))), '08P01', /Sync message has 1 unexpected trailing/],
    ['Terminate with a body', () => rejectsRegular(typed('X', Buffer.from([0, 0]))), '08P01', /Terminate message has 2/],
    ['Parse with a negative type count', () => rejectsRegular(typed('P', cstr(''), cstr('SELECT 1'), int16(-1))), '08P01', /parameter type count is negative/],
    ['Parse with a type count that does not fit', () => rejectsRegular(typed('P', cstr(''), cstr('SELECT $1'), int16(2), int32(23))), '08P01', /count \(2\) does not fit/],
    ['Parse cut inside the count', () => rejectsRegular(typed('P', cstr(''), cstr('SELECT 1'), Buffer.from([0]))), '08P01', /parameter type count runs past the end/],
    ['Bind value past the end', () => rejectsRegular(typed('B', cstr(''), cstr(''), int16(0), int16(1), int32(10), Buffer.from('abc'), int16(0))), '08P01', /parameter 1 runs past the end/],
    ['Bind value length -2', () => rejectsRegular(typed('B', cstr(''), cstr(''), int16(0), int16(1), int32(-2), int16(0))), '08P01', /parameter 1 has invalid length -2/],
    ['Bind format count mismatch', () => rejectsRegular(typed('B', cstr(''), cstr(''), int16(2), int16(0), int16(0), int16(3), int32(-1), int32(-1), int32(-1), int16(0))), '08P01', /2 parameter formats but 3 parameters/],
    ['Bind format code 2', () => rejectsRegular(typed('B', cstr(''), cstr(''), int16(1), int16(2), int16(0), int16(0))), '08P01', /parameter format is 2/],
    ['Bind missing result formats', () => rejectsRegular(typed('B', cstr(''), cstr(''), int16(0), int16(0))), '08P01', /result format count runs past/],
    ['Bind with trailing bytes', () => rejectsRegular(typed('B', cstr(''), cstr(''), int16(0), int16(0), int16(0), Buffer.from([1]))), '08P01', /Bind message has 1 unexpected trailing/],
    ['Describe of something else', () => rejectsRegular(typed('D', Buffer.from('Xname\0'))), '08P01', /target is 'X' \(0x58\), must be 'S' or 'P'/],
    ['Close without a target', () => rejectsRegular(typed('C')), '08P01', /Close message: target runs past/],
    ['Execute without a row limit', () => rejectsRegular(typed('E', cstr(''))), '08P01', /Execute message: row limit runs past/],
    ['FunctionCall without a result format', () => rejectsRegular(typed('F', int32(1), int16(0), int16(0))), '08P01', /FunctionCall message: result format runs past/],
    ['FunctionCall format mismatch', () => rejectsRegular(functionCall(1, [0, 0], [null], 0)), '08P01', /2 argument formats but 1 arguments/],
    ['CopyFail without NUL', () => rejectsRegular(typed('f', Buffer.from('oops'))), '08P01', /CopyFail message: error message has no NUL/],
    ['a startup packet where a typed message belongs', () => rejectsRegular(STARTUP), '08P01', /invalid frontend message type 0x00/],
  ];
  for (const [name, run, sqlState, message] of cases) {
    it(name, () => {
      const error = run();
      expect(error.sqlState).toBe(sqlState);
      expect(error.message).toMatch(message);
    });
  }

  it('messages before the bad one are delivered; afterwards the parser stays failed', () => {
    const parser = new FrontendParser();
    const out: FrontendMessage[] = [];
    const bad = Buffer.concat([STARTUP, serialize.query('SELECT 1'), typed('Z')]);
    expect(() => parser.parse(bad, (m) => out.push(m))).toThrow(FrontendProtocolError);
    expect(out.map((m) => m.type)).toEqual(['startup', 'query']);
    expect(() => parser.parse(serialize.sync(), (m) => out.push(m))).toThrow(/invalid frontend message type 'Z'/);
    expect(out).toHaveLength(2);
  });

  it('an oversized message split across chunks is refused as soon as its header is complete', () => {
    const parser = new FrontendParser({ maxMessageSize: 100 });
    parser.parse(STARTUP, () => {});
    parser.parse(Buffer.from([0x64, 0, 0]), () => {});
    expect(parser.bufferedBytes).toBe(3);
    expect(() => parser.parse(Buffer.from([0x10, 0]), () => {})).toThrow(/exceeds the maximum of 100/);
  });

  it('a message exactly at the maximum is accepted', () => {
    const data = Buffer.alloc(96, 1);
    expect(feed([STARTUP, serialize.copyData(data)], { maxMessageSize: 100 })[1]).toEqual({ type: 'copyData', data });
  });
});

// ── Properties ────────────────────────────────────────────────────────────

/** Text without NUL (cstrings cannot hold one); any code point, including astral ones. */
const text = fc.string({ unit: 'binary', maxLength: 40 }).map((s) => s.replaceAll('\0', ''));
const name = fc.string({ unit: 'grapheme-ascii', maxLength: 12 }).map((s) => s.replaceAll('\0', ''));
const bytes = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));
const format = fc.constantFrom<0 | 1>(0, 1);

type Built = { bytes: Buffer; expected: FrontendMessage };
const built = (bytes: Buffer, expected: FrontendMessage): Built => ({ bytes, expected });

/** One valid regular message and what it must parse to. pg-protocol builds those it can. */
const regularMessage: fc.Arbitrary<Built> = fc.oneof(
  text.map((sql) => built(serialize.query(sql), { type: 'query', sql })),
  fc.record({ name, sql: text, types: fc.array(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { maxLength: 5 }) })
    .map(({ name, sql, types }) => built(serialize.parse({ name, text: sql, types }), { type: 'parse', name, sql, paramTypes: types })),
  fc.record({ portal: name, statement: name, values: fc.array(fc.oneof(fc.constant(null), text, bytes), { maxLength: 5 }), binary: fc.boolean() })
    .map(({ portal, statement, values, binary }) => built(serialize.bind({ portal, statement, values, binary }), {
      type: 'bind', portal, statement,
      paramFormats: values.map((v) => (Buffer.isBuffer(v) ? 1 : 0)),
      params: values.map((v) => (v === null ? null : Buffer.isBuffer(v) ? v : Buffer.from(v))),
      resultFormats: [binary ? 1 : 0],
    })),
  fc.record({ target: fc.constantFrom<'S' | 'P'>('S', 'P'), name, close: fc.boolean() }).map(({ target, name, close }) =>
    built(close ? serialize.close({ type: target, name }) : serialize.describe({ type: target, name }), { type: close ? 'close' : 'describe', target, name })),
  fc.record({ portal: name, rows: fc.integer({ min: 0, max: 2 ** 31 - 1 }) })
    .map(({ portal, rows }) => built(serialize.execute({ portal, rows }), { type: 'execute', portal, maxRows: rows })),
  fc.constantFrom<Built>(
    built(serialize.sync(), { type: 'sync' }), built(serialize.flush(), { type: 'flush' }),
    built(serialize.end(), { type: 'terminate' }), built(serialize.copyDone(), { type: 'copyDone' })),
  text.map((password) => built(serialize.password(password), { type: 'authenticationResponse', data: cstr(password) })),
  bytes.map((data) => built(serialize.copyData(data), { type: 'copyData', data })),
  text.map((message) => built(serialize.copyFail(message), { type: 'copyFail', message })),
  fc.record({ oid: fc.integer({ min: 0, max: 2 ** 32 - 1 }), args: fc.array(fc.oneof(fc.constant(null), bytes), { maxLength: 4 }), perArg: fc.boolean(), resultFormat: format })
    .chain(({ oid, args, perArg, resultFormat }) => fc.array(format, { minLength: perArg ? args.length : 0, maxLength: perArg ? args.length : 1 })
      .map((formats) => built(functionCall(oid >> 0, formats, args, resultFormat),
        { type: 'functionCall', functionOid: oid, argFormats: formats, args, resultFormat }))),
);

const startupMessage: fc.Arbitrary<Built> = fc.dictionary(name.filter((k) => k !== '' && k !== 'client_encoding'), text, { maxKeys: 5 })
  .map((params) => built(serialize.startup(params), {
    type: 'startup', majorVersion: 3, minorVersion: 0,
    parameters: new Map([...Object.entries(params), ['client_encoding', 'UTF8']]),
  }));

/** A whole conversation: optionally SSLRequest (answered 'N'), a StartupMessage, then regular messages. */
const conversation = fc.record({ ssl: fc.boolean(), startup: startupMessage, messages: fc.array(regularMessage, { maxLength: 12 }) });

/** Cut `bytes` at arbitrary points (given as fractions, so shrinking stays meaningful). */
const cutAt = (bytes: Buffer, cuts: number[]): Buffer[] => {
  const points = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    chunks.push(bytes.subarray(from, p));
    from = p;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
};
const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 20 });

describe('properties', () => {
  it('(a) any sequence of valid messages split at arbitrary points parses to the same messages', () => {
    fc.assert(fc.property(conversation, cuts, ({ ssl, startup, messages }, at) => {
      const parser = new FrontendParser();
      const out: FrontendMessage[] = [];
      if (ssl) parser.parse(serialize.requestSsl(), (m) => out.push(m));
      const stream = Buffer.concat([startup.bytes, ...messages.map((m) => m.bytes)]);
      for (const chunk of cutAt(stream, at)) parser.parse(chunk, (m) => out.push(m));
      expect(out).toEqual([...(ssl ? [{ type: 'sslRequest' }] : []), startup.expected, ...messages.map((m) => m.expected)]);
      expect(parser.bufferedBytes).toBe(0);
    }), { numRuns: 2000 });
  });

  /** Feeds chunks; returns normally or throws only FrontendProtocolError (fast-check reports anything else). */
  const survives = (prefix: Buffer[], chunks: Buffer[]) => {
    const parser = new FrontendParser({ maxMessageSize: 4096 });
    let delivered = 0;
    try {
      for (const chunk of [...prefix, ...chunks]) parser.parse(chunk, () => { delivered++; });
    } catch (error) {
      if (!(error instanceof FrontendProtocolError)) throw error;
      expect(error.sqlState).toMatch(/^(08P01|54000|0A000|22021)$/);
      expect(() => parser.parse(Buffer.from([0]), () => {})).toThrow(error);
    }
    return delivered;
  };

  it('(b) arbitrary bytes, in either phase, only ever give messages or a FrontendProtocolError', () => {
    const garbage = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a));
    fc.assert(fc.property(fc.boolean(), garbage, cuts, (afterStartup, input, at) => {
      survives(afterStartup ? [STARTUP] : [], cutAt(input, at));
    }), { numRuns: 20_000 });
  });

  it('(b) mutated valid conversations (flipped, inserted, deleted bytes) only give messages or a FrontendProtocolError', () => {
    const mutation = fc.record({ at: fc.double({ min: 0, max: 1, noNaN: true }), kind: fc.constantFrom('flip', 'insert', 'delete', 'truncate'), byte: fc.integer({ min: 0, max: 255 }) });
    fc.assert(fc.property(conversation, fc.array(mutation, { minLength: 1, maxLength: 4 }), cuts, ({ startup, messages }, mutations, at) => {
      let stream = Buffer.concat([startup.bytes, ...messages.map((m) => m.bytes)]);
      for (const { at: where, kind, byte } of mutations) {
        const i = Math.min(stream.length - 1, Math.floor(where * stream.length));
        if (kind === 'flip') { stream = Buffer.from(stream); stream[i] = byte; }
        else if (kind === 'insert') stream = Buffer.concat([stream.subarray(0, i), Buffer.from([byte]), stream.subarray(i)]);
        else if (kind === 'delete') stream = Buffer.concat([stream.subarray(0, i), stream.subarray(i + 1)]);
        else stream = stream.subarray(0, i);
      }
      survives([], cutAt(stream, at));
    }), { numRuns: 10_000 });
  });
});
