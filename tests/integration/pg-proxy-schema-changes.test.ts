/**
 * Masking while another connection changes the schema under a session that
 * stays open: a session's mask plan is compiled from the catalog when it is
 * first needed, and what others do afterwards (next month's partition, an
 * expand-and-contract migration of a masked column) must not let the
 * column's values through in clear. Real PostgreSQL, node-postgres, the
 * project's policy (customers.email partial, customers.ssn redact).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { startProxyStack, type ProxyStack } from '../helpers/pg-proxy.js';

let stack: ProxyStack;
let direct: pg.Client;

beforeAll(async () => {
  stack = await startProxyStack();
  direct = await stack.direct();
}, 120_000);

afterAll(async () => {
  await direct?.end();
  await stack?.stop();
});

async function outcome(client: pg.Client, sql: string): Promise<{ rows: Record<string, unknown>[] | null; error: { code: string; message: string } | null }> {
  try {
    return { rows: (await client.query(sql)).rows as Record<string, unknown>[], error: null };
  } catch (err) {
    const e = err as pg.DatabaseError;
    return { rows: null, error: { code: e.code ?? '', message: e.message } };
  }
}

describe('a table that inherits a masked one, created while a session is open', () => {
  const LATE_SSN = '312-44-8790';
  let client: pg.Client;
  beforeAll(async () => {
    ({ client } = await stack.connectAgent('lena', ['analysts']));
    // The session's plan is compiled before the child exists.
    expect((await client.query('SELECT ssn FROM customers WHERE id = 1')).rows).toEqual([{ ssn: '[REDACTED]' }]);
    await direct.query('CREATE TABLE customers_late () INHERITS (customers)');
    await direct.query("INSERT INTO customers_late (id, name, email, ssn, phone) VALUES (21, 'Late Comer', 'late@example.org', $1, '+1 212 555 0100')", [LATE_SSN]);
    await direct.query('CREATE VIEW late_contacts AS SELECT id, ssn FROM customers_late');
    await direct.query('GRANT SELECT ON customers_late, late_contacts TO gatehouse_orders');
  });
  afterAll(async () => {
    await client?.end();
    await direct.query('DROP VIEW late_contacts; DROP TABLE customers_late');
  });

  it('is masked in the session that was already open, queried directly', async () => {
    const result = await outcome(client, 'SELECT id, email, ssn FROM customers_late');
    expect(result).toEqual({ rows: [{ id: 21, email: 'l***@example.org', ssn: '[REDACTED]' }], error: null });
  });

  it('is refused where masking cannot follow it, as the parent is', async () => {
    for (const sql of ['SELECT * FROM late_contacts', 'SELECT upper(ssn) FROM customers_late', 'COPY customers_late TO STDOUT']) {
      const result = await outcome(client, sql);
      expect(result.error?.code, sql).toBe('42501');
      expect(JSON.stringify(result), sql).not.toContain(LATE_SSN);
    }
  });
});

// Last in the file: it leaves customers with its ssn column at the end.
describe('a masked column replaced while a session is open (expand and contract)', () => {
  let client: pg.Client;
  beforeAll(async () => {
    ({ client } = await stack.connectAgent('max', ['analysts']));
    expect((await client.query('SELECT ssn FROM customers WHERE id = 1')).rows).toEqual([{ ssn: '[REDACTED]' }]);
    // A new column under a new attribute number takes the old one's name: the session's plan knew the old number.
    await direct.query(`ALTER TABLE customers ADD COLUMN ssn_next text;
      UPDATE customers SET ssn_next = ssn;
      ALTER TABLE customers DROP COLUMN ssn;
      ALTER TABLE customers RENAME COLUMN ssn_next TO ssn`);
  });
  afterAll(async () => {
    await client?.end();
  });

  it('the new column is not sent in clear to the session that was open', async () => {
    const result = await outcome(client, 'SELECT id, ssn FROM customers ORDER BY id');
    expect(JSON.stringify(result)).not.toMatch(/\d{3}-\d{2}-\d{4}/);
    expect(result.rows).toEqual([
      { id: 1, ssn: '[REDACTED]' }, { id: 2, ssn: '[REDACTED]' }, { id: 3, ssn: '[REDACTED]' },
    ]);
    // Counted in the audit trail like any rule's masking, under what the plan knew of the column.
    const exported = runCli(['audit', 'export', '-c', stack.config]);
    expect(exported.code, exported.stderr).toBe(0);
    const events = exported.stdout.trim().split('\n').map((line) => JSON.parse(line) as { activity_name?: string; message?: string; unmapped?: { masked?: unknown[] } });
    const masked = events.find((e) => e.activity_name === 'Masked' && e.message === 'SELECT id, ssn FROM customers ORDER BY id');
    expect(masked?.unmapped?.masked).toEqual([{ column: 'columns added to a masked table since the session read the catalog', detector: null, count: 3 }]);
  });

  it('and the session then masks by the new column as a new session would', async () => {
    const result = await outcome(client, 'SELECT id, email, ssn FROM customers WHERE id = 2');
    expect(result).toEqual({ rows: [{ id: 2, email: 'a***@example.org', ssn: '[REDACTED]' }], error: null });
    const fresh = await stack.connectAgent('nina', ['analysts']);
    try {
      expect((await fresh.client.query('SELECT id, email, ssn FROM customers WHERE id = 2')).rows).toEqual(result.rows);
    } finally {
      await fresh.client.end();
    }
  });

  it('an unmasked column added meanwhile is redacted once, then read as it is', async () => {
    await direct.query("ALTER TABLE customers ADD COLUMN tier text NOT NULL DEFAULT 'gold'");
    expect((await client.query('SELECT id, tier FROM customers WHERE id = 1')).rows).toEqual([{ id: 1, tier: '[REDACTED]' }]);
    expect((await client.query('SELECT id, tier FROM customers WHERE id = 1')).rows).toEqual([{ id: 1, tier: 'gold' }]);
  });
});
