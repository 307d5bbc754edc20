/**
 * A policy bundle replaced while sessions are open (hot reload): what a
 * session prepared before is decided again under the new policy at its
 * next Bind, so a mask added or a grant taken away applies to statements
 * drivers keep for the life of a connection too. Real PostgreSQL,
 * node-postgres and `gatehouse serve` watching its bundle file.
 */
import { join } from 'node:path';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import Cursor from 'pg-cursor';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBundle, policiesWithData } from '../helpers/gateway-bundle.js';
import { outcome } from '../helpers/pg-outcome.js';
import { errorFields, PipelineClient } from '../helpers/pg-pipeline.js';
import { startProxyStack, type ProxyStack } from '../helpers/pg-proxy.js';
import { waitFor } from '../helpers/wait.js';

let stack: ProxyStack;

beforeAll(async () => {
  stack = await startProxyStack();
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

/** Rebuilds the gateway's bundle with data.yaml edited, and waits until a fresh session decides under it. */
async function reload(revision: string, edit: (data: string) => string, loaded: (client: pg.Client) => Promise<boolean>): Promise<void> {
  const policies = policiesWithData(join(stack.dir, revision), edit);
  makeBundle({ out: join(stack.dir, 'bundle.tar.gz'), revision, policySrc: policies });
  await waitFor(async () => {
    const { client } = await stack.connectAgent('probe', ['analysts']).catch(() => ({ client: null }));
    if (!client) return false;
    try {
      return await loaded(client);
    } finally {
      await client.end();
    }
  }, `bundle ${revision} to be loaded`);
}

/** Back to the project's policy as it is. */
const restore = (revision: string) => reload(revision, (data) => data, async (probe) => (await probe.query('SELECT name FROM customers WHERE id = 1')).rows[0]?.name === 'Ada Lovelace');

const maskName = (data: string) => data.replace(/^masks:\n {2}orders-db:\n/m, 'masks:\n  orders-db:\n    - column: public.customers.name\n      strategy: redact\n');

/** Reloads with customers.name masked, and waits until a fresh session reads it so. */
const maskNames = (revision: string) =>
  reload(revision, maskName, async (probe) => (await probe.query('SELECT name FROM customers WHERE id = 1')).rows[0]?.name === '[REDACTED]');

/** An analyst on orders-db, speaking the protocol message by message (pipelining what node-postgres would not). */
const analystOnTheWire = (sub: string) =>
  PipelineClient.connect({ host: '127.0.0.1', port: stack.proxyPort, user: 'orders-db', database: 'orders', password: stack.token(sub, ['analysts']) });

const NAMES = { name: 'names', text: 'SELECT id, name FROM customers WHERE id = 1' };

describe('a statement prepared before the policy changed', () => {
  it('a cursor declared in SQL is refused to a masked caller after a reload, and is decided under the new policy made again', async () => {
    const { client } = await stack.connectAgent('sol', ['analysts']);
    try {
      await client.query('BEGIN');
      await client.query('DECLARE k CURSOR WITH HOLD FOR SELECT id, upper(name) AS n FROM customers ORDER BY id');
      await client.query('COMMIT');
      expect((await client.query('FETCH 1 FROM k')).rows).toEqual([{ id: 1, n: 'ADA LOVELACE' }]);

      await maskNames('names-masked-2');
      for (const sql of ['FETCH 1 FROM k', 'MOVE 1 IN k']) {
        const result = await outcome(client, sql);
        expect(result.error?.code, sql).toBe('42501');
        expect(result.error?.message, sql).toContain('cursor "k" was declared under a policy that has since been replaced');
        expect(JSON.stringify(result), sql).not.toMatch(/LOVELACE|TURING/);
      }
      // A DECLARE of the name that fails on the server (it is still open) does not make it readable.
      await outcome(client, 'DECLARE k CURSOR WITH HOLD FOR SELECT 1');
      expect((await outcome(client, 'FETCH ALL FROM k')).error?.code).toBe('42501');
      // A new cursor is decided under the policy of now: the expression over a masked column is refused.
      const again = await outcome(client, 'DECLARE k2 CURSOR WITH HOLD FOR SELECT id, upper(name) AS n FROM customers');
      expect(again.error?.code).toBe('42501');
      expect(again.error?.message).toContain('name');
    } finally {
      await client.end();
      await restore('base-1');
    }
  });


  it('a portal bound before a reload is not executed after it', async () => {
    const { client } = await stack.connectAgent('ty', ['analysts']);
    try {
      await client.query('BEGIN');
      const cursor = client.query(new Cursor('SELECT id, name FROM customers ORDER BY id'));
      expect(await cursor.read(1)).toEqual([{ id: 1, name: 'Ada Lovelace' }]);
      await maskNames('names-masked-3');
      const rest = await cursor.read(10).then((rows) => ({ rows, error: null }), (err: pg.DatabaseError) => ({ rows: null, error: err }));
      expect(rest.error?.code).toBe('42501');
      expect(rest.error?.message).toContain('bound under a policy that has since been replaced');
      expect(JSON.stringify(rest.rows)).not.toContain('Turing');
    } finally {
      await client.end();
      await restore('base-2');
    }
  });

  it('a portal bound before a reload is not read by SQL FETCH after it either', async () => {
    const wire = await analystOnTheWire('uma');
    try {
      wire.send(serialize.query('BEGIN'));
      await wire.until('Z');
      wire.send(serialize.parse({ name: 'ps', text: 'SELECT id, upper(name) AS n FROM customers ORDER BY id' }), serialize.bind({ statement: 'ps', portal: 'k' }),
        serialize.execute({ portal: 'k', rows: 1 }), serialize.sync());
      expect((await wire.until('Z')).filter((m) => m.type === 'D')).toHaveLength(1);
      await maskNames('names-masked-4');
      for (const sql of ['FETCH ALL FROM k', 'MOVE 1 IN k']) {
        wire.send(serialize.query(sql));
        const answer = await wire.until('Z');
        const error = errorFields(answer.find((m) => m.type === 'E')!.body);
        expect(error.C, sql).toBe('42501');
        expect(error.M, sql).toContain('cursor "k" was bound under a policy that has since been replaced');
        expect(answer.filter((m) => m.type === 'D'), sql).toEqual([]);
      }
    } finally {
      await wire.end();
      await restore('base-4');
    }
  });

  it('a cursor declared before a reload is not made readable by a Bind of its name the server refuses', async () => {
    const wire = await analystOnTheWire('ike');
    try {
      wire.send(serialize.query('DECLARE k CURSOR WITH HOLD FOR SELECT id, upper(name) AS u FROM customers ORDER BY id'));
      await wire.until('Z');
      await maskNames('names-masked-5');
      // Until the server refuses the Bind (42P03: the cursor exists), the relay holds a portal k of the new policy.
      wire.send(serialize.parse({ text: 'SELECT 1' }), serialize.bind({ portal: 'k' }), serialize.sync(), serialize.query('FETCH ALL FROM k'));
      const answers = [...(await wire.until('Z')), ...(await wire.until('Z'))];
      expect(answers.filter((m) => m.type === 'E').map((m) => errorFields(m.body).C)).toEqual(['42P03', '42501']);
      expect(answers.filter((m) => m.type === 'D')).toEqual([]);
    } finally {
      await wire.end();
      await restore('base-5');
    }
  });

  it('is masked by a mask the new policy adds, and refused when the grant is taken away', async () => {
    const { client } = await stack.connectAgent('rae', ['analysts']);
    try {
      expect((await outcome(client, NAMES)).rows).toEqual([{ id: 1, name: 'Ada Lovelace' }]);

      await maskNames('names-masked');
      expect((await outcome(client, NAMES)).rows).toEqual([{ id: 1, name: '[REDACTED]' }]);

      const noGrant = (data: string) => maskName(data).replace(/(- name: analysts-read-orders\n(?:.*\n)*? {4}targets: \[)orders-db, /, '$1');
      await reload('no-grant', noGrant, async (probe) => (await outcome(probe, 'SELECT 1')).error?.code === '42501');
      const refused = await outcome(client, NAMES);
      expect(refused.error?.code).toBe('42501');
      expect(JSON.stringify(refused)).not.toContain('Ada');
    } finally {
      await client.end();
    }
  });

  it('a statement made with SQL PREPARE is refused to a caller masked after a reload, at EXECUTE', async () => {
    // orders-md5 has no masks and no grant in the sample policy: a writer there may PREPARE and EXECUTE (readers may not).
    const writers = (data: string) => data.replace(/^grants:\n/m, 'grants:\n  - name: md5-writers\n    groups: [md5-writers]\n    targets: [orders-md5]\n    access: write\n');
    const maskedToo = (data: string) => writers(data).replace(/^masks:\n/m, 'masks:\n  orders-md5:\n    - column: public.customers.name\n      strategy: redact\n');
    const namesOnMd5 = async () => {
      const { client } = await stack.connectAgent('probe', ['md5-writers'], 'orders-md5');
      try {
        return (await outcome(client, 'SELECT name FROM customers WHERE id = 1')).rows?.[0]?.name;
      } finally {
        await client.end();
      }
    };
    await reload('md5-writers', writers, async () => (await namesOnMd5().catch(() => undefined)) === 'Ada Lovelace');
    const { client } = await stack.connectAgent('wyn', ['md5-writers'], 'orders-md5');
    const wire = await PipelineClient.connect({ host: '127.0.0.1', port: stack.proxyPort, user: 'orders-md5', database: 'orders', password: stack.token('wyn', ['md5-writers']) });
    // Red-team round 23: a protocol name of 70 bytes is the statement SQL names by its first 63, and a Close the server
    // skips after an error in its batch leaves it there.
    const long = 'l'.repeat(70);
    try {
      wire.send(serialize.parse({ name: long, text: 'SELECT id, upper(name) AS n FROM customers WHERE id = 1' }), serialize.sync());
      await wire.until('Z');
      wire.send(serialize.parse({ text: "SELECT 'boom'::int" }), serialize.bind({}), serialize.execute({}), serialize.close({ type: 'S', name: long }), serialize.sync());
      expect((await wire.until('Z')).filter((m) => m.type === 'E').map((m) => errorFields(m.body).C)).toEqual(['22P02']);
      await client.query('PREPARE p AS SELECT id, upper(name) AS n FROM customers WHERE id = 1');
      expect((await outcome(client, 'EXECUTE p')).rows).toEqual([{ id: 1, n: 'ADA LOVELACE' }]);
      // Prepared through the protocol (a named Parse), it is reachable from SQL EXECUTE too.
      await client.query({ name: 'ps', text: 'SELECT id, upper(name) AS n FROM customers WHERE id = 1' });

      await reload('md5-masked', maskedToo, async () => (await namesOnMd5().catch(() => undefined)) === '[REDACTED]');
      const refused = await outcome(client, 'EXECUTE p');
      expect(refused.error?.code).toBe('42501');
      expect(refused.error?.message).toContain('prepared statement "p" was prepared under a policy that has since been replaced');
      expect(JSON.stringify(refused)).not.toContain('LOVELACE');
      const viaProtocol = await outcome(client, 'EXECUTE ps');
      expect(viaProtocol.error?.code).toBe('42501');
      expect(viaProtocol.error?.message).toContain('prepared statement "ps" was prepared under a policy that has since been replaced');
      expect(JSON.stringify(viaProtocol)).not.toContain('LOVELACE');
      // A PREPARE of the name fails on the server (it holds the Parse's), and leaves the name as old as that one.
      expect((await outcome(client, 'PREPARE ps AS SELECT 1')).error?.code).toBe('42P05');
      const afterPrepare = await outcome(client, 'EXECUTE ps');
      expect(afterPrepare.error?.code).toBe('42501');
      expect(JSON.stringify(afterPrepare)).not.toContain('LOVELACE');
      // Made again under the policy of now, the expression over the masked column is refused when it is prepared.
      expect((await outcome(client, 'PREPARE p2 AS SELECT id, upper(name) AS n FROM customers WHERE id = 1')).error?.code).toBe('42501');
      wire.send(serialize.query(`EXECUTE ${long.slice(0, 63)}`));
      const longOne = await wire.until('Z');
      const error = errorFields(longOne.find((m) => m.type === 'E')!.body);
      expect(error.C).toBe('42501');
      expect(error.M).toContain(`prepared statement "${long.slice(0, 63)}" was prepared under a policy that has since been replaced`);
      expect(longOne.filter((m) => m.type === 'D')).toEqual([]);
    } finally {
      await wire.end();
      await client.end();
      await restore('base-3');
    }
  });
});
