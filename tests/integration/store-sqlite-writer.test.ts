/**
 * The SQLite store's writer thread: every write commits on a second
 * connection in a worker thread, so the event loop keeps running while a
 * commit waits (for its fsync, or here for another connection's lock), and
 * the write's promise settles only once it has committed, in the order the
 * writes were made, with the error the write failed with. Orderings are
 * asserted, never durations.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configureConnection } from '../../engine/store/sqlite/sqlite-writes.js';
import { SqliteStore } from '../../engine/store/sqlite/sqlite-store.js';
import type { ApprovalRecord, AuditRecord, RecordingBatch } from '../../engine/store/store.js';
import { openSqlite, quietLogger } from '../helpers/audit.js';
import { makeTempDir, removeDir, repoRoot } from '../helpers/opa.js';

let dir: string;
let dbPath: string;
const open: SqliteStore[] = [];
beforeEach(() => {
  dir = makeTempDir('gatehouse-sqlite-writer-');
  dbPath = join(dir, 'gatehouse.db');
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  removeDir(dir);
});

async function store(): Promise<SqliteStore> {
  const s = await openSqlite(dbPath);
  open.push(s);
  return s;
}

function chain(stream: string, count: number, after: { seq: number; hash: string } | null = null): AuditRecord[] {
  const out: AuditRecord[] = [];
  let prev = after?.hash ?? `genesis-${stream}`;
  for (let i = 1; i <= count; i++) {
    const seq = (after?.seq ?? 0) + i;
    const hash = `h-${stream}-${seq}`;
    out.push({ stream, seq, prev, hash, time: 1_700_000_000_000 + seq, event: `{"seq":${seq}}` });
    prev = hash;
  }
  return out;
}

const headOf = (records: readonly AuditRecord[]) => ({ seq: records.at(-1)!.seq, hash: records.at(-1)!.hash });

/** What another connection, opened now, sees committed. */
function committedSeq(stream: string): number {
  const db = new Database(dbPath, { readonly: true });
  try {
    return (db.prepare('SELECT coalesce(max(seq), 0) AS n FROM audit_records WHERE stream = ?').get(stream) as { n: number }).n;
  } finally {
    db.close();
  }
}

function recording(id: string, entries: number): RecordingBatch {
  return {
    sessions: [{
      id, protocol: 'postgres', format: 'test.v1', target: 'orders-db', target_kind: 'postgres', sub: 'agent', iss: 'https://idp.test', act_sub: null,
      groups: ['g'], source_ip: null, gateway: 'gw', started_at: 1, ended_at: null, end_reason: null, dropped_entries: 0,
    }],
    entries: Array.from({ length: entries }, (_, i) => ({ session_id: id, seq: i + 1, time: i, decision: 'allow' as const, entry: `{"n":${i}}` })),
  };
}

function approval(id: string): ApprovalRecord {
  return {
    id, status: 'pending', version: 1,
    requester: { sub: 'agent-1', iss: 'urn:test', act: null, groups: [] },
    target: 'orders-db', action: '{}', action_hash: 'ah', reasons: [], groups: ['dba'], min: 1, mode: 'hold',
    created_at: '2030-01-01T00:00:00.000Z', expires_at: '2030-01-01T00:15:00.000Z', votes: [],
    resolution: null, resolved_at: null, decision_id: 'd', session_id: 's', policy_revision: null,
  };
}

describe('the SQLite writer thread', () => {
  it('keeps the event loop and reads going while a commit waits, and resolves only once it has committed', async () => {
    const s = await store();
    const first = chain('a', 1);
    await s.appendAudit(first);
    // Another connection holds the write lock: the append's commit must wait for it, as it would for a slow fsync.
    const blocker = new Database(dbPath);
    blocker.exec('BEGIN IMMEDIATE');
    const order: string[] = [];
    const next = chain('a', 3, headOf(first));
    const appended = s.appendAudit(next).then(() => order.push('append resolved'));

    // With the write on the main thread, none of these could run before the append had settled.
    await new Promise((resolve) => setTimeout(resolve, 0));
    order.push('timer');
    await new Promise((resolve) => setImmediate(resolve));
    order.push('immediate');
    expect(await s.auditHead('a')).toEqual(headOf(first));
    order.push('read');
    expect(committedSeq('a')).toBe(1);

    blocker.exec('COMMIT');
    blocker.close();
    await appended;
    expect(order).toEqual(['timer', 'immediate', 'read', 'append resolved']);
    expect(committedSeq('a')).toBe(4);
    expect(await s.auditHead('a')).toEqual(headOf(next));
  });

  it('commits writes in the order they were made, each visible to any connection once it resolves', async () => {
    const s = await store();
    const batches: AuditRecord[][] = [];
    let head: { seq: number; hash: string } | null = null;
    for (let i = 0; i < 6; i++) {
      batches.push(chain('o', 50, head));
      head = headOf(batches.at(-1)!);
    }
    const settled: string[] = [];
    const seen: number[] = [];
    // Not awaited in between: each batch continues the previous one, so it only commits if that one committed first.
    const writes = batches.map((batch, i) =>
      s.appendAudit(batch).then(() => {
        settled.push(`audit ${i}`);
        seen.push(committedSeq('o'));
      }),
    );
    writes.push(s.appendRecordings(recording('r1', 20)).then(() => void settled.push('recordings')));
    writes.push(s.createApproval(approval('p1')).then(() => void settled.push('approval')));
    writes.push(s.appendCheckpoint({ stream: 'o', seq: 300, hash: head!.hash, time: 1, jws: 'j' }).then(() => void settled.push('checkpoint')));
    await Promise.all(writes);

    expect(settled).toEqual(['audit 0', 'audit 1', 'audit 2', 'audit 3', 'audit 4', 'audit 5', 'recordings', 'approval', 'checkpoint']);
    seen.forEach((n, i) => expect(n).toBeGreaterThanOrEqual((i + 1) * 50));
    expect(await s.auditHead('o')).toEqual(head);
    expect((await s.getSession('r1'))?.entries).toBe(20);
    expect((await s.getApproval('p1'))?.status).toBe('pending');
    expect((await s.checkpoints('o')).map((c) => c.seq)).toEqual([300]);
  });

  it('commits with synchronous=FULL on a WAL file', () => {
    const db = new Database(join(dir, 'pragmas.db'));
    db.pragma('journal_mode = WAL');
    configureConnection(db);
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    db.close();
  });

  it('rejects with the error the write failed with, and the next write goes through', async () => {
    const s = await store();
    const first = chain('e', 2);
    await s.appendAudit(first);

    const raw = new Database(dbPath);
    raw.exec(`CREATE TRIGGER refuse BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'disk says no'); END`);
    const refused = await s.appendAudit(chain('e', 1, headOf(first))).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(Database.SqliteError);
    expect(refused).toMatchObject({ code: 'SQLITE_CONSTRAINT_TRIGGER', message: 'disk says no' });
    raw.exec('DROP TRIGGER refuse');
    raw.close();

    const duplicate = await s.appendAudit(chain('e', 1)).catch((e: unknown) => e);
    expect((duplicate as Error).message).toMatch(/already stored/);
    expect((duplicate as Error).cause).toBeInstanceOf(Database.SqliteError);
    expect((duplicate as Error).cause).toMatchObject({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
    await expect(s.appendAudit(chain('e', 1, { seq: 2, hash: 'forged' }))).rejects.toThrow(/does not continue the stored chain/);
    // A value SQLite cannot bind fails as it does in better-sqlite3 on the caller's thread: a TypeError.
    const unbindable = s.appendCheckpoint({ stream: 'e', seq: 1, hash: 'h', time: 1, jws: true as unknown as string });
    await expect(unbindable).rejects.toBeInstanceOf(TypeError);
    await expect(unbindable).rejects.toThrow(/can only bind numbers, strings, bigints, buffers, and null/);
    await expect(s.createApproval(approval('dup'))).resolves.toBeUndefined();
    await expect(s.createApproval(approval('dup'))).rejects.toMatchObject({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });

    await s.appendAudit(chain('e', 1, headOf(first)));
    expect(await s.auditHead('e')).toEqual({ seq: 3, hash: 'h-e-3' });
  });

  it('on close, settles the writes already made, then refuses new ones', async () => {
    const s = await store();
    const batches = [chain('c', 10), chain('c', 10, { seq: 10, hash: 'h-c-10' })];
    const writes = [...batches.map((b) => s.appendAudit(b)), s.appendRecordings(recording('r', 5)), s.createApproval(approval('c1'))];
    const closed = s.close();
    await expect(s.appendAudit(chain('late', 1))).rejects.toThrow(/not open/);
    await closed;
    await Promise.all(writes);
    expect(committedSeq('c')).toBe(20);

    const again = await store();
    expect(await again.auditHead('c')).toEqual({ seq: 20, hash: 'h-c-20' });
    expect(await again.auditHead('late')).toBeNull();
    expect((await again.getSession('r'))?.entries).toBe(5);
    expect(await again.getApproval('c1')).not.toBeNull();
  });

  it('writes a ":memory:" database inline, on the one connection that can see it', async () => {
    const s = SqliteStore.open({ path: ':memory:', logger: quietLogger });
    open.push(s);
    await s.migrate();
    const records = chain('m', 3);
    await s.appendAudit(records);
    await s.appendRecordings(recording('mr', 2));
    await expect(s.appendAudit(chain('m', 1))).rejects.toThrow(/already stored/);
    expect(await s.auditHead('m')).toEqual(headOf(records));
    expect((await s.getSession('mr'))?.entries).toBe(2);
    await s.close();
    await expect(s.appendAudit(chain('m', 1, headOf(records)))).rejects.toThrow(/not open/);
  });

  it.each(['close', 'leave'])('does not keep the process alive once its writes are done (store left: %s)', async (mode) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'tests/fixtures/sqlite-writer-exit.ts', dbPath, mode], { cwd: repoRoot });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(out).toContain('written');
    expect(code, out).toBe(0);
    expect(committedSeq('exit')).toBe(1);
  });
});
