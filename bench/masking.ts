// make bench-masking: DataRow masking throughput (design target: ≥ 200k rows/s
// with 2 of 6 columns masked).
//
// A result of ROWS (default 500,000) DataRows, 6 columns: id int4 (binary),
// name, email, ssn, notes (free text, 1 in 4 with an email, phone, card or
// SSN in it), created_at (all text), back to back in one Buffer as they come
// off the socket. Each path walks the framing, hands every message to the
// rewriter (or not) and copies the result into an output buffer, which is
// what the proxy's relay does before writing to the client.
//
// Peer, same run: the same rows forwarded without masking (the path every
// unmasked statement takes). Then, as its own line, the notes column masked
// with all nine detectors, which is the expensive kind of rule.
import { compileMasker, type ColumnMasker } from '../engine/masking/masker.js';
import { DETECTOR_NAMES } from '../engine/masking/detectors.js';
import { DataRowRewriter } from '../proxies/postgres/protocol/data-row.js';

const ROWS = Number(process.env.ROWS ?? 500_000);
const RUNS = Number(process.env.RUNS ?? 5);
const TARGET_ROWS_PER_SECOND = 200_000;
const INT4 = 23, TEXT = 25, TIMESTAMPTZ_AS_TEXT = 25;

// ── The result ────────────────────────────────────────────────────────────

let seed = 42;
const random = () => { seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff; return seed / 0x80000000; };
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const digits = (n: number) => Array.from({ length: n }, () => Math.floor(random() * 10)).join('');

const FIRST = ['Ada', 'Grace', 'Alan', 'Zoë', 'Linus', 'Barbara', 'Dennis', 'Margaret', 'Ken', 'Frances'];
const LAST = ['Lovelace', 'Hopper', 'Turing', 'Müller', 'Torvalds', 'Liskov', 'Ritchie', 'Hamilton', 'Thompson', 'Allen'];
const PLAIN = [
  'Asked about the delivery window for order #48213; promised a callback tomorrow.',
  'Upgraded to the annual plan after the trial, no issues reported.',
  'Package arrived damaged, replacement shipped 2024-06-30 via ground.',
  'Wants invoices in PDF and the VAT number on every page.',
];
const WITH_PII = [
  (e: string) => `Prefers contact via ${e} after 5pm, not by phone.`,
  () => `Called from (415) 555-${digits(4)} about a refund of $129.95.`,
  () => 'Paid with card 4111 1111 1111 1111, receipt sent by post.',
  () => `Identity verified on the phone, SSN 123-45-${String(1000 + Math.floor(random() * 8999))} on file.`,
];

function field(value: string | Buffer): Buffer[] {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const len = Buffer.alloc(4);
  len.writeInt32BE(bytes.length);
  return [len, bytes];
}
function dataRow(values: (string | Buffer)[]): Buffer {
  const body = Buffer.concat([Buffer.from([0, values.length]), ...values.flatMap(field)]);
  const head = Buffer.alloc(5);
  head[0] = 0x44;
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const rows: Buffer[] = [];
let notesWithPii = 0;
for (let i = 0; i < ROWS; i++) {
  const id = Buffer.alloc(4);
  id.writeInt32BE(i + 1);
  const first = pick(FIRST);
  const last = pick(LAST);
  const email = `${first.toLowerCase()}.${last.toLowerCase()}${i}@example.com`;
  const pii = random() < 0.25;
  if (pii) notesWithPii++;
  const notes = pii ? pick(WITH_PII)(email) : pick(PLAIN);
  const ssn = `${100 + Math.floor(random() * 565)}-${10 + Math.floor(random() * 89)}-${1000 + Math.floor(random() * 8999)}`;
  rows.push(dataRow([id, `${first} ${last}`, email, ssn, notes, `2024-06-${String(1 + (i % 28)).padStart(2, '0')} 10:${String(i % 60).padStart(2, '0')}:00+00`]));
}
const stream = Buffer.concat(rows);
rows.length = 0;

const FORMATS = [1, 0, 0, 0, 0, 0];
const OIDS = [INT4, TEXT, TEXT, TEXT, TEXT, TIMESTAMPTZ_AS_TEXT];

// ── The paths ─────────────────────────────────────────────────────────────

const out = Buffer.allocUnsafe(1 << 20);
let forwarded = 0;

/** Frames the stream message by message, rewrites each DataRow, copies it out (wrapping the 1 MiB output buffer). */
function relay(rewriter: DataRowRewriter | null): void {
  let o = 0;
  for (let pos = 0; pos < stream.length;) {
    const end = pos + 1 + stream.readInt32BE(pos + 1);
    const message = stream.subarray(pos, end);
    const sent = rewriter === null ? message : rewriter.rewrite(message);
    if (o + sent.length > out.length) o = 0;
    o += sent.copy(out, o);
    forwarded += sent.length;
    pos = end;
  }
}

/**
 * Rows/s per path, median of RUNS. The paths take turns run by run, so a
 * busy machine slows them alike and the ratio stays honest.
 */
function rowsPerSecond(paths: (() => void)[]): number[] {
  for (const run of paths) run(); // warm-up
  const samples = paths.map((): number[] => []);
  for (let r = 0; r < RUNS; r++) {
    paths.forEach((run, p) => {
      const t0 = process.hrtime.bigint();
      run();
      samples[p]!.push(ROWS / (Number(process.hrtime.bigint() - t0) / 1e9));
    });
  }
  return samples.map((s) => s.sort((a, b) => a - b)[Math.floor(s.length / 2)]!);
}

function plan(maskers: Record<number, ColumnMasker>): { rewriter: DataRowRewriter; maskers: Record<number, ColumnMasker> } {
  return { rewriter: new DataRowRewriter(FORMATS.map((_, i) => maskers[i]), FORMATS, OIDS), maskers };
}

const twoOfSix = plan({ 2: compileMasker({ strategy: 'partial' }), 3: compileMasker({ strategy: 'redact' }) });
const notes = plan({ 4: compileMasker({ strategy: 'redact', detectors: [...DETECTOR_NAMES] }) });

const [baseline, masked, detected] = rowsPerSecond([
  () => relay(null),
  () => relay(twoOfSix.rewriter),
  () => relay(notes.rewriter),
]) as [number, number, number];

const counts = (p: { maskers: Record<number, ColumnMasker> }, names: string[]) =>
  Object.entries(p.maskers).flatMap(([i, m]) => m.counts(names[Number(i)]!)).map((c) => `${c.column}${c.detector ? `/${c.detector}` : ''} ${c.count.toLocaleString()}`).join(', ');
const NAMES = ['id', 'name', 'email', 'ssn', 'notes', 'created_at'];
const fmt = (n: number) => n.toFixed(0).replace(/\B(?=(\d{3})+(?!\d))/g, ',').padStart(11);
const mbps = (rps: number) => `${((rps * stream.length) / ROWS / 1e6).toFixed(0).padStart(5)} MB/s`;

console.log(`masking: ${ROWS.toLocaleString()} DataRows × 6 columns (id int4 binary; name, email, ssn, notes, created_at text), ${(stream.length / 1e6).toFixed(1)} MB; ${notesWithPii.toLocaleString()} notes with PII; median of ${RUNS} interleaved runs`);
console.log(`  forward, no masking (peer)                  ${fmt(baseline)} rows/s  ${mbps(baseline)}`);
console.log(`  email partial + ssn redact (2 of 6 masked)  ${fmt(masked)} rows/s  ${mbps(masked)}`);
console.log(`  ratio: ${(masked / baseline).toFixed(2)}x the no-mask path; target ≥ ${TARGET_ROWS_PER_SECOND.toLocaleString()} rows/s: ${masked >= TARGET_ROWS_PER_SECOND ? 'met' : 'NOT met'}`);
console.log(`  notes, all ${DETECTOR_NAMES.length} detectors, redact             ${fmt(detected)} rows/s  ${mbps(detected)}  (${(detected / baseline).toFixed(2)}x)`);
console.log(`  masked (all runs): ${counts(twoOfSix, NAMES)}; ${counts(notes, NAMES)}; ${(forwarded / 1e9).toFixed(2)} GB forwarded`);
