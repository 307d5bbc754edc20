// make bench-audit: durable audit events/s through AuditLog (event building,
// canonical JSON, the hash chain, group commit) against its peers measured in
// the same run on the same store:
//   - the store's own appendAudit of pre-built, pre-hashed records, in
//     batches of the size AuditLog ended up using (the chain's overhead);
//   - plain better-sqlite3 inserts in transactions of that size, with the
//     same durability (WAL, synchronous=FULL): the floor.
// Then `audit verify` speed over VERIFY_EVENTS records, against a bare
// readAudit pass over the same records.
//
//   npx tsx bench/audit.ts            EVENTS=100000 CONCURRENCY=1000 VERIFY_EVENTS=1000000
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from '../engine/audit/audit-log.js';
import { canonicalJson } from '../engine/audit/canonical.js';
import { GENESIS, recordHash } from '../engine/audit/chain.js';
import { decisionEvent } from '../engine/audit/events.js';
import { verifyAudit } from '../engine/audit/verify.js';
import { Secret } from '../engine/config/secret.js';
import { openStore } from '../engine/store/open-store.js';
import type { AuditRecord, Store } from '../engine/store/store.js';
import { quietLogger, sampleFacts } from '../tests/helpers/audit.js';
import { startPostgres } from '../tests/helpers/postgres.js';

const EVENTS = Number(process.env.EVENTS ?? 100_000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 1000);
const VERIFY_EVENTS = Number(process.env.VERIFY_EVENTS ?? 1_000_000);
const MAX_BATCH = 1000;
const TARGET = 20_000;

const seconds = (started: bigint) => Number(process.hrtime.bigint() - started) / 1e9;
const rate = (n: number, s: number) => Math.round(n / s).toLocaleString('en').padStart(9);

/** CONCURRENCY callers, each appending one decision event at a time, as concurrent requests would. */
async function throughAuditLog(store: Store, stream: string): Promise<{ perSecond: number; meanBatch: number }> {
  // Count the writes on the instance itself: the stores keep their state in #private fields.
  let writes = 0;
  const appendAudit = store.appendAudit;
  store.appendAudit = (records) => (writes++, appendAudit.call(store, records));
  const log = new AuditLog({ store, stream, maxBatch: MAX_BATCH, logger: quietLogger });
  await log.start();
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < EVENTS) await log.append(decisionEvent(sampleFacts(++next), stream));
  }));
  const s = seconds(started);
  await log.close();
  store.appendAudit = appendAudit;
  return { perSecond: EVENTS / s, meanBatch: EVENTS / writes };
}

/** The canonical text of `n` realistic, distinct events, built before any clock starts. */
function eventTexts(n: number, stream: string): string[] {
  return Array.from({ length: n }, (_, i) => canonicalJson(decisionEvent(sampleFacts(i + 1), stream)));
}

function chained(stream: string, texts: readonly string[], firstSeq = 1, prev = GENESIS): AuditRecord[] {
  return texts.map((event, i) => {
    const seq = firstSeq + i;
    const hash = recordHash(stream, seq, prev, event);
    const record = { stream, seq, prev, hash, time: (JSON.parse(event) as { time: number }).time, event };
    prev = hash;
    return record;
  });
}

async function rawAppends(store: Store, records: readonly AuditRecord[], batch: number): Promise<number> {
  const started = process.hrtime.bigint();
  for (let i = 0; i < records.length; i += batch) await store.appendAudit(records.slice(i, i + batch));
  return records.length / seconds(started);
}

function plainSqlite(dir: string, records: readonly AuditRecord[], batch: number): number {
  const db = new Database(join(dir, 'plain.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE t (stream TEXT NOT NULL, seq INTEGER NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL, time INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (stream, seq)) STRICT');
  const insert = db.prepare('INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)');
  const write = db.transaction((rows: readonly AuditRecord[]) => {
    for (const r of rows) insert.run(r.stream, r.seq, r.prev, r.hash, r.time, r.event);
  });
  const started = process.hrtime.bigint();
  for (let i = 0; i < records.length; i += batch) write(records.slice(i, i + batch));
  const perSecond = records.length / seconds(started);
  db.close();
  return perSecond;
}

async function appendBench(name: string, store: Store, dir: string | null): Promise<void> {
  const log = await throughAuditLog(store, `${name}-log`);
  const batch = Math.max(1, Math.round(log.meanBatch));
  const records = chained(`${name}-raw`, eventTexts(EVENTS, `${name}-raw`));
  const raw = await rawAppends(store, records, batch);
  console.log(`${name}: AuditLog            ${rate(log.perSecond, 1)} events/s  (${CONCURRENCY} concurrent callers, mean batch ${log.meanBatch.toFixed(0)})  ${log.perSecond >= TARGET ? 'meets' : 'MISSES'} the ${TARGET.toLocaleString('en')}/s target`);
  console.log(`${name}: store.appendAudit   ${rate(raw, 1)} records/s (pre-hashed, batch ${batch})  AuditLog ratio ${(log.perSecond / raw).toFixed(2)}x`);
  if (dir) {
    const plain = plainSqlite(dir, records, batch);
    console.log(`${name}: plain better-sqlite3${rate(plain, 1)} rows/s    (same durability, batch ${batch})  AuditLog ratio ${(log.perSecond / plain).toFixed(2)}x`);
  }
}

async function verifyBench(store: Store): Promise<void> {
  const stream = 'verify';
  // A few thousand distinct events, repeated: building 1M events would take longer than verifying them.
  const texts = eventTexts(5000, stream);
  let prev = GENESIS;
  for (let seq = 1; seq <= VERIFY_EVENTS; seq += 10_000) {
    const n = Math.min(10_000, VERIFY_EVENTS - seq + 1);
    const page = chained(stream, Array.from({ length: n }, (_, i) => texts[(seq + i) % texts.length]!), seq, prev);
    await store.appendAudit(page);
    prev = page.at(-1)!.hash;
  }
  let started = process.hrtime.bigint();
  let read = 0;
  for await (const r of store.readAudit({ stream })) read += r.seq > 0 ? 1 : 0;
  const readRate = read / seconds(started);
  started = process.hrtime.bigint();
  const report = await verifyAudit({ store });
  const s = seconds(started);
  if (report.failure) throw new Error(`verify failed: ${JSON.stringify(report.failure)}`);
  console.log(`${store.kind}: audit verify        ${rate(VERIFY_EVENTS, s)} events/s  (${VERIFY_EVENTS.toLocaleString('en')} events in ${s.toFixed(1)} s, heap ${Math.round(process.memoryUsage().heapUsed / 2 ** 20)} MiB)`);
  console.log(`${store.kind}: readAudit alone     ${rate(readRate, 1)} records/s  verify ratio ${(VERIFY_EVENTS / s / readRate).toFixed(2)}x`);
}

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-audit-'));
try {
  const sqlite = await openStore({ sqlite: { path: join(dir, 'audit.db') } }, quietLogger);
  await appendBench('sqlite', sqlite, dir);
  await verifyBench(sqlite);
  await sqlite.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const server = await startPostgres();
try {
  const postgres = await openStore({ postgres: { url: new Secret(server.url, 'bench') } }, quietLogger);
  await appendBench('postgres', postgres, null);
  await postgres.close();
} finally {
  await server.stop();
}
