/**
 * Session recordings in both store backends (migration 2): the same suite on
 * SQLite and on a real PostgreSQL server (tests/helpers/postgres.ts).
 */
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LEDGER_SQL, MIGRATIONS } from '../../engine/store/migrations.js';
import { openStore } from '../../engine/store/open-store.js';
import type { SessionEntryRecord, SessionRecordingRow, Store } from '../../engine/store/store.js';

import type { StoreConfig } from '../../engine/config/schema.js';
import { postgresBackend, sqliteBackend } from '../helpers/store-backends.js';

const logger = pino({ level: 'silent' });


function header(id: string, overrides: Partial<SessionRecordingRow> = {}): SessionRecordingRow {
  return {
    id,
    protocol: 'postgres',
    format: 'gatehouse.postgres-transcript.v1',
    target: 'orders-db',
    target_kind: 'postgres',
    sub: 'agent-1',
    iss: 'https://idp.test',
    act_sub: 'alice',
    groups: ['analysts', 'sre'],
    source_ip: '10.0.0.7',
    gateway: 'gw-1',
    started_at: 1_750_000_000_000,
    ended_at: null,
    end_reason: null,
    dropped_entries: 0,
    ...overrides,
  };
}

function entries(sessionId: string, from: number, to: number, deny: (seq: number) => boolean = () => false): SessionEntryRecord[] {
  const out: SessionEntryRecord[] = [];
  for (let seq = from; seq <= to; seq++) {
    const decision = deny(seq) ? 'deny' : 'allow';
    // Key order, non-ASCII and escapes: the store must hand back these exact bytes.
    out.push({ session_id: sessionId, seq, time: 1_750_000_000_000 + seq, decision, entry: `{"seq":${seq},  "statement":"SELECT 'é ✓ \\u2028'","decision":"${decision}"}` });
  }
  return out;
}

describe.each([sqliteBackend('gatehouse-store-rec-'), postgresBackend('rec_test')])('$name store: session recordings', (backend) => {
  const open: Store[] = [];
  const openFresh = async (config?: StoreConfig): Promise<Store> => {
    const store = await openStore(config ?? (await backend.fresh()), logger);
    open.push(store);
    return store;
  };

  beforeAll(() => backend.setup());
  afterAll(() => backend.teardown());
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });

  it('writes headers and entries, counts statements and denies, and reads entries back byte for byte in pages', async () => {
    const store = await openFresh();
    await store.appendRecordings({ sessions: [header('s1')], entries: entries('s1', 1, 1200, (seq) => seq % 100 === 0) });
    const session = await store.getSession('s1');
    expect(session).toEqual({ ...header('s1'), entries: 1200, denies: 12 });

    const first = await store.sessionEntries('s1', { limit: 1000 });
    const rest = await store.sessionEntries('s1', { afterSeq: 1000, limit: 1000 });
    expect(first).toHaveLength(1000);
    expect([...first, ...rest]).toEqual(entries('s1', 1, 1200, (seq) => seq % 100 === 0));
    expect(await store.sessionEntries('s1', { afterSeq: 1200 })).toEqual([]);
    expect(await store.sessionEntries('nope')).toEqual([]);
    expect(await store.getSession('nope')).toBeNull();
    await expect(store.sessionEntries('s1', { limit: 0 })).rejects.toThrow(/limit must be/);
  });

  it('is idempotent: a retried batch adds nothing, and a header only gains its end and its losses', async () => {
    const store = await openFresh();
    const batch = { sessions: [header('s1')], entries: entries('s1', 1, 3) };
    await store.appendRecordings(batch);
    await store.appendRecordings(batch);
    expect((await store.getSession('s1'))!.entries).toBe(3);

    await store.appendRecordings({ sessions: [header('s1', { ended_at: 1_750_000_005_000, end_reason: 'client closed', dropped_entries: 2 })], entries: entries('s1', 4, 5) });
    // An older write of the header, replayed late, cannot reopen the session or forget its losses.
    await store.appendRecordings(batch);
    expect(await store.getSession('s1')).toMatchObject({ ended_at: 1_750_000_005_000, end_reason: 'client closed', dropped_entries: 2, entries: 5 });
    // The immutable fields are those of the first write.
    await store.appendRecordings({ sessions: [header('s1', { sub: 'someone-else' })], entries: [] });
    expect((await store.getSession('s1'))!.sub).toBe('agent-1');
  });

  it('writes a batch all or nothing', async () => {
    const store = await openFresh();
    const bad = entries('s1', 1, 3);
    (bad[1] as { entry: string | null }).entry = null;
    await expect(store.appendRecordings({ sessions: [header('s1')], entries: bad })).rejects.toThrow();
    expect(await store.getSession('s1')).toBeNull();
    expect(await store.sessionEntries('s1')).toEqual([]);
    await expect(store.appendRecordings({ sessions: [header('s2'), header('s2')], entries: [] })).rejects.toThrow(/appears twice/);
    await expect(store.appendRecordings({ sessions: [], entries: entries('s3', 0, 0) })).rejects.toThrow(/invalid seq 0/);
  });

  it('lists newest first, by target and by who (the caller or the human it acted for)', async () => {
    const store = await openFresh();
    await store.appendRecordings({
      sessions: [
        header('a', { started_at: 1000 }),
        header('b', { started_at: 3000, target: 'crm-db', sub: 'agent-2', act_sub: null }),
        header('c', { started_at: 2000, sub: 'bob', act_sub: null }),
      ],
      entries: [...entries('a', 1, 2), ...entries('b', 1, 1, () => true)],
    });
    const ids = async (query: Parameters<Store['listSessions']>[0]) => (await store.listSessions(query)).map((s) => s.id);
    expect(await ids({})).toEqual(['b', 'c', 'a']);
    expect(await ids({ limit: 2 })).toEqual(['b', 'c']);
    expect(await ids({ target: 'orders-db' })).toEqual(['c', 'a']);
    expect(await ids({ who: { sub: 'alice' } })).toEqual(['a']);
    expect(await ids({ who: { sub: 'bob' } })).toEqual(['c']);
    expect(await ids({ who: { sub: 'agent-1' }, target: 'orders-db' })).toEqual(['a']);
    // A subject within its issuer only.
    expect(await ids({ who: { sub: 'alice', iss: 'https://idp.test' } })).toEqual(['a']);
    expect(await ids({ who: { sub: 'alice', iss: 'https://other.test' } })).toEqual([]);
    const [b] = await store.listSessions({ target: 'crm-db' });
    expect(b).toMatchObject({ entries: 1, denies: 1, act_sub: null, groups: ['analysts', 'sre'] });
  });

  it('reads audit records by (stream, seq) for linking entries to their decisions', async () => {
    const store = await openFresh();
    await store.appendAudit([
      { stream: 'gw-1', seq: 1, prev: 'g', hash: 'h1', time: 1, event: '{"n":1}' },
      { stream: 'gw-1', seq: 2, prev: 'h1', hash: 'h2', time: 2, event: '{"n":2}' },
    ]);
    const found = await store.auditRecordsAt([{ stream: 'gw-1', seq: 2 }, { stream: 'gw-1', seq: 9 }, { stream: 'other', seq: 1 }]);
    expect(found).toEqual([{ stream: 'gw-1', seq: 2, prev: 'h1', hash: 'h2', time: 2, event: '{"n":2}' }]);
    expect(await store.auditRecordsAt([])).toEqual([]);
  });

  it('upgrades a database at version 1 and keeps its audit trail', async () => {
    const config = await backend.fresh();
    const v1 = MIGRATIONS.find((m) => m.version === 1)!;
    const ledgerRow = backend.name === 'sqlite'
      ? "INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, 'audit, checkpoints, approvals', '2025-01-01T00:00:00Z')"
      : "INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, 'audit, checkpoints, approvals', now())";
    await backend.exec(config, `${LEDGER_SQL[backend.name]};\n${v1.sql[backend.name]}\n${ledgerRow};\n` +
      `INSERT INTO audit_records (stream, seq, prev, hash, time, event) VALUES ('gw-1', 1, 'g', 'h1', 1, '{"n":1}');`);
    const store = await openFresh(config);
    expect(await store.listSessions()).toEqual([]);
    expect(await store.auditRecordsAt([{ stream: 'gw-1', seq: 1 }])).toHaveLength(1);
    await store.appendRecordings({ sessions: [header('s1')], entries: entries('s1', 1, 1) });
    expect((await store.getSession('s1'))!.entries).toBe(1);
  });
});
