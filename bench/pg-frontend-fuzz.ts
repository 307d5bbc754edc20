// make bench-pg-fuzz: the PostgreSQL frontend parser under 1M generated inputs.
//
// Fuzz: INPUTS (default 1,000,000) inputs generated with fast-check in
// batches: valid conversations (pg-protocol's serializer), the same with
// bytes flipped / inserted / deleted / cut off, and random bytes, each split
// into random chunks and fed to a fresh parser, half of them after a valid
// StartupMessage. The only allowed outcomes are messages or a
// FrontendProtocolError; anything else stops the run with the input in hex
// (add it to tests/unit/pg-frontend-parser.test.ts as a regression).
//
// Peer, same run: pg-protocol's backend Parser (what node-postgres uses for
// the other direction, same design) on a valid backend stream of the same
// size as a valid frontend stream, both in 64 KiB chunks (MB/s). It is not
// fed the fuzz inputs: it has no size limit and no length checks, and on
// this garbage it ran for over 10 minutes without finishing 10,000 inputs.
import fc from 'fast-check';
import { serialize } from 'pg-protocol';
import { Parser as BackendParser } from 'pg-protocol/dist/parser.js';
import { FrontendParser, FrontendProtocolError } from '../proxies/postgres/protocol/frontend-parser.js';

const INPUTS = Number(process.env.INPUTS ?? 1_000_000);
const BATCH = 10_000;
const SEED = Number(process.env.SEED ?? Date.now() % 2 ** 31);

const text = fc.string({ unit: 'binary', maxLength: 24 }).map((s) => s.replaceAll('\0', ''));
const bytes = fc.uint8Array({ maxLength: 48 }).map((a) => Buffer.from(a));
const message: fc.Arbitrary<Buffer> = fc.oneof(
  text.map((sql) => serialize.query(sql)),
  fc.record({ name: text, sql: text, types: fc.array(fc.nat(), { maxLength: 3 }) }).map(({ name, sql, types }) => serialize.parse({ name, text: sql, types })),
  fc.record({ portal: text, values: fc.array(fc.oneof(fc.constant(null), text, bytes), { maxLength: 4 }), binary: fc.boolean() })
    .map(({ portal, values, binary }) => serialize.bind({ portal, values, binary })),
  fc.record({ type: fc.constantFrom<'S' | 'P'>('S', 'P'), name: text }).map((o) => serialize.describe(o)),
  fc.record({ type: fc.constantFrom<'S' | 'P'>('S', 'P'), name: text }).map((o) => serialize.close(o)),
  fc.record({ portal: text, rows: fc.nat() }).map((o) => serialize.execute(o)),
  fc.constantFrom(serialize.sync(), serialize.flush(), serialize.end(), serialize.copyDone()),
  text.map((p) => serialize.password(p)),
  bytes.map((d) => serialize.copyData(d)),
  text.map((m) => serialize.copyFail(m)),
);
const startup = serialize.startup({ user: 'agent@orders', database: 'orders' });

interface Input { chunks: Buffer[]; afterStartup: boolean }
const input: fc.Arbitrary<Input> = fc.record({
  mode: fc.constantFrom('valid', 'mutated', 'mutated', 'random'),
  afterStartup: fc.boolean(),
  messages: fc.array(message, { maxLength: 6 }),
  random: fc.uint8Array({ maxLength: 160 }),
  mutations: fc.array(fc.record({ at: fc.nat(), kind: fc.nat(3), byte: fc.nat(255) }), { minLength: 1, maxLength: 3 }),
  cuts: fc.array(fc.nat(), { maxLength: 4 }),
}).map(({ mode, afterStartup, messages, random, mutations, cuts }) => {
  let stream = mode === 'random' ? Buffer.from(random) : Buffer.concat(afterStartup ? messages : [startup, ...messages]);
  if (mode === 'mutated' && stream.length > 0) {
    for (const { at, kind, byte } of mutations) {
      const i = at % Math.max(1, stream.length);
      if (kind === 0) { stream = Buffer.from(stream); stream[i] = byte; }
      else if (kind === 1) stream = Buffer.concat([stream.subarray(0, i), Buffer.from([byte]), stream.subarray(i)]);
      else if (kind === 2) stream = Buffer.concat([stream.subarray(0, i), stream.subarray(i + 1)]);
      else stream = stream.subarray(0, i);
    }
  }
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of points) { chunks.push(stream.subarray(from, p)); from = p; }
  chunks.push(stream.subarray(from));
  return { chunks, afterStartup };
});

// ── Fuzz ──────────────────────────────────────────────────────────────────

const outcomes = new Map<string, number>();
let messages = 0;
let volume = 0;
let frontendNs = 0n;
let generateNs = 0n;
const count = (key: string) => outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
const onMessage = () => { messages++; };
let backendMessages = 0;
const onBackend = () => { backendMessages++; };

for (let done = 0; done < INPUTS; done += BATCH) {
  const g0 = process.hrtime.bigint();
  const batch = fc.sample(input, { numRuns: Math.min(BATCH, INPUTS - done), seed: SEED + done });
  generateNs += process.hrtime.bigint() - g0;
  for (const { chunks } of batch) for (const c of chunks) volume += c.length;

  const t0 = process.hrtime.bigint();
  for (const { chunks, afterStartup } of batch) {
    const parser = new FrontendParser();
    try {
      if (afterStartup) parser.parse(startup, onMessage);
      for (const chunk of chunks) parser.parse(chunk, onMessage);
      count('ok');
    } catch (error) {
      if (!(error instanceof FrontendProtocolError)) {
        console.error(`non-protocol error (seed ${SEED}):`, error);
        console.error('afterStartup:', afterStartup, 'chunks:', chunks.map((c) => c.toString('hex')));
        process.exit(1);
      }
      count(error.sqlState);
    }
  }
  frontendNs += process.hrtime.bigint() - t0;
}

const seconds = (ns: bigint) => Number(ns) / 1e9;
const mb = volume / 1e6;
console.log(`fuzz: ${INPUTS.toLocaleString()} inputs, ${mb.toFixed(1)} MB, seed ${SEED} (generation ${seconds(generateNs).toFixed(1)} s, not timed)`);
console.log(`  outcomes: ${[...outcomes].map(([k, v]) => `${k} ${v.toLocaleString()}`).join(', ')}; ${messages.toLocaleString()} messages parsed`);
console.log(`  gatehouse FrontendParser        ${(INPUTS / seconds(frontendNs)).toFixed(0).padStart(10)} inputs/s  ${(mb / seconds(frontendNs)).toFixed(1).padStart(7)} MB/s`);

// ── Valid streams, each parser in its own direction ───────────────────────

const TARGET_BYTES = 64 * 1024 * 1024;
const CHUNK = 64 * 1024;

function repeatTo(unit: Buffer): Buffer {
  return Buffer.concat(Array.from({ length: Math.ceil(TARGET_BYTES / unit.length) }, () => unit));
}
function chunked(stream: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < stream.length; i += CHUNK) out.push(stream.subarray(i, i + CHUNK));
  return out;
}

// Frontend: an extended-protocol round trip with text and binary parameters, plus a simple query.
const frontendUnit = Buffer.concat([
  serialize.parse({ name: '', text: 'SELECT id, email, total FROM orders WHERE customer_id = $1 AND status = $2', types: [23, 25] }),
  serialize.bind({ values: ['4711', 'shipped', Buffer.from([0, 0, 0, 42])], binary: true }),
  serialize.describe({ type: 'P' }),
  serialize.execute(),
  serialize.sync(),
  serialize.query('SELECT count(*) FROM orders'),
]);

// Backend: RowDescription (3 columns), 5 DataRows, CommandComplete, ReadyForQuery.
const int16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const cstr = (s: string) => Buffer.from(`${s}\0`);
const backend = (code: string, ...body: Buffer[]) => { const b = Buffer.concat(body); return Buffer.concat([Buffer.from(code), int32(b.length + 4), b]); };
const field = (name: string, oid: number) => Buffer.concat([cstr(name), int32(16384), int16(1), int32(oid), int16(-1), int32(-1), int16(0)]);
const row = (...values: string[]) => backend('D', int16(values.length), ...values.flatMap((v) => [int32(Buffer.byteLength(v)), Buffer.from(v)]));
const backendUnit = Buffer.concat([
  backend('T', int16(3), field('id', 23), field('email', 25), field('total', 1700)),
  ...Array.from({ length: 5 }, (_, i) => row(String(1000 + i), `customer${i}@example.com`, '129.95')),
  backend('C', cstr('SELECT 5')),
  backend('Z', Buffer.from('I')),
]);

function throughput(run: () => void): number {
  run(); // warm-up
  const runs = 5;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) run();
  return (runs * TARGET_BYTES) / 1e6 / seconds(process.hrtime.bigint() - t0);
}
const frontendChunks = chunked(repeatTo(frontendUnit).subarray(0, TARGET_BYTES));
const backendChunks = chunked(repeatTo(backendUnit).subarray(0, TARGET_BYTES));
const frontendMBs = throughput(() => {
  const parser = new FrontendParser();
  parser.parse(startup, onMessage);
  for (const c of frontendChunks) parser.parse(c, onMessage);
});
const backendMBs = throughput(() => {
  const parser = new BackendParser();
  for (const c of backendChunks) parser.parse(c, onBackend);
});
console.log(`valid streams, ${TARGET_BYTES / 1024 / 1024} MiB in ${CHUNK / 1024} KiB chunks:`);
console.log(`  gatehouse FrontendParser (Parse/Bind/Describe/Execute/Sync + Query)  ${frontendMBs.toFixed(0).padStart(6)} MB/s`);
console.log(`  pg-protocol backend Parser (RowDescription/DataRow×5/Complete/Ready)  ${backendMBs.toFixed(0).padStart(6)} MB/s`);
console.log(`  ratio: ${(frontendMBs / backendMBs).toFixed(2)}x (${backendMessages.toLocaleString()} backend messages)`);
