/**
 * What a statement changes of the proxy's view of the session, read from
 * the facts the real PostgreSQL parser gives (libpg-query).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyseSqlSync, loadSqlParser, type StatementFacts } from '../../proxies/postgres/sql/analyse.js';
import { changesCatalog, changesResolution, copiesFromClient, readsThroughCatalog } from '../../proxies/postgres/sql/statement-effects.js';

beforeAll(() => loadSqlParser());

const one = (sql: string): StatementFacts => {
  const statements = analyseSqlSync(sql);
  expect(statements).toHaveLength(1);
  return statements[0]!;
};

describe('changesResolution: what was described before may not hold after', () => {
  it.each([
    'CREATE TABLE t (id int)',
    'ALTER TABLE customers RENAME COLUMN ssn TO tax_id',
    'DROP TABLE orders',
    'SET search_path = other, public',
    'SET ROLE someone',
    'SELECT * INTO copy_of_orders FROM orders',
    'EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1',
    'DECLARE c CURSOR FOR SELECT 1',
    'DEALLOCATE ALL',
    'COMMIT',
  ])('%s changes it', (sql) => {
    expect(changesResolution(one(sql))).toBe(true);
  });

  it.each([
    'SELECT id FROM orders',
    'UPDATE orders SET status = 1',
    'COPY orders TO STDOUT',
    'SET statement_timeout = 1000',
    'BEGIN',
    'FETCH 10 FROM c',
    // Plain EXPLAIN runs nothing, even of a write (which makes it not read-only: it takes the write's locks).
    'EXPLAIN DELETE FROM orders',
    'EXPLAIN CREATE TABLE t AS SELECT 1',
    'EXPLAIN SELECT * INTO copy_of_orders FROM orders',
  ])('%s keeps it', (sql) => {
    expect(changesResolution(one(sql))).toBe(false);
  });
});

describe('changesCatalog: the catalog (another connection) may not show it until commit', () => {
  it('DDL and search_path do; session-only names and transaction ends do not', () => {
    expect(changesCatalog(one('CREATE TABLE t (id int)'))).toBe(true);
    expect(changesCatalog(one('SET search_path = other'))).toBe(true);
    expect(changesCatalog(one('RESET ALL'))).toBe(true);
    expect(changesCatalog(one('RESET statement_timeout'))).toBe(false);
    for (const sql of ['COMMIT', 'ROLLBACK', 'DECLARE c CURSOR FOR SELECT 1', 'PREPARE p AS SELECT 1', 'DEALLOCATE p', 'CLOSE c']) {
      expect(changesCatalog(one(sql)), sql).toBe(false);
    }
  });
});

describe('readsThroughCatalog: masking the statement asks the catalog', () => {
  it('reads of tables, function calls, qualified columns, operators and casts do', () => {
    expect(readsThroughCatalog(one('SELECT id FROM orders'))).toBe(true);
    expect(readsThroughCatalog(one('SELECT lower($1)'))).toBe(true);
    expect(readsThroughCatalog(one("SELECT '1'::shop.price"))).toBe(true);
    expect(readsThroughCatalog(one('SELECT 1 OPERATOR(shop.===) 2'))).toBe(true);
    // PostgreSQL's own types run no code the database defines: not asked about.
    expect(readsThroughCatalog(one("SELECT '1'::money"))).toBe(false);
  });

  it('a statement with nothing the catalog answers does not', () => {
    expect(readsThroughCatalog(one('SELECT 1'))).toBe(false);
    expect(readsThroughCatalog(one('BEGIN'))).toBe(false);
    expect(readsThroughCatalog(one("INSERT INTO orders (id) VALUES (1)"))).toBe(false);
  });
});

describe('copiesFromClient', () => {
  it('COPY … FROM is a copy in; COPY … TO is not', () => {
    expect(copiesFromClient(one('COPY orders FROM STDIN'))).toBe(true);
    expect(copiesFromClient(one('COPY orders TO STDOUT'))).toBe(false);
    expect(copiesFromClient(one('SELECT 1'))).toBe(false);
  });
});
