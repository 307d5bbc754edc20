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
import { serialize } from 'pg-protocol';
import { runCli } from '../helpers/cli.js';
import { outcome } from '../helpers/pg-outcome.js';
import { PipelineClient, dataRowFields, errorFields } from '../helpers/pg-pipeline.js';
import { startProxyStack, type ProxyStack } from '../helpers/pg-proxy.js';

let stack: ProxyStack;
let direct: pg.Client;

beforeAll(async () => {
  // A writer (who may PREPARE and EXECUTE, as readers may not) whose reads of orders-md5 are masked.
  stack = await startProxyStack({
    extraGrants: '  - name: md5-writers\n    groups: [md5-writers]\n    targets: [orders-md5]\n    access: write',
    extraMasks: '  orders-md5:\n    - column: public.customers.ssn\n      strategy: redact',
  });
  direct = await stack.direct();
}, 120_000);

afterAll(async () => {
  await direct?.end();
  await stack?.stop();
});

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
    // A plan compiled just before, so that it is not past catalog_cache_ms (and compiled afresh) at the next read.
    await client.query('SELECT id, ssn FROM customers WHERE id = 1');
    await direct.query("ALTER TABLE customers ADD COLUMN tier text NOT NULL DEFAULT 'gold'");
    expect((await client.query('SELECT id, tier FROM customers WHERE id = 1')).rows).toEqual([{ id: 1, tier: '[REDACTED]' }]);
    expect((await client.query('SELECT id, tier FROM customers WHERE id = 1')).rows).toEqual([{ id: 1, tier: 'gold' }]);
  });
});

describe('code and views defined by another connection while a session is open', () => {
  let client: pg.Client;
  beforeAll(async () => {
    ({ client } = await stack.connectAgent('olga', ['analysts']));
    // The session asks the catalog about defined code, the view and the table before they read ssn.
    await direct.query(`CREATE VIEW contact_names AS SELECT id, name FROM customers;
      CREATE TABLE customers_staging (id int, name text, email text, ssn text, phone text, notes text, created_at date);
      GRANT SELECT ON contact_names, customers_staging TO gatehouse_orders`);
    expect((await client.query('SELECT id, name FROM contact_names WHERE id = 1')).rows).toEqual([{ id: 1, name: 'Ada Lovelace' }]);
    expect((await client.query('SELECT count(*)::int AS n FROM customers_staging')).rows).toEqual([{ n: 0 }]);
    expect((await client.query('SELECT id, ssn FROM customers WHERE id = 1')).rows).toEqual([{ id: 1, ssn: '[REDACTED]' }]);
  });
  afterAll(async () => {
    await client?.end();
    await direct.query('DROP VIEW IF EXISTS contact_names, not_yet_there; DROP FUNCTION IF EXISTS all_ssns(); DROP TABLE IF EXISTS customers_staging');
  });

  it('a view asked about before it existed is looked up again once it does', async () => {
    expect((await outcome(client, 'SELECT * FROM not_yet_there')).error?.code).toBe('42P01');
    await direct.query('CREATE VIEW not_yet_there AS SELECT id, ssn FROM customers; GRANT SELECT ON not_yet_there TO gatehouse_orders');
    const result = await outcome(client, 'SELECT * FROM not_yet_there');
    expect(result.error?.code).toBe('42501');
    expect(JSON.stringify(result)).not.toMatch(/\d{3}-\d{2}-\d{4}/);
  });

  it('a function defined, a view replaced and a table made again are seen once the catalog cache has passed', async () => {
    await direct.query(`CREATE FUNCTION all_ssns() RETURNS SETOF text LANGUAGE sql AS $$ SELECT ssn FROM customers $$;
      CREATE OR REPLACE VIEW contact_names AS SELECT id, ssn AS name FROM customers;
      DROP TABLE customers_staging; CREATE TABLE customers_staging () INHERITS (customers);
      INSERT INTO customers_staging SELECT * FROM ONLY customers; GRANT SELECT ON customers_staging TO gatehouse_orders`);
    // catalog_cache_ms (2 s by default): how long a session trusts what the catalog said.
    await new Promise((resolve) => setTimeout(resolve, 2100));
    for (const sql of ['SELECT * FROM all_ssns()', 'SELECT id, name FROM contact_names', 'SELECT id, ssn FROM customers_staging']) {
      const result = await outcome(client, sql);
      expect(JSON.stringify(result), sql).not.toMatch(/\d{3}-\d{2}-\d{4}/);
    }
    expect((await client.query('SELECT id, ssn FROM customers_staging WHERE id = 1')).rows).toEqual([{ id: 1, ssn: '[REDACTED]' }]);
  });
});

/** How long a session trusts the catalog (catalog_cache_ms, 2 s by default), and a little more. */
const pastCatalogCache = () => new Promise((resolve) => setTimeout(resolve, 2100));

// The server plans a prepared statement again after DDL: what it returns at a later Bind is what the
// catalog says now, not what it said at the Parse.
describe('statements prepared before another connection changes the schema', () => {
  let client: pg.Client;
  beforeAll(async () => {
    ({ client } = await stack.connectAgent('quinn', ['analysts']));
    await direct.query('CREATE VIEW directory AS SELECT id, name FROM customers; GRANT SELECT ON directory TO gatehouse_orders');
  });
  afterAll(async () => {
    await client?.end();
    await direct.query('DROP VIEW IF EXISTS directory');
  });

  it('a view replaced to read ssn is refused at the next Bind once the catalog cache has passed', async () => {
    const query = { name: 'directory_entry', text: 'SELECT id, name FROM directory WHERE id = 1' };
    expect((await outcome(client, query)).rows).toEqual([{ id: 1, name: 'Ada Lovelace' }]);
    await direct.query('CREATE OR REPLACE VIEW directory AS SELECT id, ssn AS name FROM customers');
    await pastCatalogCache();
    const result = await outcome(client, query);
    expect(result.error?.code).toBe('42501');
    expect(result.error?.message).toContain('view public.directory reads masked column');
    expect(JSON.stringify(result)).not.toMatch(/\d{3}-\d{2}-\d{4}/);
    // It reads ssn now, which the next test drops.
    await direct.query('DROP VIEW directory');
  });

  it('a view replaced to read ssn is refused at SQL EXECUTE of a statement prepared over it, as at a Bind', async () => {
    await direct.query('CREATE VIEW labels AS SELECT id, name AS label FROM customers; GRANT SELECT ON labels TO gatehouse_md5');
    const { client: writer } = await stack.connectAgent('wes', ['md5-writers'], 'orders-md5');
    try {
      await writer.query('PREPARE by_sql AS SELECT id, label FROM labels WHERE id = 1');
      await writer.query({ name: 'by_parse', text: 'SELECT id, label FROM labels WHERE id = 1' });
      for (const name of ['by_sql', 'by_parse']) expect((await outcome(writer, `EXECUTE ${name}`)).rows, name).toEqual([{ id: 1, label: 'Ada Lovelace' }]);
      await direct.query('CREATE OR REPLACE VIEW labels AS SELECT id, ssn AS label FROM customers');
      await pastCatalogCache();
      for (const name of ['by_sql', 'by_parse']) {
        const result = await outcome(writer, `EXECUTE ${name}`);
        expect(result.error?.code, name).toBe('42501');
        expect(result.error?.message, name).toContain('view public.labels reads masked column');
        expect(JSON.stringify(result), name).not.toMatch(/\d{3}-\d{2}-\d{4}/);
      }
      // Prepared and executed in one query, it is checked as it is sent.
      const together = await outcome(writer, 'PREPARE again AS SELECT id, label FROM labels; EXECUTE again');
      expect(together.error?.code).toBe('42501');
      // A PREPARE of the name after the EXECUTE in the same query does not stand for what the EXECUTE runs (round 22).
      const after = await outcome(writer, 'EXECUTE by_sql; DEALLOCATE by_sql; PREPARE by_sql AS SELECT 1');
      expect(after.error?.code).toBe('42501');
      expect(JSON.stringify(after)).not.toMatch(/\d{3}-\d{2}-\d{4}/);
    } finally {
      await writer.end();
      await direct.query('DROP VIEW labels');
    }
  });

  // Round 22: the relay holds what was sent, the server what ran. SQL EXECUTE is checked against everything the
  // name may stand for on the server.
  it('a statement the relay let go of, or a Parse the server refuses, does not hide what EXECUTE runs', async () => {
    await direct.query('CREATE VIEW labels2 AS SELECT id, name AS label FROM customers; GRANT SELECT ON labels2 TO gatehouse_md5');
    const wire = await PipelineClient.connect({ host: '127.0.0.1', port: stack.proxyPort, user: 'orders-md5', database: 'orders', password: stack.token('wyatt', ['md5-writers']) });
    const ssns = (messages: { type: string; body: Buffer }[]) => messages.filter((m) => m.type === 'D').map((m) => dataRowFields(m.body).map((f) => f?.toString('utf8')).join(',')).filter((row) => /\d{3}-\d{2}-\d{4}/.test(row));
    const query = async (sql: string) => {
      wire.send(serialize.query(sql));
      return wire.until('Z');
    };
    try {
      // Prepared through the protocol, then a DEALLOCATE the server never runs (the query fails before it).
      wire.send(serialize.parse({ name: 'pp', text: 'SELECT id, label FROM labels2 WHERE id = 1' }), serialize.sync());
      await wire.until('Z');
      await query('SELECT 1/0; DEALLOCATE pp');
      // Prepared with SQL, then a pipelined Parse of its name, which the server refuses (42P05).
      await query('PREPARE sq AS SELECT id, label FROM labels2 WHERE id = 1');
      await direct.query('CREATE OR REPLACE VIEW labels2 AS SELECT id, ssn AS label FROM customers');
      await pastCatalogCache();
      const executedPp = await query('EXECUTE pp');
      expect(executedPp.map((m) => m.type)).toContain('E');
      expect(ssns(executedPp)).toEqual([]);
      wire.send(serialize.parse({ name: 'sq', text: 'SELECT 1' }), serialize.sync(), serialize.query('EXECUTE sq'));
      const answers = [...(await wire.until('Z')), ...(await wire.until('Z'))];
      expect(answers.filter((m) => m.type === 'E').map((m) => errorFields(m.body).C)).toEqual(['42P05', '42501']);
      expect(ssns(answers)).toEqual([]);
    } finally {
      await wire.end();
      await direct.query('DROP VIEW labels2');
    }
  });

  it('a notification\'s payload is withheld from a caller whose statements are masked', async () => {
    const { client: analyst } = await stack.connectAgent('nia', ['analysts']);
    try {
      const received = new Promise<pg.Notification>((resolve) => analyst.on('notification', resolve));
      await analyst.query('LISTEN customer_changes');
      await direct.query("SELECT pg_notify('customer_changes', row_to_json(c)::text) FROM customers c WHERE id = 1");
      const notification = await received;
      expect(notification.channel).toBe('customer_changes');
      expect(notification.payload).toBe('[withheld by gatehouse: a notification can carry a masked value]');
    } finally {
      await analyst.end();
    }
  });

  it('a statement described before its masked column was replaced is masked by the column the server returns now', async () => {
    const wire = await PipelineClient.connect({ host: '127.0.0.1', port: stack.proxyPort, user: 'orders-db', database: 'orders', password: stack.token('ruth', ['analysts']) });
    const ssnOfFirst = async () => {
      wire.send(serialize.bind({ statement: 'ssn_of' }), serialize.execute({}), serialize.sync());
      const rows = (await wire.until('Z')).filter((m) => m.type === 'D').map((m) => dataRowFields(m.body).map((f) => f?.toString('utf8')));
      return rows;
    };
    try {
      // Its columns known from Describe S: a Bind masks by them without asking the server again.
      wire.send(serialize.parse({ name: 'ssn_of', text: 'SELECT id, ssn FROM customers WHERE id = 1' }), serialize.describe({ type: 'S', name: 'ssn_of' }), serialize.sync());
      await wire.until('Z');
      expect(await ssnOfFirst()).toEqual([['1', '[REDACTED]']]);
      await direct.query(`ALTER TABLE customers ADD COLUMN ssn_next text; UPDATE customers SET ssn_next = ssn;
        ALTER TABLE customers DROP COLUMN ssn; ALTER TABLE customers RENAME COLUMN ssn_next TO ssn`);
      expect(await ssnOfFirst()).toEqual([['1', '[REDACTED]']]);
      await pastCatalogCache();
      expect(await ssnOfFirst()).toEqual([['1', '[REDACTED]']]);
    } finally {
      await wire.end();
    }
  });
});

describe('rows under table OIDs and attribute numbers the catalog no longer shows, or did not yet', () => {
  let client: pg.Client;
  beforeAll(async () => {
    ({ client } = await stack.connectAgent('sam', ['analysts']));
  });
  afterAll(async () => {
    await client?.end();
  });

  it('a cursor held from before its table was made again still returns its rows masked', async () => {
    await client.query('BEGIN');
    await client.query('DECLARE held CURSOR WITH HOLD FOR SELECT id, ssn FROM customers ORDER BY id');
    await client.query('COMMIT');
    expect((await client.query('FETCH 1 FROM held')).rows).toEqual([{ id: 1, ssn: '[REDACTED]' }]);
    // The held rows keep the OID and attribute numbers of then; customers is made again under a new OID.
    await direct.query(`ALTER TABLE customers RENAME TO customers_before;
      CREATE TABLE customers AS SELECT * FROM customers_before;
      GRANT SELECT ON customers TO gatehouse_orders`);
    try {
      await pastCatalogCache();
      expect((await client.query('SELECT id, ssn FROM customers WHERE id = 1')).rows).toEqual([{ id: 1, ssn: '[REDACTED]' }]);
      const fetched = await outcome(client, 'FETCH 1 FROM held');
      expect(fetched).toEqual({ rows: [{ id: 2, ssn: '[REDACTED]' }], error: null });
    } finally {
      await client.query('CLOSE held');
      await direct.query('DROP TABLE customers; ALTER TABLE customers_before RENAME TO customers');
      await pastCatalogCache();
    }
  });

  it('a masked table made the child of a new parent is masked when the parent is read', async () => {
    await direct.query(`CREATE TABLE people (id int, ssn text); ALTER TABLE customers INHERIT people;
      GRANT SELECT ON people TO gatehouse_orders`);
    const fresh = await stack.connectAgent('tom', ['analysts']);
    try {
      for (const session of [fresh.client, client]) {
        if (session === client) await pastCatalogCache();
        const result = await outcome(session, 'SELECT id, ssn FROM people ORDER BY id LIMIT 2');
        expect(result).toEqual({ rows: [{ id: 1, ssn: '[REDACTED]' }, { id: 2, ssn: '[REDACTED]' }], error: null });
      }
    } finally {
      await fresh.client.end();
      await direct.query('ALTER TABLE customers NO INHERIT people; DROP TABLE people');
    }
  });
});

// The analyser reads an unqualified name as public.name. Defaults made outside the gateway must not
// make the server read it as another schema's: sessions start with search_path = public.
describe('a search_path default that would resolve names outside public', () => {
  afterAll(async () => {
    await direct.query('ALTER DATABASE orders RESET search_path');
    await direct.query('DROP SCHEMA reporting CASCADE; DROP SCHEMA gatehouse_orders CASCADE');
  });

  it('the database\'s default and a schema named after the gateway\'s role are not searched', async () => {
    for (const schema of ['reporting', 'gatehouse_orders']) {
      await direct.query(`CREATE SCHEMA ${schema}; CREATE VIEW ${schema}.customers AS SELECT * FROM public.customers;
        GRANT USAGE ON SCHEMA ${schema} TO gatehouse_orders; GRANT SELECT ON ${schema}.customers TO gatehouse_orders`);
    }
    await direct.query('ALTER DATABASE orders SET search_path = reporting, "$user", public');
    const { client } = await stack.connectAgent('pia', ['analysts']);
    try {
      const result = await outcome(client, 'SELECT id, ssn FROM customers WHERE id = 1');
      expect(result).toEqual({ rows: [{ id: 1, ssn: '[REDACTED]' }], error: null });
      expect((await client.query('SHOW search_path')).rows).toEqual([{ search_path: 'public' }]);
    } finally {
      await client.end();
    }
  });
});

// pg_depend records a view's column references, and drops its reference to a whole row when it has
// both: a view returning to_jsonb(c) looks, there, as if it read c.id alone.
describe('views that return whole rows of a masked table', () => {
  afterAll(async () => {
    await direct.query('DROP VIEW IF EXISTS customer_docs, docs_again; DROP MATERIALIZED VIEW IF EXISTS customer_lines');
  });

  it('are refused, also materialized and nested', async () => {
    await direct.query(`CREATE VIEW customer_docs AS SELECT c.id, to_jsonb(c) AS doc FROM customers c;
      CREATE VIEW docs_again AS SELECT id, doc FROM customer_docs;
      CREATE MATERIALIZED VIEW customer_lines AS SELECT c::text AS line FROM customers c;
      GRANT SELECT ON customer_docs, docs_again, customer_lines TO gatehouse_orders`);
    const { client } = await stack.connectAgent('uma', ['analysts']);
    try {
      for (const sql of ['SELECT id, doc FROM customer_docs', 'SELECT * FROM docs_again', 'SELECT line FROM customer_lines']) {
        const result = await outcome(client, sql);
        expect(result.error?.code, sql).toBe('42501');
        expect(result.error?.message, sql).toContain('an expression over a whole row of customers would return masked columns unmasked');
        expect(JSON.stringify(result), sql).not.toMatch(/\d{3}-\d{2}-\d{4}/);
      }
      // A view over the table's unmasked columns still reads.
      await direct.query('CREATE VIEW names_only AS SELECT id, name FROM customers; GRANT SELECT ON names_only TO gatehouse_orders');
      expect((await client.query('SELECT name FROM names_only WHERE id = 1')).rows).toEqual([{ name: 'Ada Lovelace' }]);
    } finally {
      await client.end();
      await direct.query('DROP VIEW IF EXISTS names_only');
    }
  });
});

// What a view or a renamed built-in would do is refused as the statement it hides would be.
describe('reads no mask can follow, hidden in views and in built-ins under other names', () => {
  afterAll(async () => {
    await direct.query(`DROP VIEW IF EXISTS xml_dump, column_stats, information_schema.customer_docs;
      DROP FUNCTION IF EXISTS report_xml(text, boolean, boolean, text); DROP FUNCTION IF EXISTS apply_setting(text, text, boolean)`);
  });

  it('a view over pg_stats or query_to_xml, and a whole-row view in information_schema, are refused', async () => {
    await direct.query(`ANALYZE customers;
      CREATE VIEW xml_dump AS SELECT query_to_xml('select id, ssn from customers', true, false, '') AS x;
      CREATE VIEW column_stats AS SELECT attname, histogram_bounds::text AS hb FROM pg_catalog.pg_stats WHERE schemaname = 'public';
      CREATE VIEW information_schema.customer_docs AS SELECT c.id, to_jsonb(c) AS doc FROM public.customers c;
      GRANT SELECT ON xml_dump, column_stats, information_schema.customer_docs TO gatehouse_orders`);
    const { client } = await stack.connectAgent('vera', ['analysts']);
    try {
      for (const [sql, why] of [
        ['SELECT * FROM xml_dump', 'function query_to_xml reads what a string names'],
        ['SELECT * FROM column_stats', 'pg_stats holds sample values of table columns'],
        ['SELECT * FROM information_schema.customer_docs', 'an expression over a whole row of customers'],
      ] as const) {
        const result = await outcome(client, sql);
        expect(result.error?.code, sql).toBe('42501');
        expect(result.error?.message, sql).toContain(why);
        expect(JSON.stringify(result), sql).not.toMatch(/\d{3}-\d{2}-\d{4}/);
      }
      // PostgreSQL's own views still read.
      expect((await client.query("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = 'customers'")).rows).toEqual([{ n: 1 }]);
    } finally {
      await client.end();
    }
  });

  it('an internal-language alias of a built-in is code the database defines', async () => {
    await direct.query(`CREATE FUNCTION report_xml(text, boolean, boolean, text) RETURNS xml LANGUAGE internal STABLE STRICT AS 'query_to_xml';
      CREATE FUNCTION apply_setting(text, text, boolean) RETURNS text LANGUAGE internal VOLATILE AS 'set_config_by_name'`);
    const { client } = await stack.connectAgent('wes', ['analysts']);
    try {
      for (const sql of ["SELECT report_xml('select id, ssn from customers', true, false, '') AS x", "SELECT apply_setting('search_path', 'pg_temp, public', false)"]) {
        const result = await outcome(client, sql);
        expect(result.error?.code, sql).toBe('42501');
        expect(result.error?.message, sql).toMatch(/function (report_xml|apply_setting) is defined in the database/);
        expect(JSON.stringify(result), sql).not.toMatch(/\d{3}-\d{2}-\d{4}/);
      }
      expect((await client.query('SHOW search_path')).rows).toEqual([{ search_path: 'public' }]);
    } finally {
      await client.end();
    }
  });
});

describe('a masked column renamed and a new one given its name, while a session is open', () => {
  it('the renamed column stays masked in the session, in expressions and COPY too', async () => {
    const { client } = await stack.connectAgent('xena', ['analysts']);
    try {
      expect((await client.query('SELECT ssn FROM customers WHERE id = 1')).rows).toEqual([{ ssn: '[REDACTED]' }]);
      await direct.query('ALTER TABLE customers RENAME COLUMN ssn TO ssn_legacy; ALTER TABLE customers ADD COLUMN ssn text');
      await pastCatalogCache();
      expect((await client.query('SELECT ssn_legacy FROM customers WHERE id = 1')).rows).toEqual([{ ssn_legacy: '[REDACTED]' }]);
      for (const sql of ['SELECT upper(ssn_legacy) FROM customers WHERE id = 1', 'COPY (SELECT id, ssn_legacy FROM customers) TO STDOUT']) {
        const result = await outcome(client, sql);
        expect(result.error?.code, sql).toBe('42501');
        expect(JSON.stringify(result), sql).not.toMatch(/\d{3}-\d{2}-\d{4}/);
      }
    } finally {
      await client.end();
      await direct.query('ALTER TABLE customers DROP COLUMN ssn; ALTER TABLE customers RENAME COLUMN ssn_legacy TO ssn');
    }
  });
});

describe('a masked column or table moved under another name, seen by sessions opened afterwards', () => {
  /** What a session opened now reads of the moved column: it must be masked, and refused in expressions and COPY. */
  async function expectStillMasked(sub: string, table: string, column: string): Promise<void> {
    const { client } = await stack.connectAgent(sub, ['analysts']);
    try {
      expect((await client.query(`SELECT ${column} FROM ${table} WHERE id = 1`)).rows).toEqual([{ [column]: '[REDACTED]' }]);
      for (const sql of [`SELECT upper(${column}) FROM ${table} WHERE id = 1`, `COPY (SELECT id, ${column} FROM ${table}) TO STDOUT`, `SELECT row_to_json(t) FROM ${table} t`]) {
        const result = await outcome(client, sql);
        expect(result.error?.code, sql).toBe('42501');
        expect(JSON.stringify(result), sql).not.toMatch(/\d{3}-\d{2}-\d{4}/);
      }
    } finally {
      await client.end();
    }
  }

  /** A session reads the masked column, so the gateway has found where it is. */
  async function readSsn(sub: string): Promise<void> {
    const { client } = await stack.connectAgent(sub, ['analysts']);
    expect((await client.query('SELECT ssn FROM customers WHERE id = 1')).rows).toEqual([{ ssn: '[REDACTED]' }]);
    await client.end();
  }

  it('a column renamed and a new one given its name', async () => {
    await readSsn('zoe');
    await direct.query('ALTER TABLE customers RENAME COLUMN ssn TO ssn_legacy; ALTER TABLE customers ADD COLUMN ssn text');
    try {
      await expectStillMasked('zack', 'customers', 'ssn_legacy');
    } finally {
      await direct.query('ALTER TABLE customers DROP COLUMN ssn; ALTER TABLE customers RENAME COLUMN ssn_legacy TO ssn');
    }
  });

  it('a table renamed away and a new one made under its name', async () => {
    await readSsn('abe');
    await direct.query(`ALTER TABLE customers RENAME TO customers_old;
      CREATE TABLE customers (LIKE customers_old); GRANT SELECT ON customers TO gatehouse_orders`);
    try {
      await expectStillMasked('bea', 'customers_old', 'ssn');
    } finally {
      await direct.query('DROP TABLE customers; ALTER TABLE customers_old RENAME TO customers');
    }
  });

  it('a table renamed away, then given a child or made the child of a new parent', async () => {
    await readSsn('eve');
    await direct.query(`ALTER TABLE customers RENAME TO customers_old;
      CREATE TABLE customers (LIKE customers_old INCLUDING ALL); GRANT SELECT ON customers TO gatehouse_orders`);
    const { client } = await stack.connectAgent('fay', ['analysts']);
    try {
      expect((await client.query('SELECT ssn FROM customers_old WHERE id = 1')).rows).toEqual([{ ssn: '[REDACTED]' }]);
      // Its new child is seen at once: the session knows the table the column moved to.
      await direct.query(`CREATE TABLE old_child () INHERITS (customers_old);
        INSERT INTO old_child (id, name, email, ssn) VALUES (9, 'Nine', 'nine@example.com', '999-88-7777');
        GRANT SELECT ON old_child TO gatehouse_orders`);
      expect((await client.query('SELECT id, ssn FROM old_child')).rows).toEqual([{ id: 9, ssn: '[REDACTED]' }]);
      // A new parent, as when the rule's own table is made a child: once the catalog cache has passed.
      await direct.query(`CREATE TABLE people (id int, ssn text); GRANT SELECT ON people TO gatehouse_orders;
        ALTER TABLE customers_old INHERIT people`);
      await pastCatalogCache();
      const parent = await outcome(client, 'SELECT id, ssn AS x FROM people ORDER BY id');
      expect(JSON.stringify(parent)).not.toMatch(/\d{3}-\d{2}-\d{4}/);
      expect(parent.rows?.[0]).toEqual({ id: 1, x: '[REDACTED]' });
    } finally {
      await client.end();
      await direct.query('DROP TABLE old_child; ALTER TABLE customers_old NO INHERIT people; DROP TABLE people; DROP TABLE customers; ALTER TABLE customers_old RENAME TO customers');
    }
  });

  it('after the gateway restarts, with the column renamed while it was down', async () => {
    await readSsn('cal');
    await stack.restart(async () => {
      await direct.query('ALTER TABLE customers RENAME COLUMN ssn TO ssn_legacy; ALTER TABLE customers ADD COLUMN ssn text');
    });
    try {
      await expectStillMasked('dee', 'customers', 'ssn_legacy');
    } finally {
      await direct.query('ALTER TABLE customers DROP COLUMN ssn; ALTER TABLE customers RENAME COLUMN ssn_legacy TO ssn');
    }
  });
});

describe('the catalog unreachable when a prepared statement is checked again', () => {
  it('the Bind is denied and audited, and the session goes on', async () => {
    const { client } = await stack.connectAgent('yuri', ['analysts']);
    const query = { name: 'one_ssn', text: 'SELECT id, ssn FROM customers WHERE id = 1' };
    try {
      expect((await outcome(client, query)).rows).toEqual([{ id: 1, ssn: '[REDACTED]' }]);
      // The gateway's catalog connections are cut and cannot come back; the session's own stays.
      await direct.query('ALTER ROLE gatehouse_orders NOLOGIN');
      await direct.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'gatehouse-catalog'");
      await pastCatalogCache();
      const result = await outcome(client, query);
      expect(result.error?.code).toBe('42501');
      expect(result.error?.message).toContain('the gateway could not prepare to enforce the decision');
      const exported = runCli(['audit', 'export', '-c', stack.config]);
      expect(exported.stdout).toContain('the gateway could not prepare to enforce the decision');
    } finally {
      await direct.query('ALTER ROLE gatehouse_orders LOGIN');
    }
    await pastCatalogCache();
    expect((await outcome(client, query)).rows).toEqual([{ id: 1, ssn: '[REDACTED]' }]);
    await client.end();
  });
});
