/**
 * The session recorder against an in-memory store: batching, flush on
 * close, disabled targets, failures, and that nothing but the transcript's
 * own fields can reach the store.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { RecordingsConfig } from '../../engine/config/schema.js';
import { MAX_STATEMENT_CHARS, renderPostgresEntry } from '../../engine/recording/postgres-transcript.js';
import { SessionRecorder } from '../../engine/recording/recorder.js';
import type { PostgresStatementRecord, PostgresTranscriptEntry, SessionOpen } from '../../engine/recording/types.js';
import type { RecordingBatch } from '../../engine/store/store.js';
import { waitFor } from '../helpers/wait.js';

class MemoryStore {
  readonly batches: RecordingBatch[] = [];
  /** Called synchronously on each write: the test fails the write by throwing. */
  failWith: Error | null = null;
  calls = 0;
  async appendRecordings(batch: RecordingBatch): Promise<void> {
    this.calls += 1;
    if (this.failWith) throw this.failWith;
    this.batches.push(structuredClone(batch));
  }
  get entries(): PostgresTranscriptEntry[] {
    return this.batches.flatMap((b) => b.entries.map((e) => JSON.parse(e.entry) as PostgresTranscriptEntry));
  }
  get rawEntries(): string[] {
    return this.batches.flatMap((b) => b.entries.map((e) => e.entry));
  }
  session(id: string) {
    return this.batches.flatMap((b) => b.sessions).filter((s) => s.id === id).at(-1);
  }
}

const SETTINGS: RecordingsConfig = { viewer_groups: [], max_batch: 500, flush_interval_ms: 60_000, max_queue: 100_000 };

interface Harness {
  store: MemoryStore;
  recorder: SessionRecorder;
  registry: Registry;
  logs: Array<{ level: number; msg: string } & Record<string, unknown>>;
}

const open: SessionRecorder[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((r) => r.close()));
});

function harness(settings: Partial<RecordingsConfig> = {}, closeTimeoutMs = 200, now?: () => number): Harness {
  const store = new MemoryStore();
  const registry = new Registry();
  const logs: Harness['logs'] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) logs.push(JSON.parse(line));
      done();
    },
  });
  const recorder = new SessionRecorder({
    store,
    settings: { ...SETTINGS, ...settings },
    targets: [
      { name: 'orders-db', recording: { enabled: true } },
      { name: 'quiet-db', recording: { enabled: false } },
    ],
    gateway: 'gw-test',
    logger: pino({ level: 'info' }, sink),
    registry,
    closeTimeoutMs,
    now,
  });
  open.push(recorder);
  return { store, recorder, registry, logs };
}

let sessions = 0;
function meta(overrides: Partial<SessionOpen<'postgres'>> = {}): SessionOpen<'postgres'> {
  return {
    session_id: `s-${++sessions}`,
    target: 'orders-db',
    target_kind: 'postgres',
    identity: { sub: 'agent-1', iss: 'https://idp.test', groups: ['analysts'], act: { sub: 'alice' } },
    source_ip: '10.0.0.7',
    protocol: 'postgres',
    started_at: 1_750_000_000_000,
    ...overrides,
  };
}

function statement(i: number, overrides: Partial<PostgresStatementRecord> = {}): PostgresStatementRecord {
  return {
    time: 1_750_000_000_000 + i * 10,
    statement: `SELECT id, email FROM customers WHERE id = ${i}`,
    decision: 'allow',
    reasons: ['analysts may read customers'],
    decision_id: `d-${i}`,
    audit: { stream: 'gw-test', seq: i },
    duration_ms: 1.5,
    rows: 1,
    command_tag: 'SELECT 1',
    masked: [{ column: 'public.customers.email', detector: null, count: 1 }],
    ...overrides,
  };
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const value = (m?.values as Array<{ value: number; labels: Record<string, string> }> | undefined)?.find((v) =>
    Object.entries(labels).every(([k, l]) => v.labels[k] === l),
  );
  return value?.value ?? 0;
}

describe('SessionRecorder', () => {
  it('queues appends without touching the store, and writes a partial batch after the interval', async () => {
    const { store, recorder } = harness({ flush_interval_ms: 30 });
    const rec = recorder.open(meta());
    for (let i = 1; i <= 10; i++) rec.append(statement(i));
    expect(store.calls).toBe(0);
    expect(rec.appended).toBe(10);
    await waitFor(() => store.batches.length > 0, 'the timed write');
    expect(store.batches).toHaveLength(1);
    const [batch] = store.batches;
    expect(batch!.sessions.map((s) => s.id)).toEqual([rec.session_id]);
    expect(batch!.entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(batch!.entries[0]).toMatchObject({ session_id: rec.session_id, time: 1_750_000_000_010, decision: 'allow' });
    expect(batch!.sessions[0]).toMatchObject({
      protocol: 'postgres', format: 'gatehouse.postgres-transcript.v1', target: 'orders-db', target_kind: 'postgres',
      sub: 'agent-1', act_sub: 'alice', groups: ['analysts'], source_ip: '10.0.0.7', gateway: 'gw-test', ended_at: null, dropped_entries: 0,
    });
  });

  it('writes full batches on the next turn, never inside append()', async () => {
    const { store, recorder } = harness({ max_batch: 100 });
    const rec = recorder.open(meta());
    for (let i = 1; i <= 250; i++) rec.append(statement(i));
    // Full batches are due, but append() only queued them.
    expect(store.calls).toBe(0);
    await waitFor(() => store.entries.length >= 200, 'the two full batches');
    expect(store.batches.map((b) => b.entries.length)).toEqual([100, 100]);
    // The remainder waits for the interval (60 s here) or a flush.
    await new Promise((r) => setTimeout(r, 30));
    expect(store.entries).toHaveLength(200);
    expect(await recorder.flush()).toBe(true);
    expect(store.entries.map((e) => e.seq)).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
  });

  it('flushes on close and ends the sessions still open', async () => {
    const { store, recorder } = harness();
    const a = recorder.open(meta());
    const b = recorder.open(meta());
    a.append(statement(1));
    b.append(statement(2, { decision: 'deny', reasons: ['no grant for writes'], rows: null, command_tag: null, masked: [] }));
    a.close({ ended_at: 1_750_000_009_000, reason: 'client closed' });
    a.close({ ended_at: 1, reason: 'again' });
    a.append(statement(3));
    await recorder.close();
    expect(store.session(a.session_id)).toMatchObject({ ended_at: 1_750_000_009_000, end_reason: 'client closed', dropped_entries: 1 });
    expect(store.session(b.session_id)).toMatchObject({ end_reason: 'gateway stopped' });
    expect(store.session(b.session_id)!.ended_at).toEqual(expect.any(Number));
    expect(store.entries.map((e) => [e.decision_id, e.decision])).toEqual([['d-1', 'allow'], ['d-2', 'deny']]);
    // Stopped: new sessions are not recorded.
    expect(recorder.open(meta()).enabled).toBe(false);
  });

  it('records nothing for a target with recording.enabled: false', async () => {
    const { store, recorder } = harness();
    const rec = recorder.open(meta({ target: 'quiet-db' }));
    expect(rec.enabled).toBe(false);
    rec.append(statement(1));
    rec.close({ ended_at: Date.now() });
    expect(await recorder.flush()).toBe(true);
    await recorder.close();
    expect(store.batches).toEqual([]);
  });

  it('stores only the transcript\'s own fields: no place for row values', async () => {
    const { store, recorder, registry } = harness();
    const rec = recorder.open(meta());
    // TypeScript refuses a row payload outright…
    rec.append({
      ...statement(1),
      // @ts-expect-error -- the entry has no field for row data
      values: [['alice@example.com']],
    });
    // …and an object that only structurally fits loses everything but the known fields.
    const wider = Object.assign(statement(2), { row: { email: 'bob@example.com' }, data_rows: ['carol@example.com'] });
    const masked = [{ column: 'public.customers.email', detector: 'email', count: 2, sample: 'dave@example.com' }];
    rec.append({ ...wider, masked, error: { sqlstate: '23505', message: 'duplicate key value violates unique constraint "customers_email_key"', detail: 'Key (email)=(erin@example.com) already exists.' } as PostgresStatementRecord['error'] });
    // Fields that could smuggle text are checked: a non-count row number, a free-text tag.
    rec.append(statement(3, { rows: [{ email: 'frank@example.com' }] as unknown as number }));
    rec.append(statement(4, { command_tag: 'SELECT grace@example.com' }));
    rec.append(statement(5, { masked: [{ column: 'c', detector: null, count: 'heidi@example.com' as unknown as number }] }));
    rec.close({ ended_at: Date.now() });
    await recorder.flush();

    const raw = store.rawEntries.join('\n');
    for (const value of ['alice@', 'bob@', 'carol@', 'dave@', 'erin@', 'frank@', 'grace@', 'heidi@']) expect(raw).not.toContain(value);
    expect(store.entries.map((e) => e.seq)).toEqual([1, 2]);
    for (const entry of store.entries) {
      expect(Object.keys(entry).sort()).toEqual(
        ['approval_id', 'audit', 'command_tag', 'decision', 'decision_id', 'duration_ms', 'error', 'masked', 'reasons', 'rows', 'seq', 'statement', 'time'],
      );
    }
    expect(store.entries[1]!.error).toEqual({ sqlstate: '23505', message: 'duplicate key value violates unique constraint "customers_email_key"' });
    expect(store.entries[1]!.masked).toEqual([{ column: 'public.customers.email', detector: 'email', count: 2 }]);
    // The refused entries are lost loudly, and the session says so.
    expect(store.session(rec.session_id)!.dropped_entries).toBe(3);
    expect(await metric(registry, 'gatehouse_recording_entries_dropped_total', { reason: 'invalid' })).toBe(3);
  });

  it('copies the entry, so a proxy reusing its objects cannot change what was recorded', async () => {
    const { store, recorder } = harness();
    const rec = recorder.open(meta());
    const reasons = ['first reason'];
    const masked = [{ column: 'public.customers.email', detector: null, count: 1 }];
    rec.append(statement(1, { reasons, masked }));
    reasons.push('added later');
    masked[0]!.count = 99;
    await recorder.flush();
    expect(store.entries[0]).toMatchObject({ reasons: ['first reason'], masked: [{ count: 1 }] });
  });

  it('dates an entry without a time from when it finished, less its duration', async () => {
    const { store, recorder } = harness({}, 200, () => 1_750_000_000_500);
    const rec = recorder.open(meta());
    rec.append(statement(1, { time: undefined, duration_ms: 12.4 }));
    await recorder.flush();
    expect(store.entries[0]!.time).toBe(1_750_000_000_488);
  });

  it('truncates a huge statement and says so', async () => {
    const { store, recorder } = harness();
    const rec = recorder.open(meta());
    rec.append(statement(1, { statement: `SELECT '${'x'.repeat(MAX_STATEMENT_CHARS)}'` }));
    await recorder.flush();
    expect(store.entries[0]!.statement).toHaveLength(MAX_STATEMENT_CHARS);
    expect(store.entries[0]!.statement_truncated).toBe(true);
  });

  it('refuses malformed session metadata and a session id already open', () => {
    const { recorder } = harness();
    expect(() => recorder.open(meta({ identity: { sub: '', iss: 'https://idp.test', groups: [] } }))).toThrow(/identity\.sub is missing/);
    expect(() => recorder.open(meta({ identity: { sub: 'agent-1', iss: '', groups: [] } }))).toThrow(/identity\.iss is missing/);
    expect(() => recorder.open(meta({ started_at: Number.NaN }))).toThrow(/started_at/);
    const first = recorder.open(meta({ session_id: 'dup' }));
    expect(first.enabled).toBe(true);
    expect(() => recorder.open(meta({ session_id: 'dup' }))).toThrow(/already being recorded/);
  });

  it('logs and counts a failed write, keeps the entries, and retries until the store is back', async () => {
    const { store, recorder, registry, logs } = harness({ flush_interval_ms: 10 });
    store.failWith = new Error('disk I/O error');
    const rec = recorder.open(meta());
    for (let i = 1; i <= 5; i++) expect(() => rec.append(statement(i))).not.toThrow();
    await waitFor(() => store.calls >= 1 && logs.some((l) => l.msg.startsWith('session recording write failed')), 'the failed write');
    expect(recorder.healthy).toBe(false);
    expect(recorder.queued).toBe(5);
    expect(await metric(registry, 'gatehouse_recording_write_failures_total')).toBeGreaterThanOrEqual(1);
    const failure = logs.find((l) => l.msg.startsWith('session recording write failed'))!;
    expect(failure).toMatchObject({ level: 50, entries: 5, sessions: 1, err: { message: 'disk I/O error' } });

    store.failWith = null;
    await waitFor(() => store.entries.length === 5, 'the retry (back-off 250 ms)');
    expect(recorder.healthy).toBe(true);
    expect(store.entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(logs.some((l) => l.msg === 'session recording writes recovered')).toBe(true);
  });

  it('drops past max_queue while the store is down, counts it, and marks the session', async () => {
    const { store, recorder, registry, logs } = harness({ max_queue: 1000, max_batch: 10_000 });
    store.failWith = new Error('connection refused');
    const rec = recorder.open(meta());
    for (let i = 1; i <= 999; i++) rec.append(statement(i));
    expect(recorder.accepting).toBe(true);
    for (let i = 1000; i <= 1200; i++) rec.append(statement(i));
    expect(recorder.queued).toBe(1000);
    expect(recorder.accepting).toBe(false);
    expect(await metric(registry, 'gatehouse_recording_entries_dropped_total', { reason: 'queue_full' })).toBe(200);
    expect(logs.some((l) => l.msg === 'recording entries dropped' && l.level === 50)).toBe(true);
    store.failWith = null;
    expect(await recorder.flush()).toBe(true);
    expect(store.entries).toHaveLength(1000);
    expect(recorder.accepting).toBe(true);
    expect(store.session(rec.session_id)!.dropped_entries).toBe(200);
  });

  it('gives up on a dead store at close after its timeout, loudly', async () => {
    const { store, recorder, registry, logs } = harness({}, 100);
    store.failWith = new Error('gone');
    const rec = recorder.open(meta());
    rec.append(statement(1));
    rec.append(statement(2));
    await recorder.close();
    expect(logs.some((l) => l.level === 50 && /SESSION RECORDINGS LOST/.test(l.msg) && l.entries === 2)).toBe(true);
    expect(await metric(registry, 'gatehouse_recording_entries_dropped_total', { reason: 'shutdown' })).toBe(2);
  });

  it('the hot path only checks, copies and queues: appends reach the store later, in batches', async () => {
    const { recorder, store } = harness({ max_batch: 10_000, max_queue: 10_000_000 });
    const rec = recorder.open(meta());
    const input = statement(1);
    const n = 100_000;
    for (let i = 0; i < n; i++) rec.append(input);
    expect(store.calls).toBe(0);
    await recorder.close();
    expect(store.batches.reduce((sum, b) => sum + b.entries.length, 0)).toBe(n);
    expect(store.calls).toBeLessThanOrEqual(Math.ceil(n / 10_000) + 2);
  });
});

describe('the Postgres transcript as text', () => {
  const base: PostgresTranscriptEntry = {
    seq: 1, time: 1_000_012, statement: 'SELECT id, email FROM customers', decision: 'allow', reasons: ['ok'], decision_id: 'd1',
    audit: null, approval_id: null, duration_ms: 12, rows: 3, command_tag: 'SELECT 3', error: null,
    masked: [{ column: 'public.customers.email', detector: null, count: 3 }],
  };

  it('shows time, decision, statement, rows, duration and masking counts', () => {
    expect(renderPostgresEntry(base, 1_000_000)).toBe('[+0.012s] ALLOW  SELECT id, email FROM customers  (3 rows, 12 ms; masked public.customers.email×3)');
  });

  it('shows a deny with its reasons, and an error with its SQLSTATE', () => {
    expect(renderPostgresEntry({ ...base, decision: 'deny', reasons: ['analysts may not write', 'prod'], statement: 'DELETE FROM customers', rows: null, masked: [] }, 1_000_000))
      .toBe('[+0.012s] DENY   DELETE FROM customers  (analysts may not write; prod)');
    expect(renderPostgresEntry({ ...base, rows: null, error: { sqlstate: '42P01', message: 'relation "nope" does not exist' }, masked: [] }, 1_000_000))
      .toBe('[+0.012s] ALLOW  SELECT id, email FROM customers  (error 42P01: relation "nope" does not exist, 12 ms)');
  });

  it('indents the further lines of a multi-line statement', () => {
    expect(renderPostgresEntry({ ...base, statement: 'SELECT id\nFROM t', rows: 1, masked: [] }, 1_000_000)).toBe('[+0.012s] ALLOW  SELECT id\n                 FROM t  (1 row, 12 ms)');
  });
});
