// make bench-approvals: how long a held request takes to resume after an
// approver says yes, on each store backend. The approval is granted through
// one store connection and awaited through another, as with two gateway
// processes. Peer, measured in the same run: the backend's bare wake-up
// (an EventEmitter hop for SQLite, a raw LISTEN/NOTIFY round trip for
// PostgreSQL), so the ratio shows what the approval logic adds.
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { canonicalAction } from '../engine/approvals/action.js';
import { ApprovalService } from '../engine/approvals/service.js';
import type { Identity } from '../engine/identity/identity.js';
import { PostgresStore } from '../engine/store/postgres/postgres-store.js';
import { SqliteStore } from '../engine/store/sqlite/sqlite-store.js';
import type { Store } from '../engine/store/store.js';
import { startPostgres } from '../tests/helpers/postgres.js';

const ROUNDS = Number(process.env.ROUNDS ?? 200);
const logger = pino({ level: 'silent' });
const agent: Identity = { sub: 'agent-1', iss: 'bench', groups: ['sre-agents'], agent: true, act: { sub: 'alice' }, claims: {} };
const approver: Identity = { sub: 'bob', iss: 'bench', groups: ['dba'], agent: false, act: null, claims: {} };

function service(store: Store): ApprovalService {
  // Polling is the safety net; set it far out so only notifications wake a request here.
  return new ApprovalService({ store, logger, pollIntervalMs: 60_000, recordTransition: async () => undefined });
}

/** p50 and p99 in ms of approve → the held request seeing it. */
async function wakeUps(waiterStore: Store, approverStore: Store): Promise<number[]> {
  const waiter = service(waiterStore);
  const granting = service(approverStore);
  const samples: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const request = await waiter.request({
      requester: agent,
      target: 'orders-db',
      action: canonicalAction('orders-db', { postgres: { text: `UPDATE t SET x = ${i}` } }),
      requirement: { groups: ['dba'], min: 1, ttl_seconds: 900 },
      mode: 'hold',
      reasons: [],
      decisionId: `d-${i}`,
      sessionId: 's',
      policyRevision: null,
    });
    const held = waiter.waitForResolution(request.id, 30_000);
    await new Promise((r) => setTimeout(r, 2)); // the waiter is subscribed and idle, as in real life
    const t0 = performance.now();
    await granting.vote(request.id, approver, 'approve', null);
    const resolved = await held;
    samples.push(performance.now() - t0);
    if (resolved?.status !== 'approved') throw new Error(`round ${i}: held request saw ${resolved?.status ?? 'nothing'}`);
  }
  return samples;
}

async function emitterFloor(): Promise<number[]> {
  const bus = new EventEmitter();
  const samples: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const woke = new Promise<void>((resolve) => bus.once('x', () => setImmediate(resolve)));
    const t0 = performance.now();
    bus.emit('x');
    await woke;
    samples.push(performance.now() - t0);
  }
  return samples;
}

async function notifyFloor(url: string): Promise<number[]> {
  const listener = new pg.Client({ connectionString: url });
  const notifier = new pg.Client({ connectionString: url });
  await Promise.all([listener.connect(), notifier.connect()]);
  await listener.query('LISTEN bench_floor');
  const samples: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const woke = new Promise<void>((resolve) => listener.once('notification', () => resolve()));
    const t0 = performance.now();
    await notifier.query("SELECT pg_notify('bench_floor', 'x')");
    await woke;
    samples.push(performance.now() - t0);
  }
  await Promise.all([listener.end(), notifier.end()]);
  return samples;
}

function summary(samples: number[]): { p50: number; p99: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
  return { p50: at(0.5), p99: at(0.99) };
}

function report(backend: string, wake: number[], floor: number[], floorName: string): void {
  const w = summary(wake);
  const f = summary(floor);
  console.log(`${backend.padEnd(10)} approve→resume p50 ${w.p50.toFixed(2)} ms  p99 ${w.p99.toFixed(2)} ms   ${floorName} p50 ${f.p50.toFixed(3)} ms   ratio ${(w.p50 / f.p50).toFixed(1)}×`);
}

console.log(`approval wake-up, ${ROUNDS} rounds per backend (target: well under 1 s)`);
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-approvals-'));
try {
  const sqlite = SqliteStore.open({ path: join(dir, 'bench.db'), logger });
  await sqlite.migrate();
  // SQLite is one process's store: the approver and the held request share it.
  report('sqlite', await wakeUps(sqlite, sqlite), await emitterFloor(), 'EventEmitter hop');
  await sqlite.close();

  const server = await startPostgres();
  try {
    const a = await PostgresStore.open({ connectionString: server.url, logger });
    await a.migrate();
    const b = await PostgresStore.open({ connectionString: server.url, logger });
    report('postgres', await wakeUps(a, b), await notifyFloor(server.url), 'raw NOTIFY');
    await Promise.all([a.close(), b.close()]);
  } finally {
    await server.stop();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
