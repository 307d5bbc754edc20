/**
 * An insider with write access to the store (not to the checkpoint key, nor
 * to the volume export_file is on) cuts off the tail of a stream with its
 * checkpoints, or replaces records. A gateway must not carry on from the
 * cut, sign it, or overwrite the anchor that shows it: running, it stops
 * appending to the stream; starting, it refuses to.
 */
import Database from 'better-sqlite3';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditLog, AuditWriteError } from '../../engine/audit/audit-log.js';
import { recordHash } from '../../engine/audit/chain.js';
import { AnchorMismatchError, Checkpointer } from '../../engine/audit/checkpointer.js';
import { decisionEvent } from '../../engine/audit/events.js';
import { FileCheckpointKey, generateCheckpointKey } from '../../engine/audit/key-source.js';
import { verifyAudit } from '../../engine/audit/verify.js';
import { loadConfig } from '../../engine/config/load.js';
import { startGateway } from '../../engine/gateway.js';
import type { SqliteStore } from '../../engine/store/sqlite/sqlite-store.js';
import { openSqlite, quietLogger, sampleFacts, writeTrail } from '../helpers/audit.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';

let dir: string;
beforeEach(() => {
  dir = makeTempDir('gatehouse-audit-cut-');
});
afterEach(() => removeDir(dir));

function capture(): { logger: pino.Logger; lines: () => { level: number; msg: string; [k: string]: unknown }[] } {
  const out: string[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => { out.push(s); } });
  return { logger, lines: () => out.map((l) => JSON.parse(l) as { level: number; msg: string }) };
}

function anchorJws(path: string): string {
  return (JSON.parse(readFileSync(path, 'utf8')) as { jws: string }).jws;
}

/** Runs SQL on the store's file behind the gateway's back. */
function insider(dbPath: string, run: (db: Database.Database) => void): void {
  const db = new Database(dbPath);
  try {
    run(db);
  } finally {
    db.close();
  }
}

describe('a running gateway whose stream is cut off or edited in the store', () => {
  let store: SqliteStore;
  let log: AuditLog;
  let cp: Checkpointer;
  let dbPath: string;
  let exportPath: string;
  let logs: ReturnType<typeof capture>;

  beforeEach(async () => {
    logs = capture();
    dbPath = join(dir, 'g.db');
    exportPath = join(dir, 'anchor.json');
    const keyPath = join(dir, 'cp.pem');
    writeFileSync(keyPath, generateCheckpointKey('ES256').privatePem, { mode: 0o600 });
    store = await openSqlite(dbPath);
    log = new AuditLog({ store, stream: 's1', maxBatch: 100, logger: logs.logger });
    await log.start();
    cp = new Checkpointer({ store, log, key: await FileCheckpointKey.load(keyPath, 'ES256'), intervalSeconds: 3600, exportFile: exportPath, logger: logs.logger });
    await cp.start();
    for (let i = 1; i <= 30; i++) {
      await log.append(decisionEvent(sampleFacts(i), 's1'));
      if (i % 10 === 0) await cp.checkpoint();
    }
  });
  afterEach(async () => {
    await log.close();
    await cp.stop();
    await store.close();
  });

  /** After the cut: appends are refused for good, nothing is signed, the anchor stays, and verify with it fails. */
  async function expectStopped(anchorBefore: string, storedSeqs: number[]): Promise<void> {
    // The write that finds the cut fails, saying why; so does every later one.
    for (let i = 31; i <= 34; i++) {
      const err = await log.append(decisionEvent(sampleFacts(i), 's1')).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(AuditWriteError);
      expect((err as Error).message).toMatch(/audit stream "s1" was cut off or edited in the store: this gateway had made seq 30 .* durable/);
    }
    expect(log.stopped).toMatch(/cut off or edited/);
    expect(log.head).toBeNull();
    const seqs: number[] = [];
    for await (const r of store.readAudit({ stream: 's1' })) seqs.push(r.seq);
    expect(seqs).toEqual(storedSeqs);

    const error = logs.lines().find((l) => l.level >= 50 && /cut off or edited/.test(l.msg));
    expect(error).toMatchObject({ stream: 's1', durable_seq: 30 });
    expect(error?.msg).not.toMatch(/another writer may share/);

    const checkpointsBefore = (await store.checkpoints('s1')).length;
    expect(await cp.checkpoint()).toBeNull();
    expect(await cp.stop()).toBeNull();
    expect((await store.checkpoints('s1')).length).toBe(checkpointsBefore);
    expect(readFileSync(exportPath, 'utf8')).toBe(anchorBefore);
    expect(logs.lines().some((l) => l.level >= 50 && /audit checkpoint refused/.test(l.msg))).toBe(true);

    const report = await verifyAudit({ store, publicKey: (cp as unknown as { options: { key: FileCheckpointKey } }).options.key.publicKey, anchor: anchorJws(exportPath) });
    expect(report.failure).not.toBeNull();
  }

  it('stops appending when the tail is cut off with its checkpoints, and neither signs nor exports over it', async () => {
    const anchorBefore = readFileSync(exportPath, 'utf8');
    expect(JSON.parse(anchorBefore)).toMatchObject({ seq: 30 });
    insider(dbPath, (db) => {
      db.prepare('DELETE FROM audit_records WHERE stream = ? AND seq > 15').run('s1');
      db.prepare('DELETE FROM audit_checkpoints WHERE stream = ? AND seq > 15').run('s1');
    });
    await expectStopped(anchorBefore, Array.from({ length: 15 }, (_, i) => i + 1));
    const error = logs.lines().find((l) => l.level >= 50 && /cut off or edited/.test(l.msg));
    expect(error).toMatchObject({ stored_seq: 15 });
  });

  it('stops appending when the head record is replaced by another at the same seq', async () => {
    const anchorBefore = readFileSync(exportPath, 'utf8');
    insider(dbPath, (db) => {
      const prev = (db.prepare('SELECT hash FROM audit_records WHERE stream = ? AND seq = 29').get('s1') as { hash: string }).hash;
      const event = '{"forged":true,"time":1}';
      db.prepare('UPDATE audit_records SET event = ?, hash = ? WHERE stream = ? AND seq = 30').run(event, recordHash('s1', 30, prev, event), 's1');
    });
    await expectStopped(anchorBefore, Array.from({ length: 30 }, (_, i) => i + 1));
    expect(logs.lines().find((l) => l.level >= 50 && /cut off or edited/.test(l.msg))).toMatchObject({ stored_seq: 30 });
  });

  it('stops appending when a rewritten chain runs past the head it had made durable', async () => {
    const anchorBefore = readFileSync(exportPath, 'utf8');
    insider(dbPath, (db) => {
      db.prepare('DELETE FROM audit_records WHERE stream = ? AND seq > 15').run('s1');
      db.prepare('DELETE FROM audit_checkpoints WHERE stream = ? AND seq > 15').run('s1');
      let prev = (db.prepare('SELECT hash FROM audit_records WHERE stream = ? AND seq = 15').get('s1') as { hash: string }).hash;
      const insert = db.prepare('INSERT INTO audit_records (stream, seq, prev, hash, time, event) VALUES (?, ?, ?, ?, ?, ?)');
      for (let seq = 16; seq <= 32; seq++) {
        const event = `{"forged":${seq},"time":1}`;
        const hash = recordHash('s1', seq, prev, event);
        insert.run('s1', seq, prev, hash, 1, event);
        prev = hash;
      }
    });
    await expectStopped(anchorBefore, Array.from({ length: 32 }, (_, i) => i + 1));
    expect(logs.lines().find((l) => l.level >= 50 && /cut off or edited/.test(l.msg))).toMatchObject({ stored_seq: 32 });
  });

  it('still carries on from a head another writer moved ahead, and signs it', async () => {
    const [last] = await (async () => { const all = []; for await (const r of store.readAudit({ stream: 's1', afterSeq: 29 })) all.push(r); return all; })();
    const event = '{"foreign":true,"time":5}';
    await store.appendAudit([{ stream: 's1', seq: 31, prev: last!.hash, hash: recordHash('s1', 31, last!.hash, event), time: 5, event }]);
    await expect(log.append(decisionEvent(sampleFacts(31), 's1'))).rejects.toBeInstanceOf(AuditWriteError);
    expect((await log.append(decisionEvent(sampleFacts(32), 's1'))).seq).toBe(32);
    expect(log.stopped ?? null).toBeNull(); // passes before the fix too: a guard for the shared-stream case
    expect(await cp.checkpoint()).toMatchObject({ seq: 32 });
    expect(JSON.parse(readFileSync(exportPath, 'utf8'))).toMatchObject({ seq: 32 });
  });
});

describe('a gateway starting on a store that no longer matches its export_file', () => {
  async function restart(trail: { dbPath: string; keyPath: string; exportPath: string }): Promise<{ error: unknown; checkpoints: number }> {
    const store = await openSqlite(trail.dbPath);
    const log = new AuditLog({ store, stream: 's1', maxBatch: 100, logger: quietLogger });
    await log.start();
    const cp = new Checkpointer({ store, log, key: await FileCheckpointKey.load(trail.keyPath, 'ES256'), intervalSeconds: 3600, exportFile: trail.exportPath, logger: quietLogger });
    const error = await cp.start().then(() => null, (e: unknown) => e);
    await log.close();
    if (!error) await cp.stop();
    const checkpoints = (await store.checkpoints('s1')).length;
    await store.close();
    return { error, checkpoints };
  }

  it('refuses to start when the anchor vouches for a seq beyond the stored head, and leaves the file alone', async () => {
    const trail = await writeTrail(dir, { events: 30 });
    insider(trail.dbPath, (db) => {
      db.prepare('DELETE FROM audit_records WHERE seq > 12').run();
      db.prepare('DELETE FROM audit_checkpoints WHERE seq > 12').run();
    });
    const before = readFileSync(trail.exportPath, 'utf8');
    const { error, checkpoints } = await restart(trail);
    expect(error).toBeInstanceOf(AnchorMismatchError);
    const message = (error as Error).message;
    expect(message).toContain(trail.exportPath);
    expect(message).toMatch(/vouches for stream "s1" seq 30 \(hash [0-9a-f]{64}\), but the store holds that stream only up to seq 12/);
    expect(message).toMatch(/move .* away/);
    expect(readFileSync(trail.exportPath, 'utf8')).toBe(before);
    expect(checkpoints).toBe(2); // the ones at seq 0 and 10, nothing new signed
  });

  it('refuses to start when the record at the anchor\'s seq has another hash', async () => {
    const trail = await writeTrail(dir, { events: 30 });
    insider(trail.dbPath, (db) => {
      const prev = (db.prepare('SELECT hash FROM audit_records WHERE seq = 29').get() as { hash: string }).hash;
      const event = '{"forged":true,"time":1}';
      db.prepare('UPDATE audit_records SET event = ?, hash = ? WHERE seq = 30').run(event, recordHash('s1', 30, prev, event));
    });
    const before = readFileSync(trail.exportPath, 'utf8');
    const { error } = await restart(trail);
    expect(error).toBeInstanceOf(AnchorMismatchError);
    expect((error as Error).message).toMatch(/seq 30 .*but the store holds hash [0-9a-f]{64} at that seq/);
    expect(readFileSync(trail.exportPath, 'utf8')).toBe(before);
  });

  it('starts, and moves the anchor on, when the store holds the anchor\'s record (and maybe more)', async () => {
    const trail = await writeTrail(dir, { events: 30 });
    const anchored = readFileSync(trail.exportPath, 'utf8');
    // A gateway that crashed after more appends: the store is ahead of the anchor.
    const store = await openSqlite(trail.dbPath);
    const log = new AuditLog({ store, stream: 's1', maxBatch: 100, logger: quietLogger });
    await log.start();
    for (let i = 31; i <= 35; i++) await log.append(decisionEvent(sampleFacts(i), 's1'));
    await log.close();
    await store.close();
    expect(readFileSync(trail.exportPath, 'utf8')).toBe(anchored);
    const { error } = await restart(trail);
    expect(error).toBeNull();
    expect(JSON.parse(readFileSync(trail.exportPath, 'utf8'))).toMatchObject({ seq: 35 });
  });

  it('startGateway (gatehouse serve) refuses to start on a cut-off stream, naming the file', async () => {
    const trail = await writeTrail(dir, { events: 30 });
    insider(trail.dbPath, (db) => {
      db.prepare('DELETE FROM audit_records WHERE seq > 12').run();
      db.prepare('DELETE FROM audit_checkpoints WHERE seq > 12').run();
    });
    const before = readFileSync(trail.exportPath, 'utf8');
    const config = loadConfig(trail.configPath);
    await expect(startGateway(config, quietLogger)).rejects.toThrow(new RegExp(`${trail.exportPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} vouches for stream "s1" seq 30`));
    expect(readFileSync(trail.exportPath, 'utf8')).toBe(before);
  });
});
