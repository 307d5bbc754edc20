/**
 * Masking end to end through the Postgres proxy, with node-postgres and a
 * bare wire client against a real PostgreSQL seeded with PII, under the
 * project's policy (policies/data/access/data.yaml): customers.email partial
 * (dba exempt), customers.ssn redact, orders.notes detectors. What is asserted
 * everywhere: no raw SSN reaches the client, in rows, in errors or notices,
 * in text or binary format, whichever protocol asked.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { outcome, type Outcome } from '../helpers/pg-outcome.js';
import { PipelineClient, dataRowFields, errorFields, rowDescription } from '../helpers/pg-pipeline.js';
import { startProxyStack, type ProxyStack } from '../helpers/pg-proxy.js';
import { serialize } from 'pg-protocol';

const SSNS = ['078-05-1120', '219-09-9999', '457-55-5462'];
/** The SSNs in any spelling a cast or a function could turn them into. */
const SSN_SPELLINGS = SSNS.flatMap((s) => [s, s.replaceAll('-', ''), s.replaceAll('-', ' ')]);
const NOTES_13 = 'paid with 4111 1111 1111 1111, ssn 078-05-1120, mail alan@example.org, call +44 20 7946 0958 after 5pm';

let stack: ProxyStack;
let direct: pg.Client;
let analystToken: string;
let dbaToken: string;
let analyst: pg.Client;
let dba: pg.Client;

beforeAll(async () => {
  stack = await startProxyStack();
  direct = await stack.direct();
  // Free text in orders.notes with one of each detector's finds, and a view over the masked table.
  await direct.query('INSERT INTO orders VALUES (13, 2, 5.00, $1)', [NOTES_13]);
  await direct.query('CREATE VIEW customer_contacts AS SELECT id, email, ssn FROM customers');
  await direct.query('GRANT SELECT ON customer_contacts TO gatehouse_orders, gatehouse_md5');
  [{ token: analystToken, client: analyst }, { token: dbaToken, client: dba }] = await Promise.all([
    stack.connectAgent('ann', ['analysts']),
    stack.connectAgent('dora', ['dba']),
  ]);
}, 120_000);

afterAll(async () => {
  await Promise.all([analyst?.end(), dba?.end(), direct?.end()]);
  await stack?.stop();
});


/** Every SSN spelling found anywhere in `value` (rows, errors, buffers). */
function leakedSsns(value: unknown): string[] {
  const text = JSON.stringify(value, (_k, v: unknown) => (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' ? Buffer.from((v as { data: number[] }).data).toString('latin1') : v));
  return SSN_SPELLINGS.filter((s) => text.includes(s));
}

describe('column masks', () => {
  it('SELECT * masks email and phone partially, redacts ssn and PII in notes for an analyst; other columns pass untouched', async () => {
    const { rows } = await analyst.query('SELECT * FROM customers ORDER BY id');
    expect(rows.map((r) => [r.id, r.name, r.email, r.ssn, r.phone, r.notes])).toEqual([
      [1, 'Ada Lovelace', 'a***@example.com', '[REDACTED]', '+* *** *** 0101', 'prefers email'],
      [2, 'Alan Turing', 'a***@example.org', '[REDACTED]', '+** ** **** 0958', 'card [REDACTED:payment_card] on file'],
      [3, 'Grace Hopper', 'g***@example.net', '[REDACTED]', '+* *** *** 0199', null],
    ]);
    expect(Object.keys(rows[0]!)).toEqual(['id', 'name', 'email', 'ssn', 'phone', 'notes', 'created_at']);
    expect(leakedSsns(rows)).toEqual([]);
  });

  it('a dba is exempt from the email mask but not from the ssn mask', async () => {
    const { rows } = await dba.query('SELECT id, email, ssn FROM customers ORDER BY id');
    expect(rows).toEqual([
      { id: 1, email: 'ada@example.com', ssn: '[REDACTED]' },
      { id: 2, email: 'alan@example.org', ssn: '[REDACTED]' },
      { id: 3, email: 'grace@example.net', ssn: '[REDACTED]' },
    ]);
  });

  it('detectors replace the card, SSN, email and phone inside orders.notes and keep the rest of the text', async () => {
    const { rows } = await analyst.query('SELECT id, notes FROM orders ORDER BY id');
    expect(rows).toEqual([
      { id: 10, notes: 'ship to [REDACTED:email]' },
      { id: 11, notes: 'call [REDACTED:phone] before delivery' },
      { id: 12, notes: 'gift wrap' },
      { id: 13, notes: 'paid with [REDACTED:payment_card], ssn [REDACTED:us_ssn], mail [REDACTED:email], call [REDACTED:phone] after 5pm' },
    ]);
  });

  it('the masks follow a column through a subquery, a CTE and an alias', async () => {
    for (const sql of [
      'SELECT s FROM (SELECT ssn AS s FROM customers) t',
      'WITH x AS (SELECT ssn FROM customers) SELECT * FROM x',
      'SELECT * FROM (SELECT ssn FROM customers) AS t(s)',
      'SELECT ssn AS email FROM customers', // named like the partial column, masked as what it is
    ]) {
      const { rows } = await analyst.query({ text: sql, rowMode: 'array' });
      expect(rows, sql).toEqual([['[REDACTED]'], ['[REDACTED]'], ['[REDACTED]']]);
    }
  });

  it('records masking counts in the audit trail, and no values', () => {
    const exported = runCli(['audit', 'export', '-c', stack.config]);
    expect(exported.code, exported.stderr).toBe(0);
    const events = exported.stdout.trim().split('\n').map((line) => JSON.parse(line) as { activity_name?: string; message?: string; unmapped?: { masked?: unknown[] } });
    const masked = events.find((e) => e.activity_name === 'Masked' && e.message === 'SELECT * FROM customers ORDER BY id');
    expect(masked?.unmapped?.masked).toEqual(expect.arrayContaining([
      { column: 'public.customers.email', detector: null, count: 3 },
      { column: 'public.customers.ssn', detector: null, count: 3 },
    ]));
    expect(leakedSsns(exported.stdout)).toEqual([]);
  });
});

describe('masking counts per statement', () => {
  it('counts each statement on its own, when statements with the same facts share one compiled plan', async () => {
    // Same facts (the constants differ), so the second decision comes from the cache with the same plan.
    await analyst.query('SELECT id, ssn FROM customers WHERE id <= 2');
    await analyst.query('SELECT id, ssn FROM customers WHERE id <= 1');
    const exported = runCli(['audit', 'export', '-c', stack.config]);
    expect(exported.code, exported.stderr).toBe(0);
    const events = exported.stdout.trim().split('\n').map((line) => JSON.parse(line) as { activity_name?: string; message?: string; unmapped?: { masked?: unknown[] } });
    const countOf = (sql: string) => events.find((e) => e.activity_name === 'Masked' && e.message === sql)?.unmapped?.masked;
    expect(countOf('SELECT id, ssn FROM customers WHERE id <= 2')).toEqual([{ column: 'public.customers.ssn', detector: null, count: 2 }]);
    expect(countOf('SELECT id, ssn FROM customers WHERE id <= 1')).toEqual([{ column: 'public.customers.ssn', detector: null, count: 1 }]);
  });
});

describe('expressions over masked columns are refused or masked, never leaked', () => {
  const probes = [
    'SELECT upper(ssn) FROM customers',
    'SELECT row_to_json(c) FROM customers c',
    'SELECT c.*::text FROM customers c',
    "SELECT ssn || '' FROM customers",
    'SELECT ssn::int FROM customers',
    'SELECT to_json(ssn) FROM customers',
    'SELECT max(ssn) FROM customers',
    "SELECT string_agg(ssn, ',') FROM customers",
    'SELECT ARRAY(SELECT ssn FROM customers)',
    'SELECT (SELECT ssn FROM customers LIMIT 1) AS x',
    'SELECT customers FROM customers',
    'SELECT c FROM customers c',
    'SELECT jsonb_agg(customers) FROM customers',
    'SELECT ssn FROM customers c1 FULL JOIN customers c2 USING (ssn)',
    'SELECT ssn FROM customers UNION SELECT ssn FROM customers',
    "SELECT replace(notes, '@', ' at ') FROM orders",
    // PostgreSQL before 16 reads the keyword as the whole row of the FROM item named "system_user".
    'SELECT system_user FROM customers AS "system_user"',
    'SELECT id, system_user::text FROM customers AS "system_user"',
  ];

  it.each(probes)('%s', async (sql) => {
    const result = await outcome(analyst, sql);
    expect(leakedSsns(result)).toEqual([]);
    if (result.error) {
      expect(result.error.code).toBe('42501');
      expect(result.error.message).toMatch(/^gatehouse denied the statement: /);
    } else {
      // Allowed: then every value that came from a masked column is masked.
      for (const row of result.rows!) for (const value of Object.values(row)) expect(String(value)).toMatch(/REDACTED|\*\*\*/);
    }
  });

  it('the same probes through the extended protocol (parameters) are refused the same way', async () => {
    for (const sql of ['SELECT upper(ssn) FROM customers WHERE id = $1', 'SELECT row_to_json(c) FROM customers c WHERE id = $1']) {
      const result = await outcome(analyst, { text: sql, values: [1] });
      expect(result.error?.code, sql).toBe('42501');
      expect(leakedSsns(result)).toEqual([]);
    }
  });

  it('COPY of the masked table is refused to psql, with nothing leaked', () => {
    for (const copy of ['COPY customers TO STDOUT', 'COPY (SELECT ssn FROM customers) TO STDOUT', 'COPY customers (id, ssn) TO STDOUT', 'COPY (SELECT c FROM customers c) TO STDOUT']) {
      const res = stack.psql('orders-db', analystToken, ['-c', copy]);
      expect(res.stderr, copy).toContain('gatehouse denied the statement: COPY would send');
      expect(leakedSsns(res.stdout + res.stderr)).toEqual([]);
    }
  });

  it('COPY of the columns no rule masks runs', () => {
    const res = stack.psql('orders-db', analystToken, ['-c', 'COPY (SELECT id, name FROM customers ORDER BY id) TO STDOUT', '-c', 'COPY customers (id) TO STDOUT']);
    expect(res.stderr).toBe('');
    expect(res.stdout).toBe('1\tAda Lovelace\n2\tAlan Turing\n3\tGrace Hopper\n1\n2\n3\n');
  });

  // A set operation's result columns carry no table OID in RowDescription, so the plan cannot
  // find them: the analyser counts every branch's columns as derived, and the proxy refuses.
  it('a UNION over a masked column is refused, first branch included', async () => {
    const result = await outcome(analyst, 'SELECT ssn FROM customers UNION ALL SELECT NULL');
    expect(result.error?.code).toBe('42501');
    expect(result.error?.message).toMatch(/expression over masked column ssn/);
    expect(leakedSsns(result)).toEqual([]);
  });

  // A view's columns carry the view's own OID and attribute numbers, which the plan (resolved
  // for the base table) does not know: a view that reads a masked column is refused.
  it('a view over the masked table is refused, naming the masked column it reads', async () => {
    const result = await outcome(analyst, 'SELECT * FROM customer_contacts');
    expect(result.error?.code).toBe('42501');
    expect(result.error?.message).toMatch(/view public\.customer_contacts reads masked column public\.customers\.(ssn|email)/);
    expect(leakedSsns(result)).toEqual([]);
  });
});

// A caller with a write grant could copy a masked column into a table and read it back from
// there, where no mask applies. The dba may write to orders-db, and ssn is masked for everyone.
describe('writes that would copy a masked column into a table are refused', () => {
  beforeAll(async () => {
    await direct.query('CREATE TABLE scratch (id serial PRIMARY KEY, body text)');
    await direct.query('GRANT ALL ON scratch, scratch_id_seq TO gatehouse_orders');
  });

  const copies = [
    'INSERT INTO scratch (body) SELECT ssn FROM customers',
    'INSERT INTO scratch (body) SELECT c.ssn FROM customers c WHERE c.id = 1',
    "INSERT INTO scratch (body) SELECT 'x' UNION ALL SELECT ssn FROM customers",
    'INSERT INTO scratch (body) VALUES ((SELECT ssn FROM customers LIMIT 1))',
    'WITH w AS (SELECT ssn FROM customers) INSERT INTO scratch (body) SELECT ssn FROM w',
    'INSERT INTO scratch (body) SELECT row_to_json(c)::text FROM customers c',
    'UPDATE scratch SET body = (SELECT ssn FROM customers LIMIT 1)',
    'UPDATE scratch s SET body = c.ssn FROM customers c WHERE c.id = s.id',
    'UPDATE customers SET notes = ssn',
    'INSERT INTO scratch (id, body) VALUES (1, NULL) ON CONFLICT (id) DO UPDATE SET body = (SELECT ssn FROM customers LIMIT 1)',
    'MERGE INTO scratch s USING customers c ON s.id = c.id WHEN MATCHED THEN UPDATE SET body = c.ssn WHEN NOT MATCHED THEN INSERT (id, body) VALUES (c.id, c.ssn)',
    'CREATE TABLE loot AS SELECT ssn FROM customers',
    'SELECT ssn INTO loot FROM customers',
    'CREATE MATERIALIZED VIEW loot AS SELECT id, ssn FROM customers',
    'EXPLAIN ANALYZE INSERT INTO scratch (body) SELECT ssn FROM customers',
  ];

  it.each(copies)('%s', async (sql) => {
    await direct.query('TRUNCATE scratch');
    await direct.query('INSERT INTO scratch (id, body) VALUES (1, NULL), (2, NULL), (3, NULL)');
    const result = await outcome(dba, sql);
    expect(result.error?.code).toBe('42501');
    expect(result.error?.message).toMatch(/^gatehouse denied the statement: .*(masked column ssn|whole rows of customers)/);
    // Nothing reached the database: no copy, and no new table.
    const copied = await direct.query<{ body: string | null }>('SELECT body FROM scratch');
    expect(leakedSsns(copied.rows)).toEqual([]);
    expect(leakedSsns((await direct.query('SELECT notes FROM customers')).rows)).toEqual([]);
    expect((await direct.query("SELECT to_regclass('public.loot') AS t")).rows).toEqual([{ t: null }]);
  });

  it('names the verb and the table the value would land in', async () => {
    const insert = await outcome(dba, 'INSERT INTO scratch (body) SELECT ssn FROM customers');
    expect(insert.error?.message).toContain('INSERT would write masked column ssn into public.scratch, where it is not masked');
    const whole = await outcome(dba, 'INSERT INTO scratch (body) SELECT c::text FROM customers c');
    expect(whole.error?.message).toContain('INSERT would write whole rows of customers into public.scratch, masked columns unmasked');
  });

  it('the same through the extended protocol', async () => {
    const result = await outcome(dba, { text: 'INSERT INTO scratch (body) SELECT ssn FROM customers WHERE id = $1', values: [1] });
    expect(result.error?.code).toBe('42501');
    expect((await direct.query('SELECT count(*)::int AS n FROM scratch WHERE body IS NOT NULL')).rows).toEqual([{ n: 0 }]);
  });

  // The analyser sees EXECUTE, not the statement it runs: a table filled from a prepared
  // statement's rows would hold whatever columns it returns.
  it('CREATE TABLE … AS EXECUTE is refused; a prepared read stays masked', async () => {
    expect((await outcome(dba, 'PREPARE all_rows AS SELECT id, ssn FROM customers')).error).toBeNull();
    // A temporary table: any role may create one.
    const filled = await outcome(dba, 'CREATE TEMP TABLE loot AS EXECUTE all_rows');
    expect(filled.error?.code).toBe('42501');
    expect(filled.error?.message).toContain('CREATE would write the rows of prepared statement all_rows into pg_temp.loot, where masked columns are not masked');
    expect((await outcome(dba, 'EXPLAIN ANALYZE CREATE TEMP TABLE loot AS EXECUTE all_rows')).error?.code).toBe('42501');
    const loot = await outcome(dba, 'SELECT * FROM loot');
    expect(loot.error?.code).toBe('42P01');
    expect(leakedSsns(loot)).toEqual([]);
    const read = await outcome(dba, 'EXECUTE all_rows');
    expect(read.rows).toHaveLength(3);
    expect(leakedSsns(read.rows)).toEqual([]);
    await outcome(dba, 'DEALLOCATE all_rows');
  });

  // Why EXECUTE's parameters and CALL's arguments need no following: PostgreSQL takes no
  // subquery there, so no column can be handed on to the statement or procedure.
  it('the server refuses a masked column handed to a prepared statement or a procedure', async () => {
    await direct.query('CREATE PROCEDURE keep(v text) LANGUAGE sql AS $$ INSERT INTO scratch (body) VALUES (v) $$');
    await direct.query('GRANT EXECUTE ON PROCEDURE keep(text) TO gatehouse_orders');
    await direct.query('TRUNCATE scratch');
    expect((await outcome(dba, 'PREPARE keep_row(text) AS INSERT INTO scratch (body) VALUES ($1)')).error).toBeNull();
    const executed = await outcome(dba, 'EXECUTE keep_row((SELECT ssn FROM customers LIMIT 1))');
    expect(executed.error?.code).toBe('0A000'); // cannot use subquery in EXECUTE parameter (the message withheld)
    // A procedure the database defines is refused to a masked caller anyway (see "code the database defines";
    // a new session, since a session learns the database's functions once).
    const { client: dbaNow } = await stack.connectAgent('dora-keep', ['dba']);
    const called = await outcome(dbaNow, 'CALL keep((SELECT ssn FROM customers LIMIT 1))');
    await dbaNow.end();
    expect(called.error?.code).toBe('42501');
    expect(called.error?.message).toContain('function keep is defined in the database');
    expect((await direct.query("CALL keep((SELECT ssn FROM customers LIMIT 1))").catch((e: pg.DatabaseError) => e)) as pg.DatabaseError).toMatchObject({ code: '0A000', message: 'cannot use subquery in CALL argument' });
    expect((await outcome(dba, "EXECUTE keep_row('plain')")).error).toBeNull();
    expect((await direct.query('SELECT body FROM scratch')).rows).toEqual([{ body: 'plain' }]);
    await outcome(dba, 'DEALLOCATE keep_row');
  });

  it('a value written back into its own masked column stays masked there, and runs', async () => {
    expect((await outcome(dba, 'UPDATE orders SET notes = notes WHERE id = 12')).error).toBeNull();
    await outcome(dba, "INSERT INTO orders (id, customer_id, amount, notes) VALUES (12, 3, 99.99, 'gift wrap, red') ON CONFLICT (id) DO UPDATE SET notes = excluded.notes");
    expect((await direct.query('SELECT notes FROM orders WHERE id = 12')).rows).toEqual([{ notes: 'gift wrap, red' }]);
    await direct.query("UPDATE orders SET notes = 'gift wrap' WHERE id = 12");
    // Into another column it is still a copy.
    expect((await outcome(dba, 'UPDATE customers SET notes = ssn WHERE id = 3')).error?.code).toBe('42501');
  });

  it('refuses rewriting a column from its own value where the mask reads the value (detectors, partial, hash)', async () => {
    // translate() hides the PII from the notes detectors; RETURNING (or a SELECT before ROLLBACK) would show it.
    for (const sql of [
      "UPDATE orders SET notes = translate(notes, '@.0123456789+', '#,abcdefghijP') RETURNING id, notes",
      "UPDATE orders SET notes = notes || ' (checked)' WHERE id = 12",
    ]) {
      const refused = await outcome(dba, sql);
      expect(refused.error?.code, sql).toBe('42501');
      expect(refused.error?.message).toContain('would rewrite masked column notes from its own value');
    }
    // ssn is redacted whole: nothing of it shows, however it is rewritten.
    expect((await outcome(dba, 'UPDATE customers SET ssn = upper(ssn) WHERE id = 3')).error).toBeNull();
  });

  it('EXPLAIN ANALYZE runs the statement: a carrier in it is refused as without EXPLAIN', async () => {
    const refused = await outcome(dba, "EXPLAIN ANALYZE SELECT pg_notify('x', string_agg(ssn, ',')) FROM customers");
    expect(refused.error?.code).toBe('42501');
    expect(refused.error?.message).toContain('masked column ssn');
  });

  it('writes that only filter on a masked column, or copy one the caller may see, run', async () => {
    await direct.query('TRUNCATE scratch');
    await outcome(dba, "INSERT INTO scratch (body) SELECT 'vip' FROM customers WHERE ssn LIKE '0%'");
    // The dba is exempt from the email mask.
    await outcome(dba, 'INSERT INTO scratch (body) SELECT email FROM customers WHERE id = 1');
    await outcome(dba, "UPDATE customers SET notes = 'checked' WHERE ssn = '219-09-9999'");
    expect((await direct.query('SELECT body FROM scratch ORDER BY id')).rows).toEqual([{ body: 'vip' }, { body: 'ada@example.com' }]);
    expect((await direct.query('SELECT notes FROM customers WHERE id = 2')).rows).toEqual([{ notes: 'checked' }]);
  });
});

// Mask rules name columns (schema.table.column): a rename would leave a rule naming nothing, and
// a parent table would show the rows under its own name.
describe('renames cannot take a masked column out of its rule', () => {
  // The dba owns customers here, so the server would run each of these: the gateway must refuse first.
  beforeAll(async () => {
    await direct.query('CREATE SCHEMA IF NOT EXISTS archive');
    await direct.query('CREATE TABLE people (id int, ssn text)');
    await direct.query("CREATE TABLE people_by_id (id int, name text, email text, ssn text, phone text, notes text, created_at date) PARTITION BY LIST (id)");
    await direct.query('GRANT CREATE ON SCHEMA public, archive TO gatehouse_orders');
    await direct.query('ALTER TABLE customers OWNER TO gatehouse_orders');
    await direct.query('ALTER TABLE people OWNER TO gatehouse_orders');
    await direct.query('ALTER TABLE people_by_id OWNER TO gatehouse_orders');
  });
  afterAll(async () => {
    await direct.query('ALTER TABLE customers OWNER TO CURRENT_USER');
    // The grants the seed made, which the owner changes took away.
    await direct.query('GRANT ALL ON customers TO gatehouse_orders, gatehouse_md5');
    await direct.query('DROP TABLE people, people_by_id');
  });

  it.each([
    ['ALTER TABLE customers RENAME COLUMN ssn TO s2', 'public.customers.ssn'],
    ['ALTER TABLE public.customers RENAME TO clients', 'public.customers'],
    ['ALTER TABLE customers SET SCHEMA archive', 'public.customers'],
    ['ALTER SCHEMA public RENAME TO old_public', 'public'],
    ['ALTER TABLE customers INHERIT people', 'public.customers'],
    ['ALTER TABLE people_by_id ATTACH PARTITION customers FOR VALUES IN (1, 2, 3)', 'public.customers'],
  ])('%s is refused to a caller the rule masks', async (sql, renamed) => {
    const result = await outcome(dba, sql);
    expect(result.error?.code).toBe('42501');
    expect(result.error?.message).toContain(`ALTER would take ${renamed} out of the reach of mask rule public.customers.ssn`);
    expect((await direct.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'customers' AND column_name = 'ssn'")).rows).toEqual([{ n: 1 }]);
    expect((await direct.query("SELECT count(*)::int AS n FROM pg_inherits WHERE inhrelid = 'public.customers'::regclass")).rows).toEqual([{ n: 0 }]);
  });

  it.each([
    'ALTER TABLE customers ADD COLUMN tax_copy text GENERATED ALWAYS AS (ssn) STORED',
    'ALTER TABLE customers ALTER COLUMN phone TYPE text USING ssn',
  ])('a column filled from a masked one is refused: %s', async (sql) => {
    const result = await outcome(dba, sql);
    expect(result.error?.code).toBe('42501');
    expect(result.error?.message).toContain('ALTER would write masked column ssn into public.customers, where it is not masked');
    expect((await direct.query('SELECT phone FROM customers ORDER BY id')).rows.map((r) => r.phone)).not.toContain('078-05-1120');
    expect((await direct.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'tax_copy'")).rows).toEqual([{ n: 0 }]);
  });

  it('renaming a table or column no rule names runs', async () => {
    await direct.query('CREATE TABLE renamable (id int, phone text)');
    await direct.query('ALTER TABLE renamable OWNER TO gatehouse_orders');
    expect((await outcome(dba, 'ALTER TABLE renamable RENAME COLUMN phone TO telephone')).error).toBeNull();
    expect((await outcome(dba, 'ALTER TABLE renamable RENAME TO renamed')).error).toBeNull();
    expect((await direct.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'renamed' ORDER BY 1")).rows)
      .toEqual([{ column_name: 'id' }, { column_name: 'telephone' }]);
  });

  it('a masked column renamed outside the gateway: its table is refused to new sessions until the rule or the schema is fixed', async () => {
    // A session that resolved the rule before the rename masks by its (table OID, attribute) pair, which a rename
    // does not change, until its catalog answers are older than catalog_cache_ms (2 s); then it is refused too.
    await outcome(dba, 'SELECT ssn FROM customers WHERE id = 1');
    await direct.query('ALTER TABLE customers RENAME COLUMN ssn TO tax_id');
    const { client } = await stack.connectAgent('ann', ['analysts']);
    const { client: newDba } = await stack.connectAgent('dora', ['dba']);
    try {
      expect(leakedSsns(await outcome(dba, 'SELECT tax_id FROM customers WHERE id = 1'))).toEqual([]);
      await new Promise((resolve) => setTimeout(resolve, 2100));
      const later = await outcome(dba, 'SELECT tax_id FROM customers WHERE id = 1');
      expect(later.error?.message).toContain('mask rule public.customers.ssn names no column of public.customers (renamed or dropped?)');
      const result = await outcome(client, 'SELECT tax_id FROM customers');
      expect(result.error?.code).toBe('42501');
      expect(result.error?.message).toContain('mask rule public.customers.ssn names no column of public.customers (renamed or dropped?)');
      expect(leakedSsns(result)).toEqual([]);
      // A write's RETURNING would return it as well.
      const returning = await outcome(newDba, 'UPDATE customers SET name = name WHERE id = 1 RETURNING tax_id');
      expect(returning.error?.message).toContain('mask rule public.customers.ssn names no column of public.customers');
      expect(leakedSsns(returning)).toEqual([]);
      // Tables the rule does not name are read as before.
      expect((await outcome(client, 'SELECT name FROM products WHERE id = 1')).rows).toEqual([{ name: 'Widget' }]);
    } finally {
      await direct.query('ALTER TABLE customers RENAME COLUMN tax_id TO ssn');
      await Promise.all([client.end(), newDba.end()]);
      // The sessions the other tests share refuse the table until their catalog answers pass too.
      await new Promise((resolve) => setTimeout(resolve, 2100));
    }
  });
});

describe('values in error messages', () => {
  it('a cast error quoting an SSN reaches the client with the value taken out', async () => {
    for (const query of [
      'SELECT id FROM customers WHERE ssn::int > 0',
      { text: 'SELECT id FROM customers WHERE ssn::int > $1', values: [0] },
      'SELECT id FROM customers WHERE ssn::date IS NULL',
      'SELECT ssn FROM customers ORDER BY ssn::int',
    ]) {
      const result = await outcome(analyst, query);
      expect(result.error, JSON.stringify(query)).not.toBeNull();
      expect(result.error!.code).toMatch(/^22/); // the server's own data error, not a denial
      expect(result.error!.message).toContain('the database\'s message is withheld');
      expect(leakedSsns(result)).toEqual([]);
    }
  });

  it('SELECT ssn::int FROM customers puts no SSN in the message or detail', async () => {
    const result = await outcome(analyst, 'SELECT ssn::int FROM customers');
    expect(result.error).not.toBeNull();
    expect(leakedSsns(result)).toEqual([]);
  });

  it('an error raised at FETCH from a cursor over the masked table is scrubbed (FETCH itself names no table)', async () => {
    await analyst.query('BEGIN');
    try {
      await analyst.query('DECLARE ssn_cursor CURSOR FOR SELECT id FROM customers WHERE ssn::int > 0');
      const result = await outcome(analyst, 'FETCH ALL FROM ssn_cursor');
      expect(result.error?.code).toBe('22P02');
      expect(leakedSsns(result)).toEqual([]);
    } finally {
      await analyst.query('ROLLBACK');
    }
  });

  it('an error quoting an SSN read through a view cannot happen: the view is refused first', async () => {
    const result = await outcome(analyst, 'SELECT id FROM customer_contacts WHERE ssn::int > 0');
    expect(result.error?.code).toBe('42501');
    expect(leakedSsns(result)).toEqual([]);
  });

  async function noticesOf(sql: string): Promise<{ result: Outcome; notices: unknown[] }> {
    const notices: unknown[] = [];
    const listener = (n: unknown) => notices.push(n);
    dba.on('notice', listener);
    try {
      const result = await outcome(dba, sql);
      await dba.query('SELECT 1'); // a later round trip: a notice comes before its ReadyForQuery
      return { result, notices: notices.map((n) => ({ ...(n as object), message: (n as Error).message })) };
    } finally {
      dba.off('notice', listener);
    }
  }

  it('a NOTICE quoting an SSN, from a trigger the database has, is scrubbed', async () => {
    await direct.query(`CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE NOTICE 'ssn %', (SELECT ssn FROM customers WHERE id = 1); RETURN NEW; END $$;
      CREATE TRIGGER shout BEFORE INSERT ON scratch FOR EACH ROW EXECUTE FUNCTION shout()`);
    try {
      const { result, notices } = await noticesOf("INSERT INTO scratch (body) VALUES ('a'), ('b')");
      expect(result).toEqual({ rows: [], error: null });
      expect(notices).toHaveLength(2);
      expect(leakedSsns(notices)).toEqual([]);
    } finally {
      await direct.query('DROP TRIGGER shout ON scratch; DROP FUNCTION shout()');
    }
  });

  // Red-team round 23: messages passed by their SQLSTATE alone let code the database holds choose one.
  it('an error a trigger raises under a SQLSTATE whose messages hold no value is withheld unless PostgreSQL wrote it', async () => {
    await direct.query(`CREATE FUNCTION blame() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.body = 'zero' THEN RETURN NEW; END IF;
        RAISE EXCEPTION USING ERRCODE = '22012', MESSAGE = (SELECT ssn FROM customers WHERE id = 1);
      END $$;
      CREATE TRIGGER blame BEFORE INSERT ON scratch FOR EACH ROW EXECUTE FUNCTION blame()`);
    try {
      const raised = await outcome(dba, "INSERT INTO scratch (body) VALUES ('x')");
      expect(raised.error?.code).toBe('22012');
      expect(raised.error?.message).toBe("division by zero (the database's message is withheld: it could quote a masked value)");
      expect(leakedSsns([raised])).toEqual([]);
      // PostgreSQL's own message under that code passes as it is.
      expect((await outcome(dba, "INSERT INTO scratch (body) SELECT 'zero' WHERE 1 / 0 = 1")).error?.message).toBe('division by zero');
    } finally {
      await direct.query('DROP TRIGGER blame ON scratch; DROP FUNCTION blame()');
    }
  });

  it('a dba\'s own DO block that would raise an SSN is refused: ssn is masked for the dba', async () => {
    const { result, notices } = await noticesOf(`DO $$ BEGIN RAISE NOTICE 'ssn %', (SELECT ssn FROM customers WHERE id = 1); END $$`);
    expect(result.error?.code).toBe('42501');
    expect(result.error?.message).toContain('DO runs code the gateway cannot inspect, which could read columns masked for the caller');
    expect(notices).toEqual([]);
  });
});

// Rows of a table that inherits a masked table (a partition, a child) come back under the
// child's OID when the child is queried, and through the parent under the parent's.
describe('tables that inherit a masked table are masked too', () => {
  const ARCHIVED_SSN = '536-90-4399';
  let client: pg.Client;
  beforeAll(async () => {
    await direct.query('CREATE TABLE customers_archive () INHERITS (customers)');
    await direct.query("INSERT INTO customers_archive (id, name, email, ssn, phone) VALUES (9, 'Edsger Dijkstra', 'ewd@example.nl', $1, '+31 40 247 9111')", [ARCHIVED_SSN]);
    await direct.query('CREATE VIEW archive_contacts AS SELECT id, ssn FROM customers_archive');
    await direct.query('GRANT SELECT ON customers_archive, archive_contacts TO gatehouse_orders');
    // A new session: a session resolves its mask rules once, when it first needs them.
    ({ client } = await stack.connectAgent('arnie', ['analysts']));
  });
  afterAll(async () => {
    await client?.end();
    await direct.query('DROP VIEW archive_contacts; DROP TABLE customers_archive');
  });

  it('the child queried directly, and through the parent, is masked', async () => {
    expect((await client.query('SELECT id, email, ssn FROM customers_archive')).rows).toEqual([{ id: 9, email: 'e***@example.nl', ssn: '[REDACTED]' }]);
    const all = await client.query('SELECT id, ssn FROM customers ORDER BY id');
    expect(all.rows.map((r) => r.ssn)).toEqual(['[REDACTED]', '[REDACTED]', '[REDACTED]', '[REDACTED]']);
    expect(JSON.stringify(all.rows)).not.toContain(ARCHIVED_SSN);
  });

  it.each([
    'SELECT row_to_json(a) FROM customers_archive a',
    'SELECT upper(ssn) FROM customers_archive',
    'COPY customers_archive TO STDOUT',
    'SELECT * FROM archive_contacts',
    // The parent stays masked while a child exists: the rules' tables are not one per column name.
    'SELECT row_to_json(c) FROM customers c',
    'SELECT c::text FROM customers c',
    'COPY customers TO STDOUT',
  ])('what masking cannot follow is refused for the child as for the parent: %s', async (sql) => {
    const result = await outcome(client, sql);
    expect(result.error?.code).toBe('42501');
    expect(JSON.stringify(result)).not.toContain(ARCHIVED_SSN);
    expect(leakedSsns(result)).toEqual([]);
  });
});

// Names the proxy tracks (prepared statements, portals) and what the server holds under them can
// part: SQL can replace them between batches, and the server skips messages after an error.
describe('what a name stands for on the server is what gets masked', () => {
  const wireOf = (token: string) => PipelineClient.connect({ host: '127.0.0.1', port: stack.proxyPort, user: 'orders-db', database: 'orders', password: token });
  const bodies = (messages: { type: string; body: Buffer }[]) => messages.map((m) => m.body.toString('latin1')).join('\n');

  it('a cursor DECLAREd under the name of a portal bound earlier is not run as that portal', async () => {
    const wire = await wireOf(analystToken);
    try {
      wire.send(serialize.parse({ text: 'SELECT id FROM products' }), serialize.bind({ portal: 'bar' }), serialize.describe({ type: 'P', name: 'bar' }), serialize.execute({ portal: 'bar' }), serialize.sync());
      await wire.until('Z');
      wire.send(serialize.query('BEGIN'));
      await wire.until('Z');
      wire.send(serialize.query('DECLARE bar CURSOR WITH HOLD FOR SELECT id, email, ssn FROM customers'));
      await wire.until('Z');
      wire.send(serialize.execute({ portal: 'bar' }), serialize.sync());
      const answer = await wire.until('Z');
      expect(leakedSsns(bodies(answer))).toEqual([]);
      expect(bodies(answer)).not.toContain('ada@example.com');
      const error = answer.find((m) => m.type === 'E');
      expect(errorFields(error!.body).M).toContain('portal "bar" was not bound through the extended protocol');
    } finally {
      await wire.end();
    }
  });

  it('a statement name DEALLOCATEd and PREPAREd again in SQL is not bound as the Parse it had', async () => {
    const wire = await wireOf(analystToken);
    try {
      wire.send(serialize.parse({ name: 's1', text: 'SELECT id FROM customers' }), serialize.describe({ type: 'S', name: 's1' }), serialize.sync());
      await wire.until('Z');
      wire.send(serialize.query('DEALLOCATE s1'));
      await wire.until('Z');
      wire.send(serialize.query('PREPARE s1 AS SELECT id, email, ssn FROM customers'));
      await wire.until('Z');
      wire.send(serialize.bind({ statement: 's1' }), serialize.execute({}), serialize.sync());
      const answer = await wire.until('Z');
      expect(leakedSsns(bodies(answer))).toEqual([]);
      expect(errorFields(answer.find((m) => m.type === 'E')!.body).M).toContain('statement "s1" was not prepared through the extended protocol');
    } finally {
      await wire.end();
    }
  });

  it('FETCH and EXECUTE are masked by what the cursor or statement returns when they run, not when described', async () => {
    const wire = await wireOf(analystToken);
    try {
      // Described before the cursor exists: NoData, which promises nothing about the rows FETCH returns later.
      wire.send(serialize.parse({ name: 'f1', text: 'FETCH ALL FROM c1' }), serialize.describe({ type: 'S', name: 'f1' }), serialize.sync());
      await wire.until('Z');
      wire.send(serialize.query('DECLARE c1 CURSOR WITH HOLD FOR SELECT id, email, ssn FROM customers ORDER BY id'));
      await wire.until('Z');
      wire.send(serialize.bind({ statement: 'f1' }), serialize.execute({}), serialize.sync());
      const fetched = await wire.until('Z');
      expect(fetched.filter((m) => m.type === 'D')).toHaveLength(3);
      expect(leakedSsns(bodies(fetched))).toEqual([]);
      expect(bodies(fetched)).not.toContain('ada@example.com');

      // Described over a harmless cursor, which is then declared again over masked columns.
      wire.send(serialize.query('CLOSE c1; DECLARE c1 CURSOR WITH HOLD FOR SELECT id, name FROM customers ORDER BY id'));
      await wire.until('Z');
      wire.send(serialize.parse({ name: 'f2', text: 'FETCH 2 FROM c1' }), serialize.describe({ type: 'S', name: 'f2' }), serialize.sync());
      await wire.until('Z');
      wire.send(serialize.query('CLOSE c1; DECLARE c1 CURSOR WITH HOLD FOR SELECT id, email, ssn FROM customers ORDER BY id'));
      await wire.until('Z');
      wire.send(serialize.bind({ statement: 'f2' }), serialize.execute({}), serialize.sync());
      const refetched = await wire.until('Z');
      expect(leakedSsns(bodies(refetched))).toEqual([]);
      expect(bodies(refetched)).not.toContain('ada@example.com');
    } finally {
      await wire.end();
    }
    const dbaWire = await wireOf(dbaToken);
    try {
      // EXECUTE described before the statement it runs was prepared.
      dbaWire.send(serialize.parse({ name: 'e1', text: 'EXECUTE p1' }), serialize.describe({ type: 'S', name: 'e1' }), serialize.sync());
      await dbaWire.until('Z');
      dbaWire.send(serialize.query('PREPARE p1 AS SELECT id, email, ssn FROM customers ORDER BY id'));
      await dbaWire.until('Z');
      dbaWire.send(serialize.bind({ statement: 'e1' }), serialize.execute({}), serialize.sync());
      const executed = await dbaWire.until('Z');
      expect(executed.filter((m) => m.type === 'D')).toHaveLength(3);
      expect(leakedSsns(bodies(executed))).toEqual([]);
    } finally {
      await dbaWire.end();
    }
  });

  it('a FETCH portal is not run once the cursor it was bound to has been replaced', async () => {
    const wire = await wireOf(analystToken);
    try {
      wire.send(serialize.query('DECLARE c2 CURSOR WITH HOLD FOR SELECT id, name FROM customers ORDER BY id'));
      await wire.until('Z');
      wire.send(serialize.query('BEGIN'));
      await wire.until('Z');
      wire.send(serialize.parse({ text: 'FETCH ALL FROM c2' }), serialize.bind({ portal: 'f' }), serialize.flush());
      await wire.until('2');
      wire.send(serialize.query('CLOSE c2; DECLARE c2 CURSOR WITH HOLD FOR SELECT id, email, ssn FROM customers ORDER BY id'));
      await wire.until('Z');
      wire.send(serialize.execute({ portal: 'f' }), serialize.sync());
      const answer = await wire.until('Z');
      expect(leakedSsns(bodies(answer))).toEqual([]);
      expect(errorFields(answer.find((m) => m.type === 'E')!.body).M).toContain('may have changed since it was bound');
    } finally {
      await wire.end();
    }
  });

  it('a Bind the server refuses (a cursor of that name exists) does not stand in for the cursor', async () => {
    const wire = await wireOf(analystToken);
    try {
      wire.send(serialize.query('DECLARE c3 CURSOR WITH HOLD FOR SELECT id, email, ssn FROM customers ORDER BY id'));
      await wire.until('Z');
      wire.send(serialize.parse({ name: 'sx', text: 'SELECT 1 AS x' }), serialize.bind({ statement: 'sx', portal: 'c3' }), serialize.flush());
      expect(errorFields((await wire.until('E')).at(-1)!.body).C).toBe('42P03');
      wire.send(serialize.describe({ type: 'P', name: 'c3' }), serialize.sync());
      await wire.until('Z');
      wire.send(serialize.execute({ portal: 'c3' }), serialize.sync());
      const answer = await wire.until('Z');
      expect(leakedSsns(bodies(answer))).toEqual([]);
      expect(bodies(answer)).not.toContain('ada@example.com');
      expect(errorFields(answer.find((m) => m.type === 'E')!.body).M).toContain('portal "c3" was not bound through the extended protocol');
    } finally {
      await wire.end();
    }
  });

  it('a COPY FROM STDIN that fails on the server leaves no Sync answered twice: later rows are still masked', async () => {
    const wire = await wireOf(dbaToken);
    try {
      wire.send(serialize.query('CREATE TEMP TABLE t5 (x int)'));
      await wire.until('Z');
      wire.send(serialize.query('COPY t5 FROM STDIN'));
      await wire.until('G');
      wire.send(serialize.copyData(Buffer.from('not-an-int\n')));
      await wire.until('Z');
      // No CopyDone: the server has left COPY already. A Sync and two queries, in one write.
      wire.send(serialize.query('SELECT pg_sleep(0.2)'), serialize.sync(), serialize.query('SELECT id, email, ssn FROM customers ORDER BY id'));
      const answers = [...await wire.until('Z'), ...await wire.until('Z'), ...await wire.until('Z')];
      expect(leakedSsns(bodies(answers))).toEqual([]);
      expect(answers.filter((m) => m.type === 'D').map((m) => dataRowFields(m.body)[2]?.toString())).toContain('[REDACTED]');
    } finally {
      await wire.end();
    }
  });

  it.each([
    ['a temporary table dropped at its implicit commit (ON COMMIT DROP)', 'CREATE TEMP TABLE customers (id int, email text, ssn text) ON COMMIT DROP'],
    ['a table that EXPLAIN ANALYZE CREATE TABLE AS made, dropped at the implicit commit',
      "EXPLAIN ANALYZE CREATE TEMP TABLE customers ON COMMIT DROP AS SELECT 1 AS id, 'x'::text AS email, 'x'::text AS ssn"],
  ])('%s: a masked read prepared in its shadow is refused, and runs masked once it is gone', async (_what, ddl) => {
    const wire = await wireOf(dbaToken);
    try {
      const select = serialize.parse({ name: 's6', text: 'SELECT id, email, ssn FROM customers ORDER BY id' });
      wire.send(serialize.parse({ text: ddl }), serialize.bind({}), serialize.execute({}), select, serialize.describe({ type: 'S', name: 's6' }), serialize.sync());
      // The catalog, another connection, cannot see the uncommitted temporary table the name now stands for.
      const shadowed = (await wire.until('Z')).find((m) => m.type === 'E');
      expect(shadowed && errorFields(shadowed.body).M).toContain('this session\'s open transaction changed tables or names');
      wire.send(select, serialize.sync());
      await wire.until('Z');
      wire.send(serialize.bind({ statement: 's6' }), serialize.execute({}), serialize.sync());
      const answer = await wire.until('Z');
      const rows = answer.filter((m) => m.type === 'D').map((m) => dataRowFields(m.body).map((f) => f?.toString()));
      expect(rows.length).toBeGreaterThan(0);
      expect(leakedSsns(bodies(answer))).toEqual([]);
      expect(rows.every((row) => row[2] === '[REDACTED]')).toBe(true);
    } finally {
      await wire.end();
    }
  });

  it('an error at the implicit commit of a Sync (a deferred constraint) is scrubbed like the statement\'s own', async () => {
    await direct.query('ALTER TABLE customers ADD CONSTRAINT ssn_unique UNIQUE (ssn) DEFERRABLE INITIALLY DEFERRED');
    const wire = await wireOf(dbaToken);
    try {
      wire.send(serialize.parse({ text: "UPDATE customers SET ssn = '219-09-9999' WHERE id = 1" }), serialize.bind({}), serialize.execute({}), serialize.sync());
      const answer = await wire.until('Z');
      const error = errorFields(answer.find((m) => m.type === 'E')!.body);
      expect(error.C).toBe('23505');
      expect(JSON.stringify(error)).not.toContain('219-09-9999');
    } finally {
      await wire.end();
      await direct.query('ALTER TABLE customers DROP CONSTRAINT ssn_unique');
    }
  });

  it.each([
    ['a Sync, after a statement that reads nothing', [serialize.parse({ text: 'SELECT 1' }), serialize.bind({}), serialize.execute({}), serialize.sync()]],
    ['a Query that ends the implicit transaction', [serialize.flush()], serialize.query('SELECT 1')],
  ] as const)('an error of a WITH HOLD cursor\'s query, raised at the commit under %s, is scrubbed', async (_when, batchEnd, query?) => {
    const wire = await wireOf(analystToken);
    try {
      wire.send(
        serialize.parse({ text: "DECLARE c8 CURSOR WITH HOLD FOR SELECT id FROM customers WHERE id = 2 AND (ssn || ' | ' || email)::int = 0" }),
        serialize.bind({}), serialize.execute({}), ...batchEnd,
      );
      if (query) {
        await wire.until('C');
        wire.send(query);
      }
      const answer = await wire.until('Z');
      const error = answer.find((m) => m.type === 'E');
      expect(error).toBeDefined();
      expect(leakedSsns(bodies(answer))).toEqual([]);
      expect(bodies(answer)).not.toContain('alan@example.org');
    } finally {
      await wire.end();
    }
  });

  it('a FETCH of a protocol portal is not run once the portal was closed and bound again over other columns', async () => {
    const wire = await wireOf(analystToken);
    try {
      wire.send(
        serialize.parse({ name: 'sc1', text: 'SELECT id, name FROM customers' }), serialize.bind({ statement: 'sc1', portal: 'cur9' }),
        serialize.parse({ name: 'sf9', text: 'FETCH ALL FROM cur9' }), serialize.bind({ statement: 'sf9', portal: 'pf9' }), serialize.describe({ type: 'P', name: 'pf9' }),
        serialize.close({ type: 'P', name: 'cur9' }),
        serialize.parse({ name: 'sc2', text: 'SELECT id, ssn, email FROM customers' }), serialize.bind({ statement: 'sc2', portal: 'cur9' }),
        serialize.execute({ portal: 'pf9' }), serialize.sync(),
      );
      const answer = await wire.until('Z');
      expect(leakedSsns(bodies(answer))).toEqual([]);
      expect(bodies(answer)).not.toContain('ada@example.com');
    } finally {
      await wire.end();
    }
  });

  it('a statement the server plans again against another table is masked by its new columns', async () => {
    const wire = await wireOf(dbaToken);
    try {
      wire.send(serialize.query('CREATE TEMP TABLE customers (id int, name text, email text, ssn text, phone text, notes text, created_at date)'));
      await wire.until('Z');
      wire.send(serialize.parse({ name: 'q', text: 'SELECT id, ssn FROM customers ORDER BY id' }), serialize.describe({ type: 'S', name: 'q' }), serialize.sync());
      await wire.until('Z');
      wire.send(serialize.query('DROP TABLE pg_temp.customers'));
      await wire.until('Z');
      wire.send(serialize.bind({ statement: 'q' }), serialize.execute({}), serialize.sync());
      const answer = await wire.until('Z');
      const rows = answer.filter((m) => m.type === 'D').map((m) => dataRowFields(m.body).map((f) => f?.toString()));
      expect(rows).toEqual([['1', '[REDACTED]'], ['2', '[REDACTED]'], ['3', '[REDACTED]']]);
    } finally {
      await wire.end();
    }
  });

  it('the stand-ins\' names are the gateway\'s: a client cannot bind or declare them', async () => {
    const wire = await wireOf(analystToken);
    try {
      wire.send(
        serialize.parse({ text: 'SELECT id, ssn, email FROM customers' }), serialize.bind({ portal: 'gatehouse: denied' }),
        serialize.execute({ portal: 'nope' }), serialize.sync(),
      );
      const answer = await wire.until('Z');
      expect(leakedSsns(bodies(answer))).toEqual([]);
      expect(answer.filter((m) => m.type === 'D')).toEqual([]);
      expect(errorFields(answer.find((m) => m.type === 'E')!.body).M).toContain('the portal name "gatehouse: denied" is the gateway\'s own');
    } finally {
      await wire.end();
    }
    expect((await outcome(analyst, 'DECLARE "gatehouse: denied" CURSOR WITH HOLD FOR SELECT ssn FROM customers')).error?.code).toBe('42501');
  });

  it('CLOSE and DECLARE, or DEALLOCATE and PREPARE, run through the extended protocol replace names too', async () => {
    const wire = await wireOf(analystToken);
    try {
      wire.send(
        serialize.parse({ name: 'c2', text: 'CLOSE p2' }),
        serialize.parse({ name: 'd2', text: 'DECLARE p2 CURSOR WITH HOLD FOR SELECT id, ssn, email FROM customers ORDER BY id' }),
        serialize.parse({ name: 's2', text: 'SELECT id FROM products' }),
        serialize.bind({ portal: 'p2', statement: 's2' }), serialize.describe({ type: 'P', name: 'p2' }),
        serialize.bind({ statement: 'c2' }), serialize.execute({}), serialize.bind({ statement: 'd2' }), serialize.execute({}),
        serialize.execute({ portal: 'p2' }), serialize.sync(),
      );
      const cursor = await wire.until('Z');
      expect(leakedSsns(bodies(cursor))).toEqual([]);
      expect(bodies(cursor)).not.toContain('ada@example.com');
      wire.send(
        serialize.parse({ name: 'x3', text: 'DEALLOCATE s3' }),
        serialize.parse({ name: 'y3', text: 'PREPARE s3 AS SELECT id, ssn, email FROM customers ORDER BY id' }),
        serialize.parse({ name: 's3', text: 'SELECT id FROM products' }), serialize.describe({ type: 'S', name: 's3' }),
        serialize.bind({ statement: 'x3' }), serialize.execute({}), serialize.bind({ statement: 'y3' }), serialize.execute({}),
        serialize.bind({ portal: 'q3', statement: 's3' }), serialize.execute({ portal: 'q3' }), serialize.sync(),
      );
      const prepared = await wire.until('Z');
      expect(leakedSsns(bodies(prepared))).toEqual([]);
      expect(bodies(prepared)).not.toContain('ada@example.com');
    } finally {
      await wire.end();
    }
  });

  it('a Sync sent during COPY FROM STDIN, which the server ignores, is owed no answer', async () => {
    const wire = await wireOf(dbaToken);
    try {
      wire.send(serialize.query('CREATE TEMP TABLE t4 (x text)'));
      await wire.until('Z');
      wire.send(serialize.query('COPY t4 FROM STDIN'), serialize.sync(), serialize.copyDone());
      expect((await wire.until('Z')).map((m) => m.type).join('')).toBe('GCZ');
      wire.send(serialize.query('SELECT id, ssn FROM customers ORDER BY id'));
      const answer = await wire.until('Z');
      expect(answer.filter((m) => m.type === 'D').map((m) => dataRowFields(m.body)[1]?.toString())).toEqual(['[REDACTED]', '[REDACTED]', '[REDACTED]']);
    } finally {
      await wire.end();
    }
  });

  it('two COPY … FROM STDIN in one query are refused: a Sync between them, which the server ignores, would put later rows out of step', async () => {
    const wire = await wireOf(dbaToken);
    try {
      wire.send(serialize.query('CREATE TEMP TABLE t6 (a text)'));
      await wire.until('Z');
      wire.send(serialize.query('COPY t6 FROM STDIN; COPY t6 FROM STDIN'));
      const refused = await wire.until('Z');
      expect(refused.map((m) => m.type).join('')).toBe('EZ');
      expect(errorFields(refused[0]!.body).M).toContain('send each COPY … FROM STDIN in a query of its own');
      // What the client would have sent into the two copies, with the Sync between them; then a read.
      wire.send(serialize.copyData(Buffer.from('x\n')), serialize.copyDone(), serialize.sync(), serialize.copyData(Buffer.from('y\n')), serialize.copyDone());
      expect((await wire.until('Z')).map((m) => m.type).join('')).toBe('Z');
      wire.send(serialize.query('SELECT id, email, ssn, phone FROM customers ORDER BY id'));
      const answer = await wire.until('Z');
      expect(leakedSsns(bodies(answer))).toEqual([]);
      expect(answer.filter((m) => m.type === 'D').map((m) => dataRowFields(m.body)[2]?.toString())).toEqual(['[REDACTED]', '[REDACTED]', '[REDACTED]']);
    } finally {
      await wire.end();
    }
  });

  it('a temporary table dropped by an Execute in the same batch: the statement is described again', async () => {
    const wire = await wireOf(dbaToken);
    try {
      wire.send(serialize.query("CREATE TEMP TABLE customers (id int, ssn text, email text); INSERT INTO pg_temp.customers VALUES (99, 'fake', 'fake')"));
      await wire.until('Z');
      wire.send(
        serialize.parse({ name: 's7', text: 'SELECT id, ssn FROM customers ORDER BY id' }),
        serialize.parse({ name: 'drop7', text: 'DROP TABLE pg_temp.customers' }), serialize.describe({ type: 'S', name: 's7' }), serialize.flush(),
      );
      await wire.until('T'); // the description names the temporary table
      wire.send(serialize.bind({ statement: 'drop7' }), serialize.execute({}), serialize.bind({ statement: 's7' }), serialize.execute({}), serialize.sync());
      const answer = await wire.until('Z');
      expect(answer.filter((m) => m.type === 'D').map((m) => dataRowFields(m.body)[1]?.toString())).toEqual(['[REDACTED]', '[REDACTED]', '[REDACTED]']);
    } finally {
      await wire.end();
    }
  });

  it('a Query the server skips after an error in the batch leaves the answers in step', async () => {
    const wire = await wireOf(analystToken);
    try {
      await outcome(analyst, 'SELECT 2'); // decided before, so the proxy answers for it at once
      // The Execute fails after a second of work; the Query behind it is ignored by the server until Sync.
      wire.send(
        serialize.parse({ text: 'SELECT count(*) FROM generate_series(1, 3000000) g WHERE 1 / (g - 3000000) > 0' }), serialize.bind({}), serialize.execute({}),
        serialize.query('SELECT 2'), serialize.sync(),
      );
      const batch = await wire.until('Z');
      expect(batch.map((m) => m.type).join('')).toBe('12EZ');
      wire.send(serialize.query('SELECT id, email, ssn FROM customers ORDER BY id'));
      const answer = await wire.until('Z');
      expect(answer.map((m) => m.type).join('')).toBe('TDDDCZ');
      expect(leakedSsns(bodies(answer))).toEqual([]);
      expect(bodies(answer)).not.toContain('ada@example.com');
    } finally {
      await wire.end();
    }
  });
});

// Ways around the masks found by probing the proxy with real SQL (each returned SSNs before).
describe('calls on whole rows, side channels and objects that outlive the statement', () => {
  beforeAll(async () => {
    await direct.query('CREATE TABLE IF NOT EXISTS scratch (id serial PRIMARY KEY, body text)');
    await direct.query('GRANT ALL ON scratch, scratch_id_seq TO gatehouse_orders');
  });

  async function refused(client: pg.Client, sql: string | pg.QueryConfig): Promise<Outcome> {
    const result = await outcome(client, sql);
    expect(result.error?.code, JSON.stringify(sql)).toBe('42501');
    expect(leakedSsns(result), JSON.stringify(sql)).toEqual([]);
    return result;
  }

  it('reads the table\'s columns as they are after the session\'s own DDL, never from what it cached before', async () => {
    // Where the gateway's role owns the table (a common deployment), a caller with DDL rights changes its columns.
    const { owner } = (await direct.query<{ owner: string }>("SELECT tableowner AS owner FROM pg_tables WHERE tablename = 'customers'")).rows[0]!;
    await direct.query('ALTER TABLE customers OWNER TO gatehouse_orders');
    try {
      await dba.query('ALTER TABLE customers ADD COLUMN row_to_json text');
      expect((await outcome(dba, 'SELECT c.row_to_json FROM customers c LIMIT 0')).error).toBeNull();
      await dba.query('ALTER TABLE customers DROP COLUMN row_to_json');
      // Now PostgreSQL reads c.row_to_json as row_to_json(c): the whole row, ssn and all.
      expect((await refused(dba, 'SELECT c.row_to_json FROM customers c')).error?.message).toContain('row_to_json is not a column of public.customers');

      // Uncommitted, a change is invisible to the catalog (another connection): masked reads wait for the commit.
      await dba.query('ALTER TABLE customers ADD COLUMN row_to_json text');
      await dba.query('BEGIN');
      try {
        await dba.query('ALTER TABLE customers DROP COLUMN row_to_json');
        expect((await refused(dba, 'SELECT c.row_to_json FROM customers c')).error?.message).toContain('this session\'s open transaction changed tables or names');
      } finally {
        await dba.query('ROLLBACK');
      }
      // Likewise a change earlier in the same message, which runs in the same implicit transaction.
      expect((await refused(dba, 'ALTER TABLE customers DROP COLUMN row_to_json; SELECT c.row_to_json FROM customers c')).error?.message)
        .toContain('ALTER earlier in this message');
      // A cursor or prepared statement changes no table: masked reads after one go on in the same transaction.
      await dba.query('BEGIN');
      try {
        await dba.query('DECLARE cust CURSOR FOR SELECT id, ssn FROM customers ORDER BY id');
        const { rows } = await dba.query('FETCH ALL FROM cust');
        expect(rows.map((r: { ssn: string }) => r.ssn)).toEqual(['[REDACTED]', '[REDACTED]', '[REDACTED]']);
      } finally {
        await dba.query('ROLLBACK');
      }
      await dba.query('ALTER TABLE customers DROP COLUMN row_to_json');
    } finally {
      await direct.query(`ALTER TABLE customers OWNER TO "${owner}"`);
      // Handing the table back drops the grants the gateway's roles held as its owner.
      await direct.query('GRANT ALL ON customers TO gatehouse_orders, gatehouse_md5');
    }
  });

  it.each([
    'SELECT c.row_to_json FROM customers c',
    'SELECT customers.to_jsonb FROM customers',
    'SELECT t.row_to_json FROM (SELECT ssn FROM customers) t',
    'SELECT x FROM customers c, LATERAL (SELECT c.row_to_json AS x) s',
    'SELECT c.row_to_json FROM customers c UNION ALL SELECT NULL',
    'SELECT upper(c.to_json::text) FROM customers c',
    'SELECT ssn.upper FROM customers',
    "SELECT ('SELECT ssn::tsvector FROM customers'::text).ts_stat",
  ])('a function called on a whole row, or on a column, by field notation: %s', async (sql) => {
    await refused(analyst, sql);
  });

  it('field notation through the extended protocol and a cursor', async () => {
    await refused(analyst, { text: 'SELECT c.row_to_json FROM customers c WHERE id = $1', values: [1] });
    await analyst.query('BEGIN');
    try {
      await refused(analyst, 'DECLARE cj CURSOR FOR SELECT c.to_jsonb FROM customers c');
    } finally {
      await analyst.query('ROLLBACK');
    }
  });

  it('columns of a subquery or CTE over one table with *, asked for by name, run', async () => {
    expect((await analyst.query('SELECT t.id, t.amount FROM (SELECT * FROM orders WHERE amount > 20) t ORDER BY t.id')).rows).toEqual([{ id: 10, amount: '42.50' }, { id: 12, amount: '99.99' }]);
    expect((await analyst.query('WITH big AS (SELECT * FROM customers) SELECT big.id, big.ssn FROM big WHERE big.id = 1')).rows).toEqual([{ id: 1, ssn: '[REDACTED]' }]);
    await refused(analyst, 'SELECT t.row_to_json FROM (SELECT * FROM customers) t');
  });

  it('qualified columns that are columns still run, masked', async () => {
    const { rows } = await analyst.query('SELECT c.id, c.ssn, o.id AS order_id FROM customers c JOIN orders o ON o.customer_id = c.id ORDER BY o.id LIMIT 1');
    expect(rows).toEqual([{ id: 1, ssn: '[REDACTED]', order_id: 10 }]);
    expect((await analyst.query('SELECT t.ssn FROM (SELECT ssn FROM customers) t LIMIT 1')).rows).toEqual([{ ssn: '[REDACTED]' }]);
  });

  it('a function denied to read-only callers is denied by field notation too', async () => {
    const result = await outcome(analyst, 'SELECT (1::bigint).pg_try_advisory_lock');
    expect(result.error?.message).toContain('function pg_try_advisory_lock is not allowed with read-only access');
  });

  it.each([
    'UPDATE customers SET name = name RETURNING customers',
    'UPDATE customers SET name = name RETURNING row_to_json(customers)',
    'UPDATE customers c SET name = c.name WHERE c.id = 2 RETURNING c.*::text',
    'WITH u AS (UPDATE customers SET name = name RETURNING *) SELECT u FROM u',
    "INSERT INTO customers (id, name, email, ssn) VALUES (1, 'x', 'x', 'x') ON CONFLICT (id) DO UPDATE SET name = customers.name RETURNING customers",
  ])('a write returning whole rows of the masked table: %s', async (sql) => {
    await refused(dba, sql);
  });

  it.each([
    'CREATE TEMP VIEW v AS SELECT id, ssn FROM customers',
    'CREATE TEMP VIEW customers AS SELECT * FROM public.customers',
    'CREATE RULE rr AS ON INSERT TO scratch DO ALSO SELECT id, ssn FROM customers',
    'INSERT INTO scratch (body) SELECT c.row_to_json FROM customers c',
  ])('an object that would show masked values later, under its own name: %s', async (sql) => {
    await refused(dba, sql);
    const shown = await outcome(dba, 'SELECT * FROM v');
    expect(shown.error?.code).toBe('42P01');
    expect((await dba.query('SELECT ssn FROM customers WHERE id = 1')).rows).toEqual([{ ssn: '[REDACTED]' }]);
    expect(leakedSsns((await direct.query('SELECT body FROM scratch')).rows)).toEqual([]);
  });

  it.each([
    "SELECT id FROM customers WHERE pg_notify('ch', ssn)::text = ''",
    "SELECT id FROM customers WHERE id = 1 AND set_config('gh.x', ssn, false) IS NOT NULL",
    "SELECT id FROM customers WHERE lo_from_bytea(424200 + id, convert_to(ssn, 'UTF8')) > 0",
    "SELECT id FROM customers WHERE setval('scratch_id_seq', replace(ssn, '-', '')::bigint) > 0",
    "SELECT id FROM customers WHERE pg_try_advisory_lock(replace(ssn, '-', '')::bigint)",
    "SELECT id FROM customers WHERE id = 1 AND lo_create(replace(ssn, '-', '')::oid) > 0",
    "SELECT id FROM customers WHERE (replace(ssn, '-', '')::bigint).pg_try_advisory_lock",
  ])('a call that carries a masked value out of the statement, wherever it sits: %s', async (sql) => {
    await refused(dba, sql);
  });

  it.each([
    "SELECT id FROM customers WHERE make_date(split_part(ssn, '-', 1)::int + 10000, split_part(ssn, '-', 2)::int, split_part(ssn, '-', 3)::int) IS NULL",
    "SELECT id FROM customers WHERE make_time(split_part(ssn, '-', 1)::int, split_part(ssn, '-', 2)::int, split_part(ssn, '-', 3)::float8) IS NULL",
    "SELECT id FROM customers WHERE lo_get(replace(ssn, '-', '')::oid) IS NULL",
    "SELECT id FROM customers WHERE id = 1 AND translate(ssn, '0123456789-', 'abcdefghij_')::regoper IS NULL",
    "SELECT id FROM customers WHERE id = 1 AND ('\"' || translate(ssn, '0123456789-', 'abcdefghij_') || '\"')::int > 0",
    // The value first, bare, in letters: no pattern tells it from the message's own words.
    "SELECT id FROM customers WHERE id = 1 AND to_ascii('x', translate(ssn, '0123456789-', 'abcdefghijx')) IS NULL",
  ])('an error that prints a value in any shape has its message withheld: %s', async (sql) => {
    const result = await outcome(dba, sql);
    expect(result.error?.code).toMatch(/^(22|42)/);
    expect(result.error?.message).toMatch(/^[a-z ]+ \(the database's message is withheld: it could quote a masked value\)$/);
    expect(result.error?.message).not.toMatch(/\d{4}|ahi_af_bbca|ahixafxbbca/);
  });

  it('an error\'s position, which a cast to regtype sets inside the value, is withheld', async () => {
    const result = await outcome(analyst, "SELECT id FROM customers WHERE id = 1 AND (repeat('a', ascii(substr(ssn, 1, 1))) || ' @')::regtype IS NULL");
    expect(result.error?.code).toBe('42601');
    expect(result.error?.position).toBeUndefined();
  });

  it('an error that prints an email reshaped by the query has it taken out', async () => {
    const result = await outcome(analyst, "SELECT id FROM customers WHERE id = 2 AND (replace(replace(email, '@', '_at_'), '.', '_dot_') || '(int4,int4)')::regoperator IS NULL");
    expect(result.error?.message).not.toContain('alan_at_example');
  });

  it.each([
    ['SET standard_conforming_strings = off', 'would make the server read SQL differently from the gateway'],
    ["SET client_encoding = 'SJIS'", 'would make the server read SQL differently from the gateway'],
    ['SET search_path = crm, public', 'would make unqualified names resolve where the masking checks do not look'],
    ["SELECT set_config('search_path', 'crm, public', false)", 'set_config can change search_path'],
    ["CREATE DOMAIN pg_temp.d6 AS text CHECK (set_config('gh.v', VALUE, false) IS NOT NULL)", 'DOMAIN runs code the gateway cannot inspect'],
    ['SET ROLE gatehouse_md5', 'SET role would make unqualified names resolve where the masking checks do not look'],
    ['SET SESSION AUTHORIZATION gatehouse_md5', 'would make unqualified names resolve where the masking checks do not look'],
    // Defaults of later sessions, whoever's: refused to every caller (the dba here has no mask on these).
    ['ALTER ROLE gatehouse_orders SET standard_conforming_strings = off', 'ALTER … SET standard_conforming_strings to anything but on'],
    ["ALTER DATABASE orders SET client_encoding = 'SJIS'", 'ALTER … SET client_encoding to anything but utf8'],
    ['ALTER ROLE gatehouse_orders IN DATABASE orders SET search_path = crm, public', 'ALTER … SET search_path would change where unqualified names resolve in later sessions'],
    ['ALTER ROLE ALL SET role = gatehouse_md5', 'ALTER … SET role would change where unqualified names resolve'],
  ])('what would change how the gateway reads SQL, or route values unseen, is refused: %s', async (sql, why) => {
    const result = await outcome(dba, sql);
    expect(result.error?.code).toBe('42501');
    expect(result.error?.message).toContain(why);
  });

  it('a session whose defaults (set outside the gateway) make the server read SQL differently is refused at login', async () => {
    await direct.query('ALTER ROLE gatehouse_orders SET standard_conforming_strings = off');
    try {
      const login = await stack.connectAgent('dora-defaults', ['dba']).catch((err: pg.DatabaseError) => err);
      expect(login).toBeInstanceOf(Error);
      expect((login as pg.DatabaseError).code).toBe('0A000');
      expect((login as pg.DatabaseError).message).toContain('gatehouse cannot serve orders-db: the server now has standard_conforming_strings = off');
    } finally {
      await direct.query('ALTER ROLE gatehouse_orders RESET standard_conforming_strings');
    }
  });

  it('a setting changed where the analyser cannot see ends the session', async () => {
    await direct.query(`CREATE FUNCTION flip() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM set_config('standard_conforming_strings', 'off', false); RETURN NEW; END $$;
      CREATE TRIGGER flip BEFORE INSERT ON scratch FOR EACH ROW EXECUTE FUNCTION flip()`);
    try {
      const { client } = await stack.connectAgent('dora-2', ['dba']);
      client.on('error', () => undefined); // the connection then closes
      const result = await outcome(client, "INSERT INTO scratch (body) VALUES ('flip')");
      expect(result.error).toMatchObject({ code: '0A000', message: "gatehouse ends the session: the server now has standard_conforming_strings = off, under which the gateway cannot read this session's SQL" });
      await client.end().catch(() => undefined);
    } finally {
      await direct.query('DROP TRIGGER flip ON scratch; DROP FUNCTION flip()');
    }
  });

  it('two CTEs of one name cannot pass a call on a whole row off as a column', async () => {
    await refused(analyst, 'WITH x AS (SELECT email, ssn FROM customers) SELECT x.row_to_json FROM (WITH x AS (SELECT 1 AS row_to_json) SELECT * FROM x) s, x');
  });
});

// Reads the analyser cannot follow to a table: the planner's statistics, and SQL in a string.
// A function written in SQL or PL/pgSQL reads what its body says, and returns it with no
// source table; a view that calls one shows it under the view's OID.
describe('code the database defines is not called by callers with masks', () => {
  let client: pg.Client;
  beforeAll(async () => {
    await direct.query(`
      CREATE FUNCTION all_customers() RETURNS SETOF customers LANGUAGE sql AS 'SELECT * FROM customers';
      CREATE FUNCTION customer_ssn(int) RETURNS text LANGUAGE plpgsql AS 'BEGIN RETURN (SELECT ssn FROM customers WHERE id = $1); END';
      CREATE FUNCTION "odd.name"() RETURNS text LANGUAGE sql AS 'SELECT ssn FROM customers LIMIT 1';
      CREATE VIEW customer_ids AS SELECT id, customer_ssn(id) AS tag FROM customers;
      CREATE VIEW customer_ids_again AS SELECT * FROM customer_ids;
      CREATE OPERATOR public.### (RIGHTARG = int, FUNCTION = customer_ssn);
      CREATE VIEW order_tags AS SELECT id, ### customer_id AS tag FROM orders;
      CREATE TYPE ssn_box AS (v text);
      CREATE FUNCTION ssn_box_of(int) RETURNS ssn_box LANGUAGE sql AS 'SELECT ROW(ssn)::ssn_box FROM customers WHERE id = $1';
      CREATE CAST (int AS ssn_box) WITH FUNCTION ssn_box_of(int);
      GRANT SELECT ON customer_ids, customer_ids_again, order_tags TO gatehouse_orders`);
    // A new session: a session learns the database's functions once.
    ({ client } = await stack.connectAgent('fred', ['analysts']));
  });
  afterAll(async () => {
    await client?.end();
    await direct.query(`DROP VIEW customer_ids_again, customer_ids, order_tags; DROP OPERATOR public.### (NONE, int); DROP CAST (int AS ssn_box);
      DROP FUNCTION all_customers(), customer_ssn(int), "odd.name"(), ssn_box_of(int); DROP TYPE ssn_box`);
  });

  it.each([
    ['SELECT * FROM all_customers()', 'function all_customers is defined in the database'],
    ['SELECT ssn FROM all_customers()', 'function all_customers is defined in the database'],
    ['SELECT customer_ssn(1)', 'function customer_ssn is defined in the database'],
    ['SELECT public.customer_ssn(id) FROM customers', 'function public.customer_ssn is defined in the database'],
    ['SELECT "odd.name"()', 'function odd.name is defined in the database'],
    ['SELECT * FROM customer_ids', 'view public.customer_ids calls a function defined in the database'],
    ['SELECT tag FROM customer_ids_again', 'view public.customer_ids_again calls a function defined in the database'],
    ['SELECT ### 1', 'operator ### runs a function defined in the database'],
    ['SELECT OPERATOR(public.###) 3', 'operator public.### runs a function defined in the database'],
    ['SELECT id, ### id FROM generate_series(1, 3) id', 'operator ### runs a function defined in the database'],
    ['SELECT * FROM order_tags', 'view public.order_tags calls a function defined in the database'],
    ['SELECT (2::ssn_box).v', 'a cast to ssn_box runs a function defined in the database'],
    ['SELECT (CAST(3 AS public.ssn_box)).v', 'a cast to public.ssn_box runs a function defined in the database'],
  ])('%s', async (sql, why) => {
    const result = await outcome(client, sql);
    expect(result.error?.code).toBe('42501');
    expect(result.error?.message).toContain(why);
    expect(leakedSsns(result)).toEqual([]);
  });

  it('what PostgreSQL itself defines still runs; the refused function does read the masked column', async () => {
    expect((await outcome(client, "SELECT upper(name), pg_catalog.length(name), to_char(created_at, 'YYYY') FROM customers WHERE id = 1")).error).toBeNull();
    const unproxied = await direct.query('SELECT customer_ssn(1) AS ssn');
    expect(leakedSsns(unproxied.rows)).toHaveLength(1);
  });
});

describe('reads masking cannot follow are refused', () => {
  it('pg_stats, whose histogram bounds list a small table\'s SSNs', async () => {
    await direct.query('ANALYZE customers');
    const sample = await direct.query("SELECT histogram_bounds::text AS h FROM pg_stats WHERE tablename = 'customers' AND attname = 'ssn'");
    expect(leakedSsns(sample.rows)).not.toEqual([]); // what the refusal keeps from the caller
    for (const sql of [
      "SELECT attname, histogram_bounds::text FROM pg_stats WHERE tablename = 'customers'",
      "SELECT most_common_vals::text FROM pg_catalog.pg_stats WHERE attname = 'ssn'",
      'SELECT * FROM pg_stats_ext',
    ]) {
      const result = await outcome(analyst, sql);
      expect(result.error?.code, sql).toBe('42501');
      expect(result.error?.message, sql).toMatch(/pg_stats(_ext)? holds sample values of table columns, masked ones included/);
      expect(leakedSsns(result)).toEqual([]);
    }
  });

  it('pg_stat_activity, which shows the SQL other sessions ran (every agent is the same database role)', async () => {
    await dba.query("SELECT id FROM customers WHERE ssn = '078-05-1120'");
    for (const sql of ['SELECT query FROM pg_stat_activity', 'SELECT pg_catalog.pg_stat_get_activity(NULL)', 'SELECT pg_stat_get_backend_activity(s) FROM pg_stat_get_backend_idset() s',
      // Red-team round 25: the database's name before the schema is the same function.
      'SELECT query FROM orders.pg_catalog.pg_stat_get_activity(NULL)', 'SELECT orders.pg_catalog.pg_stat_get_backend_activity(s) FROM pg_stat_get_backend_idset() s']) {
      const result = await outcome(analyst, sql);
      expect(result.error?.code, sql).toBe('42501');
      expect(result.error?.message).toContain('shows the SQL other sessions ran');
      expect(leakedSsns(result)).toEqual([]);
    }
  });

  it.each([
    "SELECT query_to_xml('SELECT ssn FROM customers', true, false, '')",
    "SELECT pg_catalog.table_to_xml('customers', true, false, '')",
    "SELECT ts_stat('SELECT to_tsvector(ssn) FROM customers')",
    "SELECT * FROM crosstab('SELECT ssn, ''c'', email FROM customers ORDER BY 1') AS t(a text, b text)",
    "SELECT * FROM public.connectby('customers', 'ssn', 'name', 'Ada Lovelace', 0) AS t(k text, p text, lvl int)",
  ])('a function that reads what a string names: %s', async (sql) => {
    // The dba has a write grant, so the read-only function list does not apply.
    const result = await outcome(dba, sql);
    expect(result.error?.code).toBe('42501');
    expect(result.error?.message).toMatch(/function [a-z_.]+ reads what a string names, which masking cannot follow/);
    expect(leakedSsns(result)).toEqual([]);
  });

  it('a cursor read back through cursor_to_xml', async () => {
    await dba.query('BEGIN');
    try {
      await dba.query('DECLARE c CURSOR FOR SELECT ssn FROM customers');
      const result = await outcome(dba, "SELECT cursor_to_xml('c', 10, true, false, '')");
      expect(result.error?.code).toBe('42501');
      expect(leakedSsns(result)).toEqual([]);
    } finally {
      await dba.query('ROLLBACK');
    }
  });
});

describe('the extended protocol and binary results are masked too', () => {
  it('a parameterised query (Parse/Bind/Describe/Execute) masks like a simple one', async () => {
    const result = await outcome(analyst, { text: 'SELECT id, email, ssn FROM customers WHERE id = $1', values: [1] });
    expect(result).toEqual({ rows: [{ id: 1, email: 'a***@example.com', ssn: '[REDACTED]' }], error: null });
  });

  it('binary-format results (node-postgres binary: true) of masked text columns are masked', async () => {
    const result = await outcome(analyst, { text: 'SELECT id, email, ssn FROM customers WHERE id >= $1 ORDER BY id', values: [1], binary: true } as pg.QueryConfig);
    expect(result.rows).toEqual([
      { id: 1, email: 'a***@example.com', ssn: '[REDACTED]' },
      { id: 2, email: 'a***@example.org', ssn: '[REDACTED]' },
      { id: 3, email: 'g***@example.net', ssn: '[REDACTED]' },
    ]);
  });

  it('a named prepared statement stays masked on every execution', async () => {
    for (const id of [1, 2, 1]) {
      const { rows } = await analyst.query({ name: 'ssn-by-id', text: 'SELECT ssn, email FROM customers WHERE id = $1', values: [id] });
      expect(rows).toHaveLength(1);
      expect(rows[0]!.ssn).toBe('[REDACTED]');
      expect(rows[0]!.email).toMatch(/^[ag]\*\*\*@example\.(com|org)$/);
    }
  });

  it('binary DataRows on the wire hold the masked bytes, with the lengths right', async () => {
    const wire = await PipelineClient.connect({ host: '127.0.0.1', port: stack.proxyPort, user: 'orders-db', database: 'orders', password: analystToken });
    try {
      // Parse, Bind asking binary results, Execute, Sync: the client does not Describe, so the proxy must.
      wire.send(
        serialize.parse({ text: 'SELECT id, ssn, email FROM customers WHERE id = $1' }),
        serialize.bind({ values: ['2'], binary: true }),
        serialize.execute(),
        serialize.sync(),
      );
      const messages = await wire.until('Z');
      expect(messages.map((m) => m.type)).toEqual(['1', '2', 'D', 'C', 'Z']);
      const [id, ssn, email] = dataRowFields(messages[2]!.body);
      expect(id!.readInt32BE(0)).toBe(2);
      expect(ssn).toEqual(Buffer.from('[REDACTED]'));
      expect(email).toEqual(Buffer.from('a***@example.org'));

      // With a Describe the client sees the binary format codes it asked for.
      wire.send(
        serialize.parse({ text: 'SELECT ssn FROM customers WHERE id = $1' }),
        serialize.bind({ values: ['3'], binary: true }),
        serialize.describe({ type: 'P', name: '' }),
        serialize.execute(),
        serialize.sync(),
      );
      const described = await wire.until('Z');
      expect(described.map((m) => m.type)).toEqual(['1', '2', 'T', 'D', 'C', 'Z']);
      expect(rowDescription(described[2]!.body).map((c) => c.format)).toEqual([1]);
      expect(dataRowFields(described[3]!.body)).toEqual([Buffer.from('[REDACTED]')]);
      expect(described.filter((m) => m.type === 'E').map((m) => errorFields(m.body))).toEqual([]);
    } finally {
      await wire.end();
    }
  });
});
