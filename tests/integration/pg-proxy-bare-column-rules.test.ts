/**
 * Mask rules that name a column by itself (`ssn`, in any table): the
 * output name a query gives is the caller's choice, so such a rule masks
 * by where the server says a result column comes from (every table with
 * that column), as a qualified rule does, and by output name besides.
 * Real PostgreSQL and node-postgres; the orders-md5 target with `ssn` and
 * `customers.email` masked for analysts.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outcome } from '../helpers/pg-outcome.js';
import { startProxyStack, type ProxyStack } from '../helpers/pg-proxy.js';

let stack: ProxyStack;
let direct: pg.Client;

beforeAll(async () => {
  stack = await startProxyStack({
    extraGrants: '  - {name: test-analysts-md5, groups: [analysts], targets: [orders-md5], access: read}',
    extraMasks: '  orders-md5:\n    - {column: ssn, strategy: redact}\n    - {column: customers.email, strategy: partial}',
  });
  direct = await stack.direct();
}, 120_000);

afterAll(async () => {
  await direct?.end();
  await stack?.stop();
});

const SSN = /\d{3}-\d{2}-\d{4}/;

async function analyst(sub: string): Promise<pg.Client> {
  return (await stack.connectAgent(sub, ['analysts'], 'orders-md5')).client;
}

describe('a rule naming a column by itself', () => {
  it('masks it under any alias, through subqueries and lateral joins', async () => {
    const client = await analyst('ana');
    try {
      for (const sql of [
        'SELECT id, ssn FROM customers WHERE id = 1',
        'SELECT id, ssn AS x FROM customers WHERE id = 1',
        'SELECT c.ssn AS "?column?" FROM customers c WHERE id = 1',
        'SELECT x FROM (SELECT ssn AS x FROM customers WHERE id = 1) s',
        'SELECT s.* FROM customers c, LATERAL (SELECT c.ssn) s(y) WHERE c.id = 1',
      ]) {
        const result = await outcome(client, sql);
        expect(result.error, sql).toBeNull();
        expect(Object.values(result.rows![0]!), sql).toContain('[REDACTED]');
        expect(JSON.stringify(result), sql).not.toMatch(SSN);
      }
      expect((await client.query('SELECT email AS e FROM customers WHERE id = 1')).rows[0].e).not.toContain('ada@');
    } finally {
      await client.end();
    }
  });

  it('masks a table given such a column by another connection while the session is open, at once', async () => {
    const client = await analyst('bo');
    try {
      expect((await client.query('SELECT ssn AS x FROM customers WHERE id = 1')).rows).toEqual([{ x: '[REDACTED]' }]);
      await direct.query("CREATE TABLE people (id int, ssn text); INSERT INTO people VALUES (1, '078-05-1120'); GRANT SELECT ON people TO gatehouse_md5");
      const result = await outcome(client, 'SELECT id, ssn AS x FROM people');
      expect(JSON.stringify(result)).not.toMatch(SSN);
      expect(result.rows).toEqual([{ id: 1, x: '[REDACTED]' }]);
    } finally {
      await client.end();
      await direct.query('DROP TABLE IF EXISTS people');
    }
  });

  it('keeps masking the column once renamed and a new one given its name', async () => {
    const first = await analyst('cy');
    await first.query('SELECT ssn FROM customers WHERE id = 1');
    await first.end();
    await direct.query('ALTER TABLE customers RENAME COLUMN ssn TO ssn_legacy; ALTER TABLE customers ADD COLUMN ssn text');
    const client = await analyst('di');
    try {
      expect((await client.query('SELECT ssn_legacy AS x FROM customers WHERE id = 1')).rows).toEqual([{ x: '[REDACTED]' }]);
      const derived = await outcome(client, 'SELECT upper(ssn_legacy) FROM customers WHERE id = 1');
      expect(derived.error?.code).toBe('42501');
      expect(JSON.stringify(derived)).not.toMatch(SSN);
    } finally {
      await client.end();
      await direct.query('ALTER TABLE customers DROP COLUMN ssn; ALTER TABLE customers RENAME COLUMN ssn_legacy TO ssn');
    }
  });
});
