/**
 * The SQL analyser's facts, fed to the compiled policy bundle as the proxy
 * will: proves the facts have the shape policies/postgres/postgres.rego
 * reads (kind, readonly, read_write, tables[].access, functions, program,
 * setting, value). tests/integration/pg-bypass.test.ts covers the bypasses.
 */
import { describe, expect, it } from 'vitest';
import { analyst, dba, postgresPolicy } from '../helpers/pg-policy.js';

const decide = postgresPolicy();

describe('analysed SQL through the compiled postgres policy', () => {
  it("allows an analyst's SELECT with joins and subqueries", async () => {
    const d = await decide(analyst, 'SELECT c.email, o.total FROM public.customers c JOIN orders o ON o.customer_id = c.id WHERE o.id IN (SELECT order_id FROM flags)');
    expect(d.action).toBe('allow');
    expect(d.reasons).toEqual(['allowed by grant analysts-read-orders: read access to orders-db']);
  });

  it('denies an analyst a SELECT whose CTE deletes', async () => {
    const d = await decide(analyst, 'WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone');
    expect(d.action).toBe('deny');
    expect(d.reasons).toEqual(['group analysts has read-only access to orders-db; SELECT writes public.orders']);
  });

  it.each([
    ["SELECT pg_read_file('/etc/passwd')", 'function pg_read_file is not allowed with read-only access to orders-db'],
    ["SELECT id FROM orders ORDER BY pg_catalog.set_config('search_path', 'evil', false)", 'function pg_catalog.set_config is not allowed with read-only access to orders-db'],
    ["SELECT nextval('orders_id_seq')", 'function nextval is not allowed with read-only access to orders-db'],
    ['DO $$ BEGIN DELETE FROM orders; END $$', 'group analysts has read-only access to orders-db; DO runs a code block the gateway cannot inspect'],
    ["SELECT * FROM orders WHERE EXISTS (SELECT dblink_exec('h', 'DROP TABLE orders'))", 'function dblink_exec is not allowed with read-only access to orders-db'],
  ])('denies an analyst %s', async (sql, reason) => {
    const d = await decide(analyst, sql);
    expect(d.action).toBe('deny');
    expect(d.reasons).toContain(reason);
  });

  it.each([
    ['CALL refund(42)', 'CALL runs a procedure, which can write'],
    ['SELECT * INTO loot FROM customers', 'SELECT writes public.loot'],
    ['EXPLAIN ANALYZE DELETE FROM orders', 'EXPLAIN ANALYZE writes public.orders'],
    ['BEGIN READ WRITE', 'BEGIN ... READ WRITE starts a read-write transaction'],
    ['SELECT 1; DROP TABLE public.orders', 'DROP writes public.orders'],
  ])('denies an analyst %s as a write', async (sql, why) => {
    const d = await decide(analyst, sql);
    expect(d.action).toBe('deny');
    expect(d.reasons).toEqual([`group analysts has read-only access to orders-db; ${why}`]);
  });

  it('allows an analyst a plain EXPLAIN of a SELECT, not of a DELETE (it does not run, but planning takes its locks)', async () => {
    expect((await decide(analyst, 'EXPLAIN SELECT * FROM orders')).action).toBe('allow');
    expect((await decide(analyst, 'EXPLAIN DELETE FROM orders')).reasons).toEqual([
      'group analysts has read-only access to orders-db; EXPLAIN of a statement that is not read-only takes the table locks that statement would take (ROW EXCLUSIVE for a write), held until the transaction ends',
    ]);
  });

  it('allows an analyst transaction control and harmless settings around reads', async () => {
    const d = await decide(analyst, "SET statement_timeout = '5s'; BEGIN READ ONLY; SELECT email FROM customers; COMMIT");
    expect(d.reasons).toEqual(['allowed by grant analysts-read-orders: read access to orders-db']);
  });

  it('allows a DBA the DELETE and pg_read_file', async () => {
    expect((await decide(dba, 'DELETE FROM public.orders WHERE id = 42')).reasons).toEqual(['allowed by grant dba-administer: write access to orders-db']);
    expect((await decide(dba, "SELECT pg_read_file('postgresql.conf')")).action).toBe('allow');
  });
});
