import Database from 'better-sqlite3';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuditLog, AuditWriteError } from '../../engine/audit/audit-log.js';
import { GENESIS, recordHash } from '../../engine/audit/chain.js';
import { verifyCheckpoint } from '../../engine/audit/checkpoint.js';
import { Checkpointer } from '../../engine/audit/checkpointer.js';
import { decisionEvent } from '../../engine/audit/events.js';
import { FileCheckpointKey, generateCheckpointKey } from '../../engine/audit/key-source.js';
import { verifyAudit } from '../../engine/audit/verify.js';
import type { SqliteStore } from '../../engine/store/sqlite/sqlite-store.js';
import type { AuditRecord } from '../../engine/store/store.js';
import { appendMany, openSqlite, quietLogger, sampleFacts } from '../helpers/audit.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';

let dir: string;
let dbPath: string;
let store: SqliteStore;
beforeEach(async () => {
  dir = makeTempDir('gatehouse-audit-log-');
  dbPath = join(dir, 'gatehouse.db');
  store = await openSqlite(dbPath);
});
afterEach(async () => {
  await store.close();
  removeDir(dir);
});

async function startLog(maxBatch = 1000, stream = 's1'): Promise<AuditLog> {
  const log = new AuditLog({ store, stream, maxBatch, logger: quietLogger });
  await log.start();
  return log;
}

async function readAll(stream = 's1'): Promise<AuditRecord[]> {
  const records: AuditRecord[] = [];
  for await (const r of store.readAudit({ stream })) records.push(r);
  return records;
}

describe('AuditLog group commit', () => {
  it('gives concurrent appends contiguous seqs in fewer writes than events', async () => {
    const log = await startLog();
    const writes = vi.spyOn(store, 'appendAudit');
    const landed = await appendMany(log, 500);
    expect(landed.map((l) => l.seq)).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    expect(writes.mock.calls.length).toBeLessThan(500);
    expect(log.head).toEqual({ seq: 500, hash: (await readAll()).at(-1)!.hash });
    expect((await verifyAudit({ store })).failure).toBeNull();
  });

  it('measures each durable write and its events on the registry it is given', async () => {
    const registry = new Registry();
    const log = new AuditLog({ store, stream: 's1', maxBatch: 1000, logger: quietLogger, registry });
    await log.start();
    const writes = vi.spyOn(store, 'appendAudit');
    await appendMany(log, 200);
    const values = async (name: string) => (await registry.getSingleMetric(name)!.get()).values as Array<{ metricName?: string; value: number }>;
    const count = (vs: Awaited<ReturnType<typeof values>>) => vs.find((v) => v.metricName?.endsWith('_count'))!.value;
    const sum = (vs: Awaited<ReturnType<typeof values>>) => vs.find((v) => v.metricName?.endsWith('_sum'))!.value;
    expect(count(await values('gatehouse_audit_write_seconds'))).toBe(writes.mock.calls.length);
    expect(sum(await values('gatehouse_audit_write_seconds'))).toBeGreaterThan(0);
    expect(sum(await values('gatehouse_audit_batch_events'))).toBe(200);
  });

  it('never puts more than max_batch events in one write', async () => {
    const log = await startLog(7);
    const writes = vi.spyOn(store, 'appendAudit');
    await appendMany(log, 50);
    expect(Math.max(...writes.mock.calls.map(([records]) => records.length))).toBeLessThanOrEqual(7);
    expect(writes.mock.calls.flatMap(([records]) => records.map((r) => r.seq))).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it('stores each event as its canonical text, hashed into the chain', async () => {
    const log = await startLog();
    const event = decisionEvent(sampleFacts(1), 's1');
    const { seq, hash } = await log.append(event);
    const [record] = await readAll();
    expect(record).toMatchObject({ seq, hash, prev: GENESIS, time: sampleFacts(1).time });
    expect(JSON.parse(record!.event)).toEqual(event);
    expect(recordHash('s1', 1, GENESIS, record!.event)).toBe(hash);
  });

  it('continues the chain where a previous process left it', async () => {
    await appendMany(await startLog(), 3);
    await store.close();
    store = await openSqlite(dbPath);
    const log = await startLog();
    expect(log.head?.seq).toBe(3);
    expect((await log.append({ time: 1, n: 4 })).seq).toBe(4);
    expect((await verifyAudit({ store })).failure).toBeNull();
  });

  it('rejects every event of a failed write, and the next append continues the chain', async () => {
    const log = await startLog();
    await appendMany(log, 3);
    // A real failure inside the store's transaction: SQLite aborts it.
    const raw = new Database(dbPath);
    raw.exec(`CREATE TRIGGER refuse BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'disk says no'); END`);
    const failed = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => log.append({ time: 1, n: i })));
    expect(failed.every((r) => r.status === 'rejected' && r.reason instanceof AuditWriteError && /disk says no/.test(r.reason.message))).toBe(true);
    raw.exec('DROP TRIGGER refuse');
    raw.close();

    expect((await log.append({ time: 2, n: 'after' })).seq).toBe(4);
    const records = await readAll();
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    expect((await verifyAudit({ store })).failure).toBeNull();
  });

  it('re-reads the head from the store after a failed write, so the chain never forks', async () => {
    const log = await startLog();
    await appendMany(log, 2);
    // Another writer extends the stream behind the log's back (a second
    // process misconfigured with the same stream): the log's next write no
    // longer continues the head and is refused.
    const [last] = (await readAll()).slice(-1);
    const event = '{"foreign":true,"time":5}';
    await store.appendAudit([{ stream: 's1', seq: 3, prev: last!.hash, hash: recordHash('s1', 3, last!.hash, event), time: 5, event }]);
    await expect(log.append({ time: 6, n: 'lost' })).rejects.toBeInstanceOf(AuditWriteError);

    expect((await log.append({ time: 7, n: 'next' })).seq).toBe(4);
    expect((await readAll()).map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    expect((await verifyAudit({ store })).failure).toBeNull();
  });

  it('writes what is queued on close, then refuses new events', async () => {
    const log = await startLog();
    const pending = appendMany(log, 20);
    await log.close();
    expect((await pending).length).toBe(20);
    await expect(log.append({ time: 1 })).rejects.toThrow(/closed/);
  });

  it('refuses an event with no JSON form without touching the chain', async () => {
    const log = await startLog();
    await expect(log.append({ time: 1, bad: Number.NaN })).rejects.toThrow(/not JSON/);
    expect((await log.append({ time: 1 })).seq).toBe(1);
  });
});

describe('Checkpointer', () => {
  it('checkpoints an empty stream at seq 0 with the genesis hash, and exports it atomically', async () => {
    const keyPath = join(dir, 'key.pem');
    const { privatePem } = generateCheckpointKey('EdDSA');
    writeFileSync(keyPath, privatePem);
    const key = await FileCheckpointKey.load(keyPath, 'EdDSA');
    const log = await startLog();
    const exportFile = join(dir, 'anchor.json');
    const checkpointer = new Checkpointer({ store, log, key, intervalSeconds: 3600, exportFile, logger: quietLogger, now: () => 42 });
    await checkpointer.start();

    const [first] = await store.checkpoints('s1');
    expect(first).toMatchObject({ stream: 's1', seq: 0, hash: GENESIS, time: 42 });
    expect(await verifyCheckpoint(first!.jws, key.publicKey)).toEqual({ stream: 's1', seq: 0, hash: GENESIS, time: 42 });

    await appendMany(log, 3);
    await log.close();
    const final = await checkpointer.stop();
    expect(final).toMatchObject({ seq: 3, hash: log.head!.hash });
    expect(JSON.parse(readFileSync(exportFile, 'utf8'))).toEqual(final);
    expect((await store.checkpoints('s1')).map((c) => c.seq)).toEqual([0, 3]);
    expect((await verifyAudit({ store, publicKey: key.publicKey, anchor: final!.jws })).failure).toBeNull();
  });

  it('refuses a key that does not fit the configured algorithm, naming the fix', async () => {
    const keyPath = join(dir, 'key.pem');
    writeFileSync(keyPath, generateCheckpointKey('EdDSA').privatePem);
    await expect(FileCheckpointKey.load(keyPath, 'ES256')).rejects.toThrow(/needs an EC P-256 key.*keygen --alg ES256/);
    await expect(FileCheckpointKey.load(join(dir, 'missing.pem'), 'ES256')).rejects.toThrow(/cannot read the checkpoint key .*ENOENT/);
  });
});
