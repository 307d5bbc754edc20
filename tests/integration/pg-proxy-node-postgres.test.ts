/**
 * node-postgres (and pg-cursor) through the Postgres proxy against a real
 * PostgreSQL: the extended protocol allowed and denied, transactions and
 * pipelines that follow the server's rules, decisions made once per Parse,
 * portals read with row limits, binary results byte-exact, and the
 * asynchronous messages (NotificationResponse, NoticeResponse,
 * ParameterStatus). Where node-postgres hides the wire (several statements
 * before one Sync, binary bytes it decodes as UTF-8), a bare wire client
 * (tests/helpers/pg-pipeline.ts) sends the same messages to the proxy and
 * straight to the server, and the answers are compared.
 */
import { once } from 'node:events';
import pg from 'pg';
import Cursor from 'pg-cursor';
import { serialize } from 'pg-protocol';
import type { NoticeMessage } from 'pg-protocol/dist/messages.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import {
  PipelineClient, commandTag, dataRowFields, errorFields, extendedStatement, readyStatus, type PgMessage,
} from '../helpers/pg-pipeline.js';
import { startProxyStack, type ProxyStack } from '../helpers/pg-proxy.js';

/** Bytes that are not UTF-8 (a lone continuation byte, an overlong lead, 0xff) and a NUL. */
const BLOB = Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0x80, 0x41, 0xed, 0xa0, 0x80]);

let stack: ProxyStack;
let direct: pg.Client;
let analystToken: string;
let dbaToken: string;
let analyst: pg.Client;
let dba: pg.Client;

beforeAll(async () => {
  // Read-only callers without masks (orders-md5 has none): masked callers may call no function the database defines.
  stack = await startProxyStack({
    extraGrants: '  - {name: test-readers, groups: [readers], targets: [orders-md5], access: read}\n  - {name: test-writers, groups: [writers], targets: [orders-md5], access: write}',
  });
  direct = await stack.direct();
  await direct.query('CREATE TABLE blobs (id int PRIMARY KEY, data bytea NOT NULL)');
  await direct.query('INSERT INTO blobs VALUES (1, $1)', [BLOB]);
  await direct.query('GRANT ALL ON blobs TO gatehouse_orders, gatehouse_md5');
  [{ token: analystToken, client: analyst }, { token: dbaToken, client: dba }] = await Promise.all([
    stack.connectAgent('ann', ['analysts']),
    stack.connectAgent('dora', ['dba']),
  ]);
}, 120_000);

afterAll(async () => {
  await Promise.all([analyst?.end(), dba?.end(), direct?.end()]);
  await stack?.stop();
});

const DENIED_DELETE = { text: 'DELETE FROM orders WHERE id = $1', values: [10] };
/** A statement every role is denied on orders-db (no grant may run COPY ... PROGRAM). */
const DENIED_FOR_DBA = "COPY orders TO PROGRAM 'cat > /dev/null'";

async function errorOf(promise: Promise<unknown>): Promise<pg.DatabaseError> {
  try {
    await promise;
  } catch (err) {
    return err as pg.DatabaseError;
  }
  throw new Error('expected the query to fail');
}

async function amountOf(orderId: number): Promise<string> {
  return (await direct.query<{ amount: string }>('SELECT amount FROM orders WHERE id = $1', [orderId])).rows[0]!.amount;
}

function proxyPipeline(token: string, target = 'orders-db'): Promise<PipelineClient> {
  return PipelineClient.connect({ host: '127.0.0.1', port: stack.proxyPort, user: target, database: 'orders', password: token });
}

function directPipeline(): Promise<PipelineClient> {
  const url = new URL(stack.pg.urlFor('orders'));
  return PipelineClient.connect({ host: url.hostname, port: Number(url.port), user: 'postgres', database: 'orders' });
}

const types = (messages: PgMessage[]) => messages.map((m) => m.type).join('');

describe('parameterised queries (extended protocol)', () => {
  it('allows a parameterised SELECT and refuses a DELETE with 42501 and the reason; nothing is deleted and the client goes on', async () => {
    const { rows } = await analyst.query('SELECT id, amount FROM orders WHERE id = $1', [11]);
    expect(rows).toEqual([{ id: 11, amount: '10.00' }]);

    const denied = await errorOf(analyst.query(DENIED_DELETE));
    expect(denied.code).toBe('42501');
    expect(denied.message).toBe('gatehouse denied the statement: group analysts has read-only access to orders-db; DELETE writes public.orders');
    expect(denied.detail).toMatch(/^decision [0-9a-f-]{36}$/);
    expect((await direct.query('SELECT 1 FROM orders WHERE id = 10')).rowCount).toBe(1);

    const { rows: after } = await analyst.query('SELECT $1::int + 1 AS n', [41]);
    expect(after).toEqual([{ n: 42 }]);
  });

  /** BEGIN; a read; `failing`; a read; COMMIT; a read, as the client sees each step. */
  async function transaction(client: pg.Client, failing: pg.QueryConfig | string): Promise<string[]> {
    const steps: string[] = [];
    for (const step of ['BEGIN', 'SELECT count(*) FROM orders', failing, 'SELECT 1', 'COMMIT', 'SELECT 2']) {
      try {
        const result = await client.query(step as pg.QueryConfig);
        steps.push(`${result.command} ${result.rowCount ?? '-'}`);
      } catch (err) {
        steps.push(`error ${(err as pg.DatabaseError).code}`);
      }
    }
    return steps;
  }

  it('a denied statement in a transaction fails the transaction, as any error does in PostgreSQL', async () => {
    const throughProxy = await transaction(analyst, DENIED_DELETE);
    const straight = await transaction(direct, { text: 'SELECT 1 / $1::int', values: [0] });
    expect(straight).toEqual(['BEGIN -', 'SELECT 1', 'error 22012', 'error 25P02', 'ROLLBACK -', 'SELECT 1']);
    expect(throughProxy).toEqual(['BEGIN -', 'SELECT 1', 'error 42501', 'error 25P02', 'ROLLBACK -', 'SELECT 1']);
  });

  it('the transaction\'s earlier writes are rolled back with it, and COMMIT says ROLLBACK', async () => {
    const before = await amountOf(12);
    await dba.query('BEGIN');
    expect((await dba.query('UPDATE orders SET amount = 77 WHERE id = 12')).rowCount).toBe(1);
    expect((await errorOf(dba.query(DENIED_FOR_DBA))).code).toBe('42501');
    expect((await dba.query('COMMIT')).command).toBe('ROLLBACK');
    expect(await amountOf(12)).toBe(before);
    expect((await dba.query('SELECT 3 AS n')).rows).toEqual([{ n: 3 }]);
  });

  it('ROLLBACK TO SAVEPOINT recovers from a denial, as from any error', async () => {
    await analyst.query('BEGIN');
    await analyst.query('SAVEPOINT before_delete');
    expect((await errorOf(analyst.query(DENIED_DELETE))).code).toBe('42501');
    await analyst.query('ROLLBACK TO SAVEPOINT before_delete');
    expect((await analyst.query('SELECT count(*)::int AS n FROM orders')).rows).toEqual([{ n: 3 }]);
    expect((await analyst.query('COMMIT')).command).toBe('COMMIT');
  });
});

describe('pipelines follow the server\'s rules', () => {
  it('node-postgres: queries issued without waiting: the denied one fails, the ones after it run', async () => {
    const results = await Promise.allSettled([
      analyst.query(DENIED_DELETE),
      analyst.query('SELECT $1::int AS v', [5]),
      analyst.query({ name: 'twice', text: 'SELECT $1::int * 2 AS v', values: [4] }),
      analyst.query({ name: 'twice', text: 'SELECT $1::int * 2 AS v', values: [8] }),
      analyst.query('SELECT 3 AS v'),
    ]);
    expect(results.map((r) => (r.status === 'rejected' ? `error ${(r.reason as pg.DatabaseError).code}` : (r.value.rows[0] as { v: number }).v)))
      .toEqual(['error 42501', 5, 8, 16, 3]);
  });

  it('node-postgres: a statement name the server already holds fails at Parse (42P05), once, and the next query works', async () => {
    const outcomes: string[][] = [];
    for (const client of [direct, analyst]) {
      await client.query('PREPARE dup AS SELECT 1');
      const results = await Promise.allSettled([
        client.query({ name: 'dup', text: 'SELECT $1::int AS v', values: [1] }),
        client.query('SELECT 2 AS v'),
      ]);
      outcomes.push(results.map((r) => (r.status === 'rejected' ? `error ${(r.reason as pg.DatabaseError).code}` : `rows ${JSON.stringify(r.value.rows)}`)));
      await client.query('DEALLOCATE dup');
    }
    expect(outcomes[0]).toEqual(['error 42P05', 'rows [{"v":2}]']);
    expect(outcomes[1]).toEqual(outcomes[0]);
  });

  it('a denial in the middle of a batch: one ErrorResponse, nothing after it runs, one ReadyForQuery (as a server error would)', async () => {
    const answers: PgMessage[][] = [];
    for (const [client, failing] of [
      [await directPipeline(), 'SELECT * FROM no_such_table'] as const,
      [await proxyPipeline(analystToken), 'DELETE FROM orders WHERE id = 11'] as const,
    ]) {
      try {
        client.send(...extendedStatement('SELECT 1 AS before'), ...extendedStatement(failing), ...extendedStatement('SELECT 2 AS after'), serialize.sync());
        answers.push(await client.until('Z'));
        // The session goes on.
        client.send(...extendedStatement('SELECT 3 AS next'), serialize.sync());
        answers.push(await client.until('Z'));
      } finally {
        await client.end();
      }
    }
    const [straight, straightNext, proxied, proxiedNext] = answers;
    expect(types(straight!)).toBe('12TDCEZ');
    expect(types(proxied!)).toBe(types(straight!));
    expect(errorFields(proxied!.find((m) => m.type === 'E')!.body).C).toBe('42501');
    expect(readyStatus(proxied!.at(-1)!)).toBe('I');
    expect(types(proxiedNext!)).toBe('12TDCZ');
    expect(types(straightNext!)).toBe('12TDCZ');
  });

  it('a denial rolls back the batch\'s implicit transaction, as a server error does', async () => {
    const before = await amountOf(11);
    for (const [client, failing] of [
      [await directPipeline(), 'SELECT * FROM no_such_table'] as const,
      [await proxyPipeline(dbaToken), DENIED_FOR_DBA] as const,
    ]) {
      try {
        client.send(...extendedStatement('UPDATE orders SET amount = 55 WHERE id = 11'), ...extendedStatement(failing), serialize.sync());
        const answer = await client.until('Z');
        expect(types(answer)).toBe('12nCEZ');
        expect(commandTag(answer[3]!.body)).toBe('UPDATE 1');
        expect(await amountOf(11)).toBe(before);
      } finally {
        await client.end();
      }
    }
  });

  it('after a server error, a denied statement before Sync is skipped like everything else: no second error', async () => {
    const answers: string[] = [];
    for (const [client, next] of [
      [await directPipeline(), 'SELECT 1'] as const,
      [await proxyPipeline(analystToken), 'DELETE FROM orders WHERE id = 11'] as const,
    ]) {
      try {
        client.send(serialize.parse({ text: 'SELECT * FROM no_such_table' }), serialize.flush());
        const error = await client.next();
        expect(errorFields(error.body).C).toBe('42P01');
        client.send(...extendedStatement(next), serialize.sync());
        answers.push(types(await client.until('Z')));
      } finally {
        await client.end();
      }
    }
    expect(answers).toEqual(['Z', 'Z']);
  });
});

describe('nothing runs that the proxy did not decide', () => {
  it('a statement made with SQL PREPARE, bound and executed through the extended protocol, is refused and audited', async () => {
    const client = await proxyPipeline(analystToken);
    try {
      client.send(serialize.query('PREPARE leak AS SELECT ssn FROM customers'));
      expect(types(await client.until('Z'))).toBe('CZ');
      // The server knows "leak", the proxy never decided a Parse of it: bound, it would run unmasked.
      client.send(serialize.bind({ statement: 'leak' }), serialize.execute({}), serialize.sync());
      const answer = await client.until('Z');
      expect(types(answer)).toBe('EZ');
      expect(errorFields(answer[0]!.body)).toMatchObject({ C: '42501' });
      expect(errorFields(answer[0]!.body).M).toContain('statement "leak" was not prepared through the extended protocol');
    } finally {
      await client.end();
    }
    const exported = runCli(['audit', 'export', '-c', stack.config]);
    expect(exported.stdout).toContain('statement \\"leak\\" was not prepared through the extended protocol');
  });

  it('a cursor made with SQL DECLARE, executed as a portal through the extended protocol, is refused', async () => {
    const client = await proxyPipeline(analystToken);
    try {
      client.send(serialize.query('BEGIN; DECLARE leaky CURSOR FOR SELECT ssn FROM customers'));
      expect(types(await client.until('Z'))).toBe('CCZ');
      client.send(serialize.execute({ portal: 'leaky' }), serialize.sync());
      const answer = await client.until('Z');
      expect(types(answer)).toBe('EZ');
      expect(errorFields(answer[0]!.body)).toMatchObject({ C: '42501' });
      expect(readyStatus(answer[1]!)).toBe('E');
      client.send(serialize.query('ROLLBACK'));
      await client.until('Z');
    } finally {
      await client.end();
    }
  });
});

describe('prepared statements by name', () => {
  it('are decided once, at Parse: one audit decision per Parse, however often they execute', async () => {
    const text = `SELECT id, amount FROM orders WHERE id = $1 /* by-id ${process.pid}-${Date.now()} */`;
    const amounts: string[] = [];
    for (const id of [10, 11, 12, 10]) {
      const { rows } = await analyst.query<{ amount: string }>({ name: 'by-id', text, values: [id] });
      amounts.push(rows[0]!.amount);
    }
    expect(amounts).toEqual(['42.50', '10.00', '99.99', '42.50']);
    // The same text unnamed: node-postgres parses it again each time.
    for (const id of [11, 12]) await analyst.query({ text, values: [id] });

    const exported = runCli(['audit', 'export', '-c', stack.config]);
    expect(exported.code, exported.stderr).toBe(0);
    const decisions = exported.stdout.trim().split('\n')
      .map((line) => JSON.parse(line) as { message?: string; policy?: { name?: string }; unmapped?: { decision?: string } })
      .filter((e) => e.message === text && e.policy?.name === 'gatehouse/postgres/decision');
    expect(decisions.map((e) => e.unmapped?.decision)).toEqual(['allow', 'allow', 'allow']); // 1 named Parse + 2 unnamed
  });

  it('a denied named statement is refused at Parse, and the server never holds it: the name stays free', async () => {
    const client = await proxyPipeline(analystToken);
    try {
      client.send(serialize.parse({ name: 'del-by-id', text: 'DELETE FROM orders WHERE id = $1' }), serialize.sync());
      const denied = await client.until('Z');
      expect(types(denied)).toBe('EZ');
      expect(errorFields(denied[0]!.body).C).toBe('42501');
      client.send(
        serialize.parse({ name: 'del-by-id', text: 'SELECT $1::int AS v' }),
        serialize.bind({ statement: 'del-by-id', values: ['12'] }),
        serialize.execute(),
        serialize.sync(),
      );
      const reused = await client.until('Z');
      expect(types(reused)).toBe('12DCZ');
      expect(dataRowFields(reused[2]!.body)).toEqual([Buffer.from('12')]);
    } finally {
      await client.end();
    }
    expect((await direct.query('SELECT 1 FROM orders WHERE id = 12')).rowCount).toBe(1);
  });
});

describe('pg-cursor: portals read with a row limit', () => {
  async function readAll(client: pg.Client, sql: string, batch: number, values?: unknown[]): Promise<unknown[][]> {
    const cursor = client.query(new Cursor(sql, values));
    const batches: unknown[][] = [];
    try {
      for (;;) {
        const rows = await cursor.read(batch);
        batches.push(rows);
        if (rows.length === 0) return batches;
      }
    } finally {
      await cursor.close();
    }
  }

  it('masks every batch of one row (Execute with a limit, PortalSuspended in between)', async () => {
    const batches = await readAll(analyst, 'SELECT id, name, email, ssn FROM customers ORDER BY id', 1);
    expect(batches).toEqual([
      [{ id: 1, name: 'Ada Lovelace', email: 'a***@example.com', ssn: '[REDACTED]' }],
      [{ id: 2, name: 'Alan Turing', email: 'a***@example.org', ssn: '[REDACTED]' }],
      [{ id: 3, name: 'Grace Hopper', email: 'g***@example.net', ssn: '[REDACTED]' }],
      [],
    ]);
  });

  it('masks per caller and per batch size, with parameters', async () => {
    const batches = await readAll(dba, 'SELECT id, email, ssn FROM customers WHERE id >= $1 ORDER BY id', 2, [1]);
    expect(batches).toEqual([
      [{ id: 1, email: 'ada@example.com', ssn: '[REDACTED]' }, { id: 2, email: 'alan@example.org', ssn: '[REDACTED]' }],
      [{ id: 3, email: 'grace@example.net', ssn: '[REDACTED]' }],
      [],
    ]);
    // The session is fine afterwards.
    expect((await dba.query('SELECT count(*)::int AS n FROM customers')).rows).toEqual([{ n: 3 }]);
  });
});

describe('binary results', () => {
  it('node-postgres binary: true returns exactly what the server returns directly (int, numeric, date, text)', async () => {
    const query = {
      text: `SELECT o.id, o.amount, o.customer_id, DATE '2026-03-01' + o.id AS due, 'naïve ☃ ' || o.id AS label
               FROM orders o WHERE o.id >= $1 ORDER BY o.id`,
      values: [10],
      binary: true,
    } as pg.QueryConfig;
    const proxied = await analyst.query(query);
    const straight = await direct.query(query);
    expect(proxied.fields.map((f) => f.format)).toEqual(['binary', 'binary', 'binary', 'binary', 'binary']);
    expect(proxied.rows).toEqual(straight.rows);
    expect(proxied.rows.map((r) => [r.id, r.customer_id, r.label])).toEqual([[10, 1, 'naïve ☃ 10'], [11, 2, 'naïve ☃ 11'], [12, 3, 'naïve ☃ 12']]);
  });

  it('bytea that is not UTF-8 comes back byte-exact in text format through node-postgres', async () => {
    const { rows } = await analyst.query<{ data: Buffer }>('SELECT data FROM blobs WHERE id = $1', [1]);
    expect(rows[0]!.data.equals(BLOB)).toBe(true);
  });

  it('bytea, int and date come back byte-exact in binary and text format on the wire, masked result or not', async () => {
    for (const [sql, format] of [
      ['SELECT id, data FROM blobs WHERE id = $1', 'binary'],
      ['SELECT id, data FROM blobs WHERE id = $1', 'text'],
      ['SELECT id, created_at, ssn FROM customers WHERE id = $1', 'binary'],
    ] as const) {
      const rows: (Buffer | null)[][] = [];
      for (const client of [await directPipeline(), await proxyPipeline(analystToken)]) {
        try {
          client.send(...extendedStatement(sql, ['1'], format), serialize.sync());
          const answer = await client.until('Z');
          expect(types(answer), sql).toBe('12TDCZ');
          rows.push(dataRowFields(answer[3]!.body));
        } finally {
          await client.end();
        }
      }
      const [straight, proxied] = rows;
      if (sql.includes('blobs')) {
        expect(proxied).toEqual(straight);
        expect(proxied![1]).toEqual(format === 'binary' ? BLOB : Buffer.from(`\\x${BLOB.toString('hex')}`));
      } else {
        expect(proxied!.slice(0, 2)).toEqual(straight!.slice(0, 2)); // id and date pass untouched
        expect(proxied![2]).toEqual(Buffer.from('[REDACTED]'));
      }
    }
  });
});

describe('asynchronous messages reach the client', () => {
  it('a NOTIFY from another session reaches a client LISTENing through the proxy; its payload only where nothing is masked', async () => {
    const { client: reader } = await stack.connectAgent('lou', ['readers'], 'orders-md5');
    try {
      for (const client of [reader, dba]) await client.query('LISTEN order_events');
      const arrived = [reader, dba].map((client) => once(client, 'notification') as Promise<[pg.Notification]>);
      await direct.query("NOTIFY order_events, 'order 10 shipped'");
      const [toReader, toDba] = (await Promise.all(arrived)).map(([notification]) => notification);
      expect(toReader).toMatchObject({ channel: 'order_events', payload: 'order 10 shipped' });
      // Columns are masked for the dba here: a payload can carry their values (a trigger's row_to_json(NEW)).
      expect(toDba).toMatchObject({ channel: 'order_events', payload: '[withheld by gatehouse: a notification can carry a masked value]' });
      await dba.query('UNLISTEN order_events');
    } finally {
      await reader.end();
    }
  });

  it('NOTICEs reach the client: a dba\'s DROP … IF EXISTS of nothing, and a WARNING for an analyst', async () => {
    const dbaNotice = once(dba, 'notice') as Promise<[NoticeMessage]>;
    await dba.query('DROP TABLE IF EXISTS no_such_table');
    // Columns are masked for the dba here, so a notice's message is withheld (it could quote a value).
    expect((await dbaNotice)[0]).toMatchObject({ severity: 'NOTICE', code: '00000', message: 'successful completion (the database\'s message is withheld: it could quote a masked value)' });

    const analystNotice = once(analyst, 'notice') as Promise<[NoticeMessage]>;
    await analyst.query('ROLLBACK'); // outside a transaction: a WARNING, and no error
    expect((await analystNotice)[0]).toMatchObject({ severity: 'WARNING', code: '25P01', message: 'there is no transaction in progress' });
  });

  it('SET application_name: the server\'s ParameterStatus reaches the client, and the setting holds upstream', async () => {
    const client = await proxyPipeline(analystToken);
    try {
      client.send(serialize.query("SET application_name = 'proxy-test'"));
      const answer = await client.until('Z');
      expect(types(answer)).toBe('CZ');
      // The proxy turned the server's read-only mode on before the analyst's first statement.
      expect(client.parameters.get('default_transaction_read_only')).toBe('on');
      expect(client.parameters.get('application_name')).toBe('proxy-test');
      client.send(serialize.query('SHOW application_name'));
      const shown = await client.until('Z');
      expect(dataRowFields(shown.find((m) => m.type === 'D')!.body)).toEqual([Buffer.from('proxy-test')]);
      const upstream = await direct.query("SELECT usename FROM pg_stat_activity WHERE application_name = 'proxy-test'");
      expect(upstream.rows).toEqual([{ usename: 'gatehouse_orders' }]);
    } finally {
      await client.end();
    }
    await analyst.query("SET application_name = 'analyst-app'");
    expect((await analyst.query('SHOW application_name')).rows).toEqual([{ application_name: 'analyst-app' }]);
  });
});

describe('callers that may only read run in the server\'s read-only mode', () => {
  beforeAll(async () => {
    // A function that writes: to the analyser, calling it is a read.
    await direct.query(`
      CREATE TABLE visits (n int);
      GRANT ALL ON visits TO gatehouse_orders, gatehouse_md5;
      CREATE FUNCTION record_visit() RETURNS int LANGUAGE sql AS 'INSERT INTO visits VALUES (1) RETURNING n';
    `);
  });

  async function visits(): Promise<number> {
    return (await direct.query<{ n: number }>('SELECT count(*)::int AS n FROM visits')).rows[0]!.n;
  }

  it('a reader\'s call of a function that writes is refused by the server, in both protocols; a writer\'s runs', async () => {
    const { client } = await stack.connectAgent('rita-readonly', ['readers'], 'orders-md5');
    try {
      const simple = await errorOf(client.query('SELECT record_visit()'));
      expect([simple.code, simple.message]).toEqual(['25006', 'cannot execute INSERT in a read-only transaction']);
      const extended = await errorOf(client.query({ text: 'SELECT record_visit() + $1::int AS n', values: [1] }));
      expect(extended.code).toBe('25006');
      await client.query('BEGIN');
      expect((await errorOf(client.query('SELECT record_visit()'))).code).toBe('25006');
      await client.query('ROLLBACK');
      expect(await visits()).toBe(0);
      expect((await client.query('SHOW default_transaction_read_only')).rows).toEqual([{ default_transaction_read_only: 'on' }]);
      expect((await client.query('SELECT count(*)::int AS n FROM orders')).rows).toEqual([{ n: 3 }]);
    } finally {
      await client.end();
    }

    const { client: writer } = await stack.connectAgent('walt', ['writers'], 'orders-md5');
    try {
      expect((await writer.query('SELECT record_visit() AS n')).rows).toEqual([{ n: 1 }]);
    } finally {
      await writer.end();
    }
    expect(await visits()).toBe(1);
  });

  it('read-only mode goes first even behind a pipelined denied statement still in flight', async () => {
    const before = await visits();
    const client = await proxyPipeline(stack.token('rita-pipelined', ['readers']), 'orders-md5');
    try {
      // Sent together: the DELETE's stand-in is still on its way when the SELECT is decided.
      client.send(serialize.query('DELETE FROM orders WHERE id = 999'), serialize.query('SELECT record_visit()'));
      const denied = await client.until('Z');
      expect(errorFields(denied.find((m) => m.type === 'E')!.body).C).toBe('42501');
      const guarded = await client.until('Z');
      expect(errorFields(guarded.find((m) => m.type === 'E')!.body)).toMatchObject({ C: '25006', M: 'cannot execute INSERT in a read-only transaction' });
    } finally {
      await client.end();
    }
    expect(await visits()).toBe(before);
  });

  it('where read-only mode cannot go first (inside an open extended batch), the statement is refused, not run unguarded', async () => {
    const before = await visits();
    const client = await proxyPipeline(stack.token('rita-midbatch', ['readers']), 'orders-md5');
    try {
      // A Close opens the batch; the first statement to decide comes after it, before Sync.
      client.send(serialize.close({ type: 'S', name: 'nothing' }), ...extendedStatement('SELECT record_visit()'), serialize.sync());
      const answers = await client.until('Z');
      expect(errorFields(answers.find((m) => m.type === 'E')!.body)).toMatchObject({ C: '42501' });
      expect(errorFields(answers.find((m) => m.type === 'E')!.body).M).toContain('read-only mode for a caller that may only read could not be turned on before this statement');
      expect(answers.some((m) => m.type === 'D')).toBe(false);
      // After Sync it goes first as usual.
      client.send(...extendedStatement('SELECT record_visit()'), serialize.sync());
      const next = await client.until('Z');
      expect(errorFields(next.find((m) => m.type === 'E')!.body).C).toBe('25006');
    } finally {
      await client.end();
    }
    expect(await visits()).toBe(before);
  });

  it('the analyst cannot turn it off: policy denies what would', async () => {
    const { client } = await stack.connectAgent('ann-readonly-2', ['analysts']);
    try {
      for (const sql of ['SET default_transaction_read_only = off', 'BEGIN READ WRITE', 'SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE', 'RESET ALL']) {
        expect((await errorOf(client.query(sql))).code, sql).toBe('42501');
      }
      expect((await client.query('SHOW default_transaction_read_only')).rows).toEqual([{ default_transaction_read_only: 'on' }]);
    } finally {
      await client.end();
    }
  });
});
