/**
 * Durable audit appends per second for each store backend, at a few batch
 * sizes, and the read rate of readAudit over the result. PostgreSQL is a
 * throwaway local server (fsync and synchronous_commit on), as in the tests.
 *
 *   npx tsx bench/store.ts [records per run, default 20000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Secret } from '../engine/config/secret.js';
import { openStore } from '../engine/store/open-store.js';
import type { AuditRecord, Store } from '../engine/store/store.js';
import { startPostgres } from '../tests/helpers/postgres.js';

const total = Number(process.argv[2] ?? 20_000);
const logger = pino({ level: 'silent' });
const event = JSON.stringify({ class_uid: 6003, actor: { user: { uid: 'agent-1' } }, pad: 'x'.repeat(700) });

async function run(name: string, store: Store): Promise<void> {
  for (const batch of [1, 100, 1000]) {
    const stream = `bench-${batch}`;
    const count = batch === 1 ? Math.min(total, 2000) : total;
    let prev = 'genesis';
    const started = process.hrtime.bigint();
    for (let seq = 1; seq <= count; seq += batch) {
      const records: AuditRecord[] = [];
      for (let s = seq; s < seq + batch && s <= count; s++) {
        records.push({ stream, seq: s, prev, hash: `h${s}`, time: Date.now(), event });
        prev = `h${s}`;
      }
      await store.appendAudit(records);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(`${name.padEnd(8)} append batch ${String(batch).padStart(4)}: ${Math.round(count / seconds).toLocaleString('en').padStart(8)} records/s (${count} records)`);
  }
  const started = process.hrtime.bigint();
  let read = 0;
  for await (const record of store.readAudit()) read += record.seq > 0 ? 1 : 0;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(`${name.padEnd(8)} readAudit:          ${Math.round(read / seconds).toLocaleString('en').padStart(8)} records/s (${read} records)`);
}

const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
const sqlite = await openStore({ sqlite: { path: join(dir, 'bench.db') } }, logger);
await run('sqlite', sqlite);
await sqlite.close();
rmSync(dir, { recursive: true, force: true });

const server = await startPostgres();
try {
  const postgres = await openStore({ postgres: { url: new Secret(server.url, 'bench') } }, logger);
  await run('postgres', postgres);
  await postgres.close();
} finally {
  await server.stop();
}
