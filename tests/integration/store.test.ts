/**
 * One suite, both backends: whatever the SQLite store does, the PostgreSQL
 * store must do the same (and vice versa). PostgreSQL is a real server
 * (tests/helpers/postgres.ts); each test gets a fresh database.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../engine/store/migrations.js';
import { listApprovalsSql } from '../../engine/store/queries.js';
import { openStore } from '../../engine/store/open-store.js';
import { StreamBusyError, type ApprovalRecord, type AuditRecord, type Store } from '../../engine/store/store.js';
import { repoRoot } from '../helpers/opa.js';
import { waitFor } from '../helpers/wait.js';

import type { StoreConfig } from '../../engine/config/schema.js';
import { postgresBackend, sqliteBackend } from '../helpers/store-backends.js';

const logger = pino({ level: 'silent' });


/** A chain of `count` records continuing `after` (or starting at seq 1). */
function chain(stream: string, count: number, after: { seq: number; hash: string } | null = null, time0 = 1_700_000_000_000): AuditRecord[] {
  const out: AuditRecord[] = [];
  let prev = after?.hash ?? `genesis-${stream}`;
  for (let i = 1; i <= count; i++) {
    const seq = (after?.seq ?? 0) + i;
    const hash = `h-${stream}-${seq}`;
    // Key order, spacing, non-ASCII and escapes: the store must hand back these exact bytes.
    const event = `{"z":${seq},  "a":"é ✓ \\u2028 \\"q\\"", "stream":"${stream}"}`;
    out.push({ stream, seq, prev, hash, time: time0 + seq * 1000, event });
    prev = hash;
  }
  return out;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

function approval(id: string, overrides: Partial<ApprovalRecord> = {}): ApprovalRecord {
  return {
    id,
    status: 'pending',
    version: 1,
    requester: { sub: 'agent-1', iss: 'https://idp.example', act: { sub: 'alice' }, groups: ['sre'] },
    target: 'orders-db',
    action: '{"sql":"UPDATE orders SET x = 1"}',
    action_hash: 'ah-1',
    reasons: ['prod write needs a DBA'],
    groups: ['dba'],
    min: 1,
    mode: 'hold',
    created_at: '2030-01-01T00:00:00.000Z',
    expires_at: '2030-01-01T00:15:00.000Z',
    votes: [],
    resolution: null,
    resolved_at: null,
    decision_id: `d-${id}`,
    session_id: 's-1',
    policy_revision: 'rev-1',
    ...overrides,
  };
}

describe.each([sqliteBackend('gatehouse-store-'), postgresBackend('store_test')])('$name store', (backend) => {
  const open: Store[] = [];
  const openFresh = async (config?: StoreConfig) => {
    const store = await openStore(config ?? (await backend.fresh()), logger);
    open.push(store);
    return store;
  };

  beforeAll(() => backend.setup());
  afterAll(() => backend.teardown());
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });

  describe('migrations', () => {
    it('applies each version once, in order, and is idempotent', async () => {
      const config = await backend.fresh();
      const store = await openFresh(config);
      expect(store.kind).toBe(backend.name);
      await store.migrate();
      await store.migrate();
      const again = await openFresh(config);
      await again.migrate();
      const rows = await backend.sql(config, 'SELECT version, name, applied_at FROM schema_migrations ORDER BY version');
      expect(rows.map((r) => Number(r['version']))).toEqual(MIGRATIONS.map((m) => m.version));
      expect(rows.map((r) => r['name'])).toEqual(MIGRATIONS.map((m) => m.name));
      expect(rows.every((r) => r['applied_at'])).toBe(true);
    });

    it('refuses a database migrated by a newer build', async () => {
      const config = await backend.fresh();
      const store = await openFresh(config);
      await backend.sql(config, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'from the future', '2030-01-01T00:00:00Z')");
      await expect(store.migrate()).rejects.toThrow(/schema is at version 9999 \("from the future"\), newer than this build knows/);
      await expect(openStore(config, logger)).rejects.toThrow(/newer than this build/);
    });
  });

  describe('audit', () => {
    it('appends, reports the head, and reads back exact bytes across pages', async () => {
      const store = await openFresh();
      expect(await store.auditHead('a')).toBeNull();
      const records = chain('a', 2500);
      for (let i = 0; i < records.length; i += 700) await store.appendAudit(records.slice(i, i + 700));
      expect(await store.auditHead('a')).toEqual({ seq: 2500, hash: 'h-a-2500' });
      const read = await collect(store.readAudit({ stream: 'a' }));
      expect(read).toEqual(records);
      expect(read[0]!.event).toBe(records[0]!.event);
    });

    it('reads every stream in (stream, seq) order across page boundaries', async () => {
      const store = await openFresh();
      const b = chain('b', 1200);
      const a = chain('a', 900);
      const c = chain('c', 5);
      await store.appendAudit(b);
      await store.appendAudit([...c, ...a]);
      expect(await store.auditStreams()).toEqual(['a', 'b', 'c']);
      const all = await collect(store.readAudit());
      expect(all.map((r) => `${r.stream}:${r.seq}`)).toEqual([...a, ...b, ...c].map((r) => `${r.stream}:${r.seq}`));
    });

    it('filters by since/until (inclusive) and afterSeq', async () => {
      const store = await openFresh();
      const a = chain('a', 1500);
      await store.appendAudit(a);
      await store.appendAudit(chain('b', 10));
      const t = (seq: number) => a[seq - 1]!.time;

      const window = await collect(store.readAudit({ stream: 'a', since: t(10), until: t(1200) }));
      expect(window.map((r) => r.seq)).toEqual(Array.from({ length: 1191 }, (_, i) => i + 10));

      const after = await collect(store.readAudit({ stream: 'a', afterSeq: 1495 }));
      expect(after.map((r) => r.seq)).toEqual([1496, 1497, 1498, 1499, 1500]);

      const bothStreams = await collect(store.readAudit({ since: t(1499) }));
      expect(bothStreams.map((r) => `${r.stream}:${r.seq}`)).toEqual(['a:1499', 'a:1500']);

      expect(() => store.readAudit({ afterSeq: 3 })).toThrow(/afterSeq needs a stream/);
    });

    it('appends all or nothing', async () => {
      const store = await openFresh();
      const first = chain('a', 3);
      await store.appendAudit(first);
      const head = { seq: 3, hash: 'h-a-3' };

      // A duplicate seq inside the batch.
      const dup = chain('a', 3, head);
      await expect(store.appendAudit([...dup, dup[2]!])).rejects.toThrow();
      // A batch that is valid for a new stream but collides in another: the database refuses both.
      await expect(store.appendAudit([...chain('fresh', 2), ...chain('a', 1)])).rejects.toThrow(/already stored/);
      // A gap, and a record whose prev is not the stored head's hash.
      await expect(store.appendAudit(chain('a', 2, { seq: 4, hash: 'h-a-4' }))).rejects.toThrow(/does not continue the stored chain/);
      await expect(store.appendAudit(chain('a', 2, { seq: 3, hash: 'forged' }))).rejects.toThrow(/does not continue the stored chain/);

      expect(await store.auditHead('a')).toEqual(head);
      expect(await store.auditHead('fresh')).toBeNull();
      expect(await collect(store.readAudit())).toEqual(first);

      await store.appendAudit(dup);
      expect(await store.auditHead('a')).toEqual({ seq: 6, hash: 'h-a-6' });
    });

    it('keeps every acknowledged append when the writer is killed with SIGKILL', async () => {
      const config = await backend.fresh();
      const target = 'sqlite' in config ? { sqlite: config.sqlite.path } : { postgres: config.postgres.url.reveal() };
      const child = spawn(process.execPath, ['--import', 'tsx', 'tests/fixtures/store-writer.ts', JSON.stringify(target)], { cwd: repoRoot });
      let acked = 0;
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        for (const m of out.matchAll(/acked (\d+)\n/g)) acked = Math.max(acked, Number(m[1]));
        out = out.slice(out.lastIndexOf('\n') + 1);
      });
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      await waitFor(() => {
        if (child.exitCode !== null) throw new Error(`the writer exited early (${child.exitCode}): ${err}`);
        return acked >= 1000;
      }, 'the writer to acknowledge 1000 records', 30_000);
      child.kill('SIGKILL');
      await once(child, 'exit');

      const store = await openFresh(config);
      const head = await store.auditHead('killed');
      expect(head!.seq).toBeGreaterThanOrEqual(acked);
      const seqs = (await collect(store.readAudit({ stream: 'killed' }))).map((r) => r.seq);
      expect(seqs).toEqual(Array.from({ length: head!.seq }, (_, i) => i + 1));
    });

    it('stores checkpoints in seq, then time order', async () => {
      const store = await openFresh();
      const cp = (seq: number, time: number) => ({ stream: 'a', seq, hash: `h-a-${seq}`, time, jws: `jws.${seq}.${time}` });
      await store.appendCheckpoint(cp(20, 3000));
      await store.appendCheckpoint(cp(10, 1000));
      // Idle: the same seq checkpointed again later.
      await store.appendCheckpoint(cp(20, 2000));
      await store.appendCheckpoint({ ...cp(5, 1), stream: 'b' });
      expect(await store.checkpoints('a')).toEqual([cp(10, 1000), cp(20, 2000), cp(20, 3000)]);
      expect(await store.checkpoints('none')).toEqual([]);
    });

    it('lists the streams of checkpoints as well as of records (a stream whose records were all deleted)', async () => {
      const store = await openFresh();
      await store.appendAudit(chain('b', 3));
      await store.appendCheckpoint({ stream: 'c', seq: 30, hash: 'h-c-30', time: 1, jws: 'jws.c' });
      await store.appendCheckpoint({ stream: 'a', seq: 0, hash: 'h-a-0', time: 1, jws: 'jws.a' });
      await store.appendCheckpoint({ stream: 'b', seq: 3, hash: 'h-b-3', time: 1, jws: 'jws.b' });
      expect(await store.auditStreams()).toEqual(['a', 'b', 'c']);
    });

    it('lets one writer claim a stream until it closes', async () => {
      const config = await backend.fresh();
      const first = await openFresh(config);
      const second = await openFresh(config);
      await first.claimAuditStream('gw-1');
      await first.claimAuditStream('gw-1');
      await expect(second.claimAuditStream('gw-1')).rejects.toBeInstanceOf(StreamBusyError);
      await second.claimAuditStream('gw-2');
      await first.close();
      await second.claimAuditStream('gw-1');
      await second.appendAudit(chain('gw-1', 2));
      expect(await second.auditHead('gw-1')).toEqual({ seq: 2, hash: 'h-gw-1-2' });
    });
  });

  describe('masked column places', () => {
    it('keeps each place once per scope, as it was first noted', async () => {
      const store = await openFresh();
      const place = (table_oid: number, attnum: number, noted_at = 1_700_000_000_000) =>
        ({ rule_column: 'public.customers.ssn', table_oid, attnum, noted_at });
      const orders = 'orders-db:7714660835413381223/16384';
      expect(await store.maskedColumnPlaces(orders)).toEqual([]);
      await store.noteMaskedColumnPlaces(orders, [place(16390, 4), place(16402, 4)]);
      // Noted again (by another session, after a restart): the first noting stays.
      await store.noteMaskedColumnPlaces(orders, [place(16390, 4, 1_800_000_000_000), place(4_000_000_000, 7)]);
      await store.noteMaskedColumnPlaces('orders-db:1/16384', [place(16390, 5)]);
      await store.noteMaskedColumnPlaces(orders, []);
      expect(await store.maskedColumnPlaces(orders)).toEqual([place(16390, 4), place(16402, 4), place(4_000_000_000, 7)]);
      expect(await store.maskedColumnPlaces('orders-db:1/16384')).toEqual([place(16390, 5)]);
      // A column in twenty thousand tables (a table per tenant): more places than one statement has parameters for.
      const tenants = Array.from({ length: 20_000 }, (_, i) => place(100_000 + i, 2));
      await store.noteMaskedColumnPlaces('tenants:1/16384', tenants);
      expect(await store.maskedColumnPlaces('tenants:1/16384')).toEqual(tenants);
    });

    const noted = (rule_column: string, table_oid: number, attnum: number, noted_at = 1_700_000_000_000) =>
      ({ rule_column, table_oid, attnum, noted_at });

    it('lists every place of every scope, ordered by scope, rule column, table OID and attribute number', async () => {
      const store = await openFresh();
      expect(await store.listMaskedColumnPlaces()).toEqual([]);
      await store.noteMaskedColumnPlaces('orders-db:2/16384', [noted('public.customers.ssn', 16390, 4), noted('public.customers.email', 4_000_000_000, 3)]);
      await store.noteMaskedColumnPlaces('orders-db:1/16384', [noted('public.customers.ssn', 16402, 4, 1_800_000_000_000), noted('public.customers.ssn', 16390, 5)]);
      // Text order is byte order in both backends: "Z" sorts before "a".
      await store.noteMaskedColumnPlaces('Orders-db:9/1', [noted('public.customers.ssn', 1, 1)]);
      expect(await store.listMaskedColumnPlaces()).toEqual([
        { scope: 'Orders-db:9/1', ...noted('public.customers.ssn', 1, 1) },
        { scope: 'orders-db:1/16384', ...noted('public.customers.ssn', 16390, 5) },
        { scope: 'orders-db:1/16384', ...noted('public.customers.ssn', 16402, 4, 1_800_000_000_000) },
        { scope: 'orders-db:2/16384', ...noted('public.customers.email', 4_000_000_000, 3) },
        { scope: 'orders-db:2/16384', ...noted('public.customers.ssn', 16390, 4) },
      ]);
    });

    it('forgets a place whole, every rule column noted there, and returns what it deleted', async () => {
      const store = await openFresh();
      const scope = 'orders-db:7714660835413381223/16384';
      // Two rules' columns found at one place (a bare-name rule and a qualified one), one at another attnum of the same table.
      const place = [noted('public.customers.ssn', 4_000_000_000, 4, 1_800_000_000_000), noted('ssn', 4_000_000_000, 4)];
      const neighbour = noted('public.customers.ssn', 4_000_000_000, 5);
      await store.noteMaskedColumnPlaces(scope, [...place, neighbour]);
      await store.noteMaskedColumnPlaces('other-db:1/16384', [noted('ssn', 4_000_000_000, 4)]);

      expect(await store.forgetMaskedColumnPlace(scope, 4_000_000_000, 4)).toEqual(place);
      expect(await store.maskedColumnPlaces(scope)).toEqual([neighbour]);
      // Other scopes keep the same numbers: OIDs mean something only in their own database.
      expect(await store.maskedColumnPlaces('other-db:1/16384')).toEqual([noted('ssn', 4_000_000_000, 4)]);
      expect(await store.forgetMaskedColumnPlace(scope, 4_000_000_000, 4)).toEqual([]);
      expect(await store.forgetMaskedColumnPlace('no-such-scope', 4_000_000_000, 5)).toEqual([]);

      // Put back as they were (how a forget whose audit event failed is undone), noted_at and all.
      await store.noteMaskedColumnPlaces(scope, place);
      expect(await store.maskedColumnPlaces(scope)).toEqual([place[0], neighbour, place[1]]);
    });
  });

  describe('approvals', () => {
    it('creates, gets and lists with filters, newest first', async () => {
      const store = await openFresh();
      const a = approval('a1', { created_at: '2030-01-01T00:00:01.000Z', expires_at: '2030-01-01T00:10:00.000Z' });
      const b = approval('a2', { created_at: '2030-01-01T00:00:02.000Z', expires_at: '2030-01-01T00:20:00.000Z', action_hash: 'ah-2' });
      // An offset time: filters compare instants, not text.
      const c = approval('a3', { created_at: '2030-01-01T02:00:03.000+02:00', expires_at: '2030-01-01T00:05:00.000Z', status: 'denied', requester: { ...a.requester, sub: 'agent-2' } });
      for (const r of [a, b, c]) await store.createApproval(r);

      expect(await store.getApproval('a1')).toEqual(a);
      expect(await store.getApproval('missing')).toBeNull();
      await expect(store.createApproval(a)).rejects.toThrow();

      const ids = async (q: Parameters<Store['listApprovals']>[0]) => (await store.listApprovals(q)).map((r) => r.id);
      expect(await ids({})).toEqual(['a3', 'a2', 'a1']);
      expect(await ids({ status: 'pending' })).toEqual(['a2', 'a1']);
      expect(await ids({ requester_sub: 'agent-1', action_hash: 'ah-2' })).toEqual(['a2']);
      expect(await ids({ expires_before: '2030-01-01T00:10:00.000Z' })).toEqual(['a3', 'a1']);
      expect(await ids({ status: 'pending', expires_before: '2030-01-01T01:10:00+01:00' })).toEqual(['a1']);
      expect(await ids({ limit: 2 })).toEqual(['a3', 'a2']);
      // The next page starts after the last record of the one before.
      expect(await ids({ limit: 2, after: { created_at: '2030-01-01T00:00:02.000Z', id: 'a2' } })).toEqual(['a1']);
      expect(await ids({ after: { created_at: '2030-01-01T00:00:03.000Z', id: 'a3' } })).toEqual(['a2', 'a1']);
    });

    it('pages through one status newest first, ties broken by id, from the (status, created_at, id) index', async () => {
      const config = await backend.fresh();
      const store = await openFresh(config);
      await store.migrate();
      // Three requests a millisecond, interleaved with decided ones: pages must cut through ties.
      const all: ApprovalRecord[] = [];
      for (let i = 0; i < 60; i++) {
        const at = new Date(Date.parse('2030-01-01T00:00:00.000Z') + Math.floor(i / 3)).toISOString();
        all.push(approval(`p${String(i).padStart(2, '0')}`, { created_at: at, status: i % 4 === 0 ? 'expired' : 'pending' }));
      }
      for (const r of all) await store.createApproval(r);
      const expected = all.filter((r) => r.status === 'pending').map((r) => r.id).reverse();
      const seen: string[] = [];
      let after: { created_at: string; id: string } | undefined;
      for (;;) {
        const page = await store.listApprovals({ status: 'pending', limit: 7, ...(after ? { after } : {}) });
        seen.push(...page.map((r) => r.id));
        if (page.length < 7) break;
        after = { created_at: page.at(-1)!.created_at, id: page.at(-1)!.id };
      }
      expect(seen).toEqual(expected);
      if (backend.name === 'sqlite') {
        // Without the index, SQLite found the status by (status, expires_at) and sorted all of it for every page.
        const { text, params } = listApprovalsSql(() => '?', { status: 'pending', limit: 7, after: { created_at: '2030-01-01T00:00:00.010Z', id: 'p30' } });
        const inline = params.reduce<string>((sql, v) => sql.replace('?', typeof v === 'number' ? String(v) : `'${String(v)}'`), text);
        const plan = (await backend.sql(config, `EXPLAIN QUERY PLAN ${inline}`)).map((r) => String(r['detail'])).join('\n');
        expect(plan).toMatch(/USING INDEX approvals_status_created \(status=\? AND \(created_at,id\)<\(\?,\?\)\)/);
        expect(plan).not.toMatch(/TEMP B-TREE/);
      }
    });

    it('counts a requester\'s pending requests in their window, up to a bound', async () => {
      const store = await openFresh();
      const agent = { sub: 'agent-1', iss: 'https://idp.example' };
      const now = '2030-01-01T00:10:00.000Z';
      await store.createApproval(approval('c1'));
      await store.createApproval(approval('c2', { action_hash: 'ah-2' }));
      await store.createApproval(approval('c3', { action_hash: 'ah-3' }));
      await store.createApproval(approval('c4', { status: 'approved' }));
      await store.createApproval(approval('c5', { status: 'denied' }));
      await store.createApproval(approval('c6', { expires_at: '2030-01-01T00:10:00.000Z' })); // its window has ended
      await store.createApproval(approval('c7', { requester: { ...approval('x').requester, iss: 'https://other.example' } }));
      await store.createApproval(approval('c8', { requester: { ...approval('x').requester, sub: 'agent-2' } }));
      expect(await store.countPendingApprovals(agent, now, 100)).toBe(3);
      expect(await store.countPendingApprovals(agent, '2030-01-01T01:10:00+01:00', 100)).toBe(3);
      expect(await store.countPendingApprovals(agent, now, 2)).toBe(2);
      expect(await store.countPendingApprovals({ ...agent, iss: 'https://other.example' }, now, 100)).toBe(1);
      expect(await store.countPendingApprovals({ sub: 'nobody', iss: agent.iss }, now, 100)).toBe(0);
      expect(await store.countPendingApprovals(agent, '2030-01-01T00:15:00.000Z', 100)).toBe(0);
    });

    it('updates by compare-and-set on the version', async () => {
      const store = await openFresh();
      await store.createApproval(approval('x'));
      const vote = { sub: 'dba-1', decision: 'approve' as const, comment: null, at: '2030-01-01T00:01:00.000Z' };
      const next = { ...approval('x'), status: 'approved' as const, votes: [vote], resolved_at: vote.at };

      const stored = await store.updateApproval(next, 1);
      expect(stored).toEqual({ ...next, version: 2 });
      expect(await store.getApproval('x')).toEqual({ ...next, version: 2 });
      // Someone else's update, made from the version it read before ours.
      expect(await store.updateApproval({ ...approval('x'), status: 'denied' }, 1)).toBeNull();
      expect((await store.getApproval('x'))?.status).toBe('approved');
      expect(await store.updateApproval(next, 7)).toBeNull();
      expect(await store.updateApproval(approval('nope'), 1)).toBeNull();
      expect(await store.listApprovals({ status: 'approved' })).toEqual([{ ...next, version: 2 }]);
    });

    it('notes where an approval\'s audit events are, once each, in (stream, seq) order', async () => {
      const store = await openFresh();
      await store.noteApprovalEvent('x', { stream: 'gw-b', seq: 2 });
      await store.noteApprovalEvent('x', { stream: 'gw-a', seq: 9 });
      await store.noteApprovalEvent('x', { stream: 'gw-a', seq: 9 });
      await store.noteApprovalEvent('y', { stream: 'gw-a', seq: 10 });
      expect(await store.approvalEventRefs('x')).toEqual([{ stream: 'gw-a', seq: 9 }, { stream: 'gw-b', seq: 2 }]);
      expect(await store.approvalEventRefs('none')).toEqual([]);
    });

    it('tells every store on the same database about changes', async () => {
      const config = await backend.fresh();
      const one = await openFresh(config);
      const two = await openFresh(config);
      const heard = { one: [] as string[], two: [] as string[], gone: [] as string[] };
      one.onApprovalChange((id) => heard.one.push(id));
      two.onApprovalChange((id) => heard.two.push(id));
      const unsubscribe = two.onApprovalChange((id) => heard.gone.push(id));
      // A throwing listener must not keep the others from hearing.
      two.onApprovalChange(() => {
        throw new Error('listener bug');
      });

      await one.createApproval(approval('n1'));
      await one.updateApproval({ ...approval('n1'), status: 'approved' }, 1);
      await waitFor(() => heard.one.includes('n1') && heard.two.includes('n1'), 'both stores to hear of n1');
      await waitFor(() => heard.gone.includes('n1'), 'the second listener to hear of n1');

      unsubscribe();
      await two.updateApproval({ ...approval('n1'), status: 'consumed' }, 2);
      await waitFor(() => heard.one.length === 2 && heard.two.length === 2, 'both stores to hear of the second change');
      expect(heard.gone).toEqual(['n1']);
      // A failed compare-and-set changes nothing, so it wakes no one.
      expect(await one.updateApproval(approval('n1'), 1)).toBeNull();
      await one.createApproval(approval('n2'));
      await one.updateApproval({ ...approval('n2'), status: 'denied' }, 1);
      await waitFor(() => heard.one.at(-1) === 'n2', 'n2');
      expect(heard.one).toEqual(['n1', 'n1', 'n2']);
    });
  });
});

/** What only the PostgreSQL store has: connections that can drop and come back. */
describe('postgres store connections', () => {
  const backend = postgresBackend('store_test');
  const lines: string[] = [];
  const captured = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  const logged = (msg: string) => lines.filter((l) => (JSON.parse(l) as { msg: string }).msg === msg).length;
  const open: Store[] = [];
  beforeAll(() => backend.setup());
  afterAll(() => backend.teardown());
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });
  const openOn = async (config: StoreConfig) => {
    const store = await openStore(config, captured);
    open.push(store);
    return store;
  };

  it('re-LISTENs after its connection is killed, and logs it', async () => {
    const config = await backend.fresh();
    const listening = await openOn(config);
    const writer = await openOn(config);
    const heard: string[] = [];
    listening.onApprovalChange((id) => heard.push(id));
    await writer.createApproval(approval('r1'));

    const before = logged('approval LISTEN connection re-established');
    const killed = await backend.sql(config, "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'");
    expect(killed.length).toBe(2);
    await waitFor(() => logged('approval LISTEN connection re-established') >= before + 2, 'both listeners to reconnect');
    expect(logged('approval LISTEN connection dropped; reconnecting')).toBeGreaterThanOrEqual(2);

    await writer.updateApproval({ ...approval('r1'), status: 'approved' }, 1);
    await waitFor(() => heard.includes('r1'), 'the change after reconnecting');
  });

  it('re-claims a stream whose lock connection dropped, unless another process took it', async () => {
    const config = await backend.fresh();
    const first = await openOn(config);
    const second = await openOn(config);
    await first.claimAuditStream('gw');
    await first.appendAudit(chain('gw', 1));

    await backend.sql(config, "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())");
    await waitFor(() => logged('audit stream claim connection dropped; the next append re-claims') > 0, 'the claim loss to be noticed');
    await second.claimAuditStream('gw');
    await expect(first.appendAudit(chain('gw', 1, { seq: 1, hash: 'h-gw-1' }))).rejects.toBeInstanceOf(StreamBusyError);

    await second.close();
    await first.appendAudit(chain('gw', 1, { seq: 1, hash: 'h-gw-1' }));
    expect(await first.auditHead('gw')).toEqual({ seq: 2, hash: 'h-gw-2' });
  });
});
