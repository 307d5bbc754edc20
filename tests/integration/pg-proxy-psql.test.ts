/**
 * psql, the real client, through the Postgres proxy against a real
 * PostgreSQL: multi-statement messages, \copy both ways, server errors,
 * denials as psql shows them, cancel, repetition, and failed logins.
 * What really happened is checked on a direct superuser connection.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxyStack, type ProxyStack } from '../helpers/pg-proxy.js';
import { waitFor } from '../helpers/wait.js';

let stack: ProxyStack;
let direct: pg.Client;
let analyst: string;
let dba: string;

beforeAll(async () => {
  stack = await startProxyStack();
  direct = await stack.direct();
  analyst = stack.token('ann', ['analysts']);
  dba = stack.token('dora', ['dba']);
});

afterAll(async () => {
  await direct?.end();
  await stack?.stop();
});

/** Tab-free, aligned-free output: one line per row, fields joined by '|'. */
const TUPLES = ['-A', '-t'];

async function count(sql: string, values: unknown[] = []): Promise<number> {
  const { rows } = await direct.query<{ n: string }>(sql, values);
  return Number(rows[0]!.n);
}

describe('multi-statement queries', () => {
  it('runs every statement of an allowed message', () => {
    const res = stack.psql('orders-db', analyst, [...TUPLES, '-c', 'SELECT 1; SELECT 2']);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(res.stdout.trim().split('\n')).toEqual(['1', '2']);
  });

  it('denies a SELECT; DELETE message as a whole, and nothing in it runs', async () => {
    expect(await count('SELECT count(*) AS n FROM orders WHERE id = 10')).toBe(1);
    // One Query message (psql -c sends it as one), so the SELECT would run first if anything did.
    const res = stack.psql('orders-db', analyst, [...TUPLES, '-v', 'VERBOSITY=verbose', '-c', "SELECT 'first-ran'; DELETE FROM orders WHERE id = 10"]);
    expect(res.status).toBe(1);
    expect(res.stdout).not.toContain('first-ran');
    expect(res.stderr).toContain('42501');
    expect(res.stderr).toContain('DELETE writes public.orders');
    expect(await count('SELECT count(*) AS n FROM orders WHERE id = 10')).toBe(1);
  });

  it('denies an INSERT; SELECT message as a whole, and the INSERT never reaches the database', async () => {
    const res = stack.psql('orders-db', analyst, [...TUPLES, '-v', 'VERBOSITY=verbose', '-c', "INSERT INTO products VALUES (900, 'Smuggled', 1.00); SELECT 'second-ran'"]);
    expect(res.status).toBe(1);
    expect(res.stdout).not.toContain('second-ran');
    expect(res.stderr).toContain('42501');
    expect(res.stderr).toContain('INSERT writes public.products');
    expect(await count('SELECT count(*) AS n FROM products WHERE id = 900')).toBe(0);
  });
});

describe('transactions', () => {
  it('a denied statement aborts the open transaction, as a server error would: COMMIT rolls back', async () => {
    // COPY ... TO PROGRAM is denied to everyone; the INSERT before it is allowed for a dba.
    const script = "BEGIN;\nINSERT INTO products VALUES (400, 'Half-done', 1.00);\nCOPY products TO PROGRAM 'cat > /dev/null';\nSELECT 'still in the transaction';\nCOMMIT;\n";
    const res = stack.psql('orders-db', dba, ['-v', 'ON_ERROR_STOP=0', '-v', 'VERBOSITY=verbose'], script);
    expect(res.stderr).toContain('ERROR:  42501: gatehouse denied the statement');
    expect(res.stderr).toContain('PROGRAM runs a shell command on the database server');
    // The statement after the error is refused by the server, and COMMIT reports the rollback.
    expect(res.stderr).toContain('25P02: current transaction is aborted');
    expect(res.stdout).not.toContain('still in the transaction');
    expect(res.stdout.trim().split('\n').at(-1)).toBe('ROLLBACK');
    expect(await count('SELECT count(*) AS n FROM products WHERE id = 400')).toBe(0);
  });

  it('a denial outside a transaction leaves nothing open', async () => {
    const script = "COPY products TO PROGRAM 'cat > /dev/null';\nINSERT INTO products VALUES (401, 'Kept', 1.00);\n";
    const res = stack.psql('orders-db', dba, ['-v', 'ON_ERROR_STOP=0', '-v', 'VERBOSITY=verbose'], script);
    expect(res.stderr).toContain('42501');
    expect(res.stdout.trim()).toBe('INSERT 0 1');
    expect(await count('SELECT count(*) AS n FROM products WHERE id = 401')).toBe(1);
  });
});

describe('\\copy', () => {
  it('copies a table without masks out to an analyst', async () => {
    const res = stack.psql('orders-db', analyst, ['-c', '\\copy (SELECT * FROM products WHERE id <= 3 ORDER BY id) to stdout']);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(res.stdout).toBe('1\tWidget\t2.50\n2\tGadget\t10.00\n3\tGizmo\t7.25\n');

    const whole = stack.psql('orders-db', analyst, ['-c', '\\copy products to stdout']);
    expect(whole.status).toBe(0);
    const { rows } = await direct.query<{ n: string }>('SELECT count(*) AS n FROM products');
    expect(whole.stdout.trim().split('\n')).toHaveLength(Number(rows[0]!.n));
    expect(whole.stdout).toContain('1\tWidget\t2.50\n');
  });

  it('refuses to copy out a table with masked columns: COPY cannot be masked', () => {
    const res = stack.psql('orders-db', analyst, ['-v', 'VERBOSITY=verbose', '-c', '\\copy customers to stdout']);
    expect(res.status).toBe(1);
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain('42501');
    expect(res.stderr).toContain('COPY would send whole rows of customers unmasked (COPY rows are not masked)');
    expect(res.stderr).not.toContain('078-05-1120');
    expect(res.stderr).not.toContain('ada@example.com');
  });

  it('copies rows in for a dba, and they arrive', async () => {
    const rows = '101\tSprocket\t1.25\n102\tFlange\t3.75\n\\.\n';
    const res = stack.psql('orders-db', dba, ['-c', '\\copy products from stdin'], rows);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(res.stdout.trim()).toBe('COPY 2');
    const { rows: arrived } = await direct.query('SELECT id, name, price::text FROM products WHERE id IN (101, 102) ORDER BY id');
    expect(arrived).toEqual([{ id: 101, name: 'Sprocket', price: '1.25' }, { id: 102, name: 'Flange', price: '3.75' }]);
  });

  it('refuses copy in for an analyst, and nothing arrives', async () => {
    const res = stack.psql('orders-db', analyst, ['-v', 'VERBOSITY=verbose', '-c', '\\copy products from stdin'], '201\tNope\t1.00\n\\.\n');
    expect(res.status).toBe(1);
    expect(res.stderr).toContain('42501');
    expect(res.stderr).toContain('read-only access');
    expect(await count('SELECT count(*) AS n FROM products WHERE id = 201')).toBe(0);
  });
});

describe('errors', () => {
  it('passes a server error through and keeps the session usable', () => {
    const script = 'SELECT 1/0;\nSELECT 42 AS answer;\nSELECT name FROM products WHERE id = 1;\n';
    const res = stack.psql('orders-db', analyst, [...TUPLES, '-v', 'ON_ERROR_STOP=0', '-v', 'VERBOSITY=verbose'], script);
    expect(res.status).toBe(0);
    expect(res.stderr).toContain('ERROR:  22012: division by zero');
    expect(res.stdout.trim().split('\n')).toEqual(['42', 'Widget']);
  });

  it('denies SQL that does not parse, and the session goes on', () => {
    const script = 'SELEC name FROM products;\nSELECT 7 AS after;\n';
    const res = stack.psql('orders-db', analyst, [...TUPLES, '-v', 'ON_ERROR_STOP=0', '-v', 'VERBOSITY=verbose'], script);
    expect(res.stderr).toContain('ERROR:  42501: gatehouse denied the statement');
    expect(res.stderr).toContain('could not be parsed');
    // The parser's error position reaches psql, which points at it.
    expect(res.stderr).toMatch(/LINE 1: SELEC name FROM products;\n\s+\^/);
    expect(res.stdout.trim()).toBe('7');
  });

  it('shows a denial with SQLSTATE 42501, the policy reason and the decision id', () => {
    const res = stack.psql('orders-db', analyst, ['-v', 'VERBOSITY=verbose', '-c', 'UPDATE customers SET name = name']);
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/^ERROR: {2}42501: gatehouse denied the statement: .*group analysts has read-only access to orders-db.*UPDATE writes public\.customers/m);
    expect(res.stderr).toMatch(/^DETAIL: {2}decision [0-9a-f-]{36}$/m);
  });
});

describe('cancel', () => {
  it('Ctrl-C cancels a running query upstream through the gateway', async () => {
    const sleep = 'SELECT pg_sleep(30) AS cancel_me';
    const psql = stack.spawnPsql('orders-db', dba, ['-v', 'VERBOSITY=verbose', '-c', sleep]);
    let stderr = '';
    psql.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => psql.once('exit', (code) => resolve(code)));
    try {
      const active = `SELECT count(*) AS n FROM pg_stat_activity WHERE query = $1 AND state = 'active'`;
      await waitFor(async () => (await count(active, [sleep])) === 1, 'the sleep to run upstream');
      psql.kill('SIGINT');
      // The deadline only keeps a broken cancel from waiting out the 30 s sleep.
      const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 15_000))]);
      expect(code).toBe(1);
      expect(stderr).toContain('57014: canceling statement due to user request');
      expect(await count(active, [sleep])).toBe(0);
    } finally {
      psql.kill('SIGKILL');
    }
  });
});

describe('repetition', () => {
  it('runs the same masked query 200 times in one session with identical output', () => {
    const query = 'SELECT id, name, email, ssn FROM customers ORDER BY id;\n';
    const res = stack.psql('orders-db', analyst, [...TUPLES, '-v', 'ON_ERROR_STOP=1'], query.repeat(200));
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    const lines = res.stdout.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(600);
    const first = lines.slice(0, 3);
    for (let i = 0; i < 600; i += 3) expect(lines.slice(i, i + 3)).toEqual(first);
    // Masked every time: no email or SSN in the clear, in any repetition.
    expect(res.stdout).not.toContain('ada@example.com');
    expect(res.stdout).not.toContain('078-05-1120');
    expect(first[0]).toMatch(/^1\|Ada Lovelace\|/);
  });
});

describe('failed logins', () => {
  it('refuses a bad token with a FATAL 28P01 and says why', async () => {
    const res = stack.psql('orders-db', 'not-a-jwt', ['-c', 'SELECT 1']);
    expect(res.status).toBe(2);
    expect(res.stderr).toContain('FATAL:  gatehouse refused the token');

    // psql prints no SQLSTATE for a failed connection; node-postgres reads it.
    const client = new pg.Client(stack.clientConfig('orders-db', 'not-a-jwt'));
    const err = await client.connect().then(() => null, (e: unknown) => e as { code?: string; severity?: string; message: string });
    await client.end().catch(() => undefined);
    expect(err).toMatchObject({ code: '28P01', severity: 'FATAL' });
    expect(err!.message).toMatch(/gatehouse refused the token/);
  });

  it('refuses a token with a forged signature with 28P01', async () => {
    const [header, payload] = analyst.split('.');
    const forged = `${header}.${payload}.${Buffer.from('not the signature').toString('base64url')}`;
    const client = new pg.Client(stack.clientConfig('orders-db', forged));
    const err = await client.connect().then(() => null, (e: unknown) => e as { code?: string; severity?: string });
    await client.end().catch(() => undefined);
    expect(err).toMatchObject({ code: '28P01', severity: 'FATAL' });
  });

  it('refuses an unknown target with a FATAL 28000', async () => {
    const res = stack.psql('no-such-db', analyst, ['-c', 'SELECT 1']);
    expect(res.status).toBe(2);
    expect(res.stderr).toContain('FATAL:  no target named "no-such-db" is configured');

    const client = new pg.Client(stack.clientConfig('no-such-db', analyst));
    const err = await client.connect().then(() => null, (e: unknown) => e as { code?: string; severity?: string });
    await client.end().catch(() => undefined);
    expect(err).toMatchObject({ code: '28000', severity: 'FATAL' });
  });
});
