/**
 * Approvals through the Postgres proxy, end to end: an sre-agents token
 * writes to orders-db (env prod), which policy allows only with one dba's
 * approval (rule prod-writes-need-dba). In hold mode the statement waits
 * while a dba approves with `gatehouse approvals` (or cancels it with a
 * CancelRequest); in ticket mode it is denied with the approval id and its
 * status URL, and the approved retry runs once. Each mode has its own
 * gateway and PostgreSQL.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import type { NoticeMessage } from 'pg-protocol/dist/messages.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { repoRoot } from '../helpers/opa.js';
import { PipelineClient, errorFields, sendCancel } from '../helpers/pg-pipeline.js';
import { serialize } from 'pg-protocol';
import { startProxyStack, type ProxyStack } from '../helpers/pg-proxy.js';

interface ApprovalView {
  id: string;
  status: string;
  target: string;
  groups: string[];
  requester: { sub: string };
  action: { action: { postgres: { text: string; parameters?: unknown[] } } };
}

interface Side {
  stack: ProxyStack;
  sre: string;
  dba: string;
  direct: pg.Client;
  clients: pg.Client[];
}

let hold: Side;
let ticket: Side;
const run = promisify(execFile);

/** `gatehouse token`, run in the background so that several are minted at once. */
async function mint(stack: ProxyStack, args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'token', '-c', stack.config, ...args], { cwd: repoRoot });
  return stdout.trim();
}

async function side(stack: ProxyStack): Promise<Side> {
  const [sre, dba, direct] = await Promise.all([
    mint(stack, ['--sub', 'agent-sre', '--groups', 'sre-agents']),
    // Approvals are for humans: the dba's token says so.
    mint(stack, ['--sub', 'dora', '--groups', 'dba', '--human']),
    stack.direct(),
  ]);
  return { stack, sre, dba, direct, clients: [] };
}

beforeAll(async () => {
  [hold, ticket] = await Promise.all([startProxyStack().then(side), startProxyStack({
    approvalMode: 'ticket',
    // orders-md5 has no column masks: a caller there may change search_path.
    extraGrants: '  - {name: test-sre-md5, groups: [sre-agents], targets: [orders-md5], access: write}',
    extraApprovals: '  - {name: test-md5-writes, match: {labels: {env: staging}, kinds: [postgres], access: write, requester_groups: [sre-agents]}, approvers: [dba], min: 1, ttl_seconds: 900, mode: ticket}',
  }).then(side)]);
}, 120_000);

afterAll(async () => {
  for (const s of [hold, ticket]) {
    if (!s) continue;
    await Promise.all([...s.clients.map((c) => c.end().catch(() => undefined)), s.direct.end()]);
    await s.stack.stop();
  }
});

async function agent(s: Side): Promise<pg.Client> {
  const client = new pg.Client(s.stack.clientConfig('orders-db', s.sre));
  await client.connect();
  s.clients.push(client);
  return client;
}

async function amountOf(s: Side, orderId: number): Promise<string> {
  return (await s.direct.query<{ amount: string }>('SELECT amount FROM orders WHERE id = $1', [orderId])).rows[0]!.amount;
}

async function approvalOf(s: Side, id: string): Promise<ApprovalView> {
  const res = await fetch(`${s.stack.api}/v1/approvals/${id}`, { headers: { authorization: `Bearer ${s.dba}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as ApprovalView;
}

async function errorOf(promise: Promise<unknown>): Promise<pg.DatabaseError> {
  try {
    await promise;
  } catch (err) {
    return err as pg.DatabaseError;
  }
  throw new Error('expected the statement to fail');
}

/** Runs `sql` and resolves, once the proxy says it is held, with the approval id, the notice and the still running query. */
async function runHeld(client: pg.Client, sql: string | pg.QueryConfig): Promise<{ id: string; notice: NoticeMessage; result: Promise<pg.QueryResult> }> {
  const notice = new Promise<NoticeMessage>((resolve) => {
    const listener = (n: NoticeMessage) => {
      if (!/held for approval/.test(n.message ?? '')) return;
      client.off('notice', listener);
      resolve(n);
    };
    client.on('notice', listener);
  });
  const result = client.query(sql);
  result.catch(() => undefined); // awaited by the test; not unhandled meanwhile
  const held = await Promise.race([notice, result.then(
    (r) => { throw new Error(`expected ${JSON.stringify(sql)} to be held, it completed: ${r.command} ${r.rowCount}`); },
    (e: Error) => { throw new Error(`expected ${JSON.stringify(sql)} to be held, it failed: ${e.message}`); },
  )]);
  const id = /held for approval ([0-9a-f-]{36})/.exec(held.message!)![1]!;
  return { id, notice: held, result };
}

/** A dba approves through the API. */
async function approve(s: Side, id: string): Promise<void> {
  const res = await fetch(`${s.stack.api}/v1/approvals/${id}/approve`, {
    method: 'POST', headers: { authorization: `Bearer ${s.dba}`, 'content-type': 'application/json' }, body: '{}',
  });
  expect(res.status).toBe(200);
}

function cli(s: Side, args: string[]): { code: number; stdout: string; stderr: string } {
  return runCli([...args, '--server', s.stack.api, '--token', s.dba]);
}

describe('hold mode: the statement waits for a human', () => {
  const UPDATE = 'UPDATE orders SET amount = 1 WHERE id = 10';

  it('an extended-protocol statement is approved with its values: binding it again, with other values, asks again', async () => {
    const client = await agent(hold);
    const bump = (by: string) => ({ name: 'bump-12', text: 'UPDATE orders SET amount = amount + $1 WHERE id = $2', values: [by, 12] });
    const before = Number(await amountOf(hold, 12));
    const held = await runHeld(client, bump('1'));
    const pending = await approvalOf(hold, held.id);
    expect(pending.action.action.postgres.text).toBe(bump('1').text);
    expect(pending.action.action.postgres.parameters).toEqual([{ format: 'text', value: '1' }, { format: 'text', value: '12' }]);
    const approved = cli(hold, ['approvals', 'approve', held.id]);
    expect(approved.code, approved.stderr).toBe(0);
    expect((await held.result).rowCount).toBe(1);

    // node-postgres binds the statement it prepared (no new Parse): the Bind, with its values, is asked about again.
    const again = await runHeld(client, bump('1000'));
    expect(again.id).not.toBe(held.id);
    expect((await approvalOf(hold, again.id)).action.action.postgres.parameters).toEqual([{ format: 'text', value: '1000' }, { format: 'text', value: '12' }]);
    expect(cli(hold, ['approvals', 'deny', again.id, '--reason', 'not that much']).code).toBe(0);
    const error = await errorOf(again.result);
    expect(error.code).toBe('42501');
    expect(error.message).toContain(`approval ${again.id} was denied`);
    expect(error.message).toContain('not that much');
    expect(Number(await amountOf(hold, 12))).toBe(before + 1);
    expect((await client.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
  });

  it('waits with a NOTICE naming the approval, runs once a dba approves, and the row changes', async () => {
    const client = await agent(hold);
    const held = await runHeld(client, UPDATE);
    expect(held.notice).toMatchObject({ severity: 'NOTICE', code: '00000' });
    expect(held.notice.message).toBe(`statement held for approval ${held.id}; it runs once a human approves it`);
    expect(held.notice.hint).toContain(`${hold.stack.api}/v1/approvals/${held.id}`);

    const pending = await approvalOf(hold, held.id);
    expect(pending).toMatchObject({ status: 'pending', target: 'orders-db', groups: ['dba'], requester: { sub: 'agent-sre' } });
    expect(pending.action.action.postgres.text).toBe(UPDATE);
    expect(await amountOf(hold, 10)).toBe('42.50'); // nothing ran yet

    const approved = cli(hold, ['approvals', 'approve', held.id, '--comment', 'ship it']);
    expect(approved.code, approved.stderr).toBe(0);
    const result = await held.result;
    expect([result.command, result.rowCount]).toEqual(['UPDATE', 1]);
    expect(await amountOf(hold, 10)).toBe('1.00');
    expect((await approvalOf(hold, held.id)).status).toBe('consumed');
  });

  it('runs an approved statement once: the same text again needs a new approval, and a denial refuses it', async () => {
    await hold.direct.query('UPDATE orders SET amount = 42.50 WHERE id = 10');
    const client = await agent(hold);
    const first = await runHeld(client, UPDATE);
    expect(cli(hold, ['approvals', 'approve', first.id]).code).toBe(0);
    expect((await first.result).rowCount).toBe(1);
    await hold.direct.query('UPDATE orders SET amount = 42.50 WHERE id = 10');

    const again = await runHeld(client, UPDATE);
    expect(again.id).not.toBe(first.id);
    const denied = cli(hold, ['approvals', 'deny', again.id, '--reason', 'once is enough']);
    expect(denied.code, denied.stderr).toBe(0);
    const error = await errorOf(again.result);
    expect(error.code).toBe('42501');
    expect(error.message).toContain(`approval ${again.id} was denied`);
    expect(error.message).toContain('once is enough');
    expect(await amountOf(hold, 10)).toBe('42.50');
    expect((await client.query('SELECT count(*)::int AS n FROM orders')).rows).toEqual([{ n: 3 }]);
  });

  it('a CancelRequest with the session\'s key ends the wait: an error, the request withdrawn, the session usable', async () => {
    const client = await agent(hold);
    const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
    const held = await runHeld(client, 'UPDATE orders SET amount = 3 WHERE id = 11');

    // A wrong secret cancels nothing: the request is still pending.
    await sendCancel('127.0.0.1', hold.stack.proxyPort, processID, secretKey ^ 1);
    expect((await approvalOf(hold, held.id)).status).toBe('pending');

    await sendCancel('127.0.0.1', hold.stack.proxyPort, processID, secretKey);
    const error = await errorOf(held.result);
    expect(error.code).toBe('42501');
    expect(error.message).toContain(`approval ${held.id} was not granted`);
    expect((await approvalOf(hold, held.id)).status).toBe('expired');
    const listed = cli(hold, ['approvals', 'list', '--json']);
    expect((JSON.parse(listed.stdout) as { approvals: ApprovalView[] }).approvals.map((a) => a.id)).not.toContain(held.id);
    expect(await amountOf(hold, 11)).toBe('10.00');

    expect((await client.query('SELECT amount FROM orders WHERE id = $1', [11])).rows).toEqual([{ amount: '10.00' }]);
  });
});

describe('what could not be enforced once approved is denied before anyone is asked', () => {
  it('a write needing approval whose RETURNING would carry a masked column unmasked opens no approval', async () => {
    const client = await agent(ticket);
    const error = await errorOf(client.query('UPDATE orders SET amount = amount WHERE id = 12 RETURNING (SELECT string_agg(ssn, \',\') FROM customers)'));
    expect(error.code).toBe('42501');
    expect(error.message).toContain('masked column ssn');
    expect(error.message).not.toContain('approval required');
    expect(error.hint ?? '').not.toContain('approval');
  });
});

describe('an approval binds the statement it shows', () => {
  it('EXECUTE of a prepared write is refused, not sent for approval: the approver would see only its name', async () => {
    const wire = await PipelineClient.connect({ host: '127.0.0.1', port: ticket.stack.proxyPort, user: 'orders-db', database: 'orders', password: ticket.sre });
    try {
      // Prepared at the protocol level: a Parse of a write is decided when it is bound, with its values.
      wire.send(serialize.parse({ name: 'w', text: 'UPDATE orders SET amount = 9 WHERE id = 11' }), serialize.sync());
      expect((await wire.until('Z')).map((m) => m.type)).toEqual(['1', 'Z']);
      wire.send(serialize.query('EXECUTE w'));
      const answer = await wire.until('Z');
      expect(answer.map((m) => m.type)).not.toContain('C');
      const error = errorFields(answer.find((m) => m.type === 'E')!.body);
      expect(error.C).toBe('42501');
      expect(error.M).toContain('an approver would see only the prepared statement\'s name');
      expect(error.M).not.toContain('approval required');
      expect(await amountOf(ticket, 11)).not.toBe('9.00');
    } finally {
      await wire.end();
    }
  });
});

describe('COPY … FROM a statement that needs approval', () => {
  // Red-team round 24: the approval bound the statement alone, and the retry sent rows no one saw.
  it('is refused, not sent for approval: an approver would see none of the rows', async () => {
    const client = await agent(ticket);
    try {
      const error = await errorOf(client.query('COPY orders (id, customer_id, amount, status) FROM STDIN'));
      expect(error.code).toBe('42501');
      expect(error.message).toContain('an approver would see only the statement, not the rows it writes');
      expect(error.message).not.toContain('approval required');
      expect(error.hint ?? '').not.toContain('approval');
    } finally {
      await client.end();
    }
  });
});

describe('a cursor over a statement that needs approval', () => {
  it('is refused, not sent for approval: rewound, the cursor would run the approved query again', async () => {
    const client = await agent(ticket);
    try {
      await client.query('BEGIN');
      const error = await errorOf(client.query('DECLARE c SCROLL CURSOR FOR SELECT lo_create(0) FROM generate_series(1, 1)'));
      expect(error.code).toBe('42501');
      expect(error.message).toContain('could run it again on every rewind');
      expect(error.message).not.toContain('approval required');
      await client.query('ROLLBACK');
    } finally {
      await client.end();
    }
  });
});

describe('a statement name the server keeps is bound as what the server holds', () => {
  it('a second Parse of a name the server refuses (42P05) does not stand in for the first: the write still needs approval', async () => {
    const wire = await PipelineClient.connect({ host: '127.0.0.1', port: ticket.stack.proxyPort, user: 'orders-db', database: 'orders', password: ticket.sre });
    try {
      wire.send(serialize.parse({ name: 's', text: 'UPDATE orders SET amount = 7 WHERE id = 11' }), serialize.sync());
      expect((await wire.until('Z')).map((m) => m.type)).toEqual(['1', 'Z']);
      wire.send(serialize.parse({ name: 's', text: 'SELECT 1' }), serialize.bind({ statement: 's' }), serialize.execute({}), serialize.sync());
      const refused = await wire.until('Z');
      expect(errorFields(refused.find((m) => m.type === 'E')!.body).C).toBe('42P05');
      wire.send(serialize.bind({ statement: 's' }), serialize.execute({}), serialize.sync());
      const bound = await wire.until('Z');
      expect(bound.map((m) => m.type)).not.toContain('C');
      const error = errorFields(bound.find((m) => m.type === 'E')!.body);
      expect(error.C).toBe('42501');
      expect(error.M).toContain('approval required');
      expect(await amountOf(ticket, 11)).not.toBe('7.00');
    } finally {
      await wire.end();
    }
  });
});

describe('statement names the server cuts to 63 bytes', () => {
  // PostgreSQL keys prepared statements by their first 63 bytes: a Close and a Parse under other long names
  // sharing them replace, on the server, the statement the first name runs.
  it.each([
    ['cut between characters', 'x'.repeat(63), 8],
    ['cut inside a character', `${'x'.repeat(62)}é`, 9],
  ])('are one statement to the gateway as to the server (%s): the write still needs approval', async (_, head, amount) => {
    const wire = await PipelineClient.connect({ host: '127.0.0.1', port: ticket.stack.proxyPort, user: 'orders-db', database: 'orders', password: ticket.sre });
    try {
      wire.send(serialize.parse({ name: `${head}1`, text: 'SELECT 1' }), serialize.sync());
      expect((await wire.until('Z')).map((m) => m.type)).toEqual(['1', 'Z']);
      wire.send(
        serialize.close({ type: 'S', name: `${head}2` }),
        serialize.parse({ name: `${head}3`, text: `UPDATE orders SET amount = ${amount} WHERE id = 11` }),
        serialize.sync(),
      );
      expect((await wire.until('Z')).map((m) => m.type)).toEqual(['3', '1', 'Z']);
      wire.send(serialize.bind({ statement: `${head}1` }), serialize.execute({}), serialize.sync());
      const bound = await wire.until('Z');
      expect(bound.map((m) => m.type)).not.toContain('C');
      const error = errorFields(bound.find((m) => m.type === 'E')!.body);
      expect(error.C).toBe('42501');
      expect(error.M).toContain('approval required');
      expect(await amountOf(ticket, 11)).not.toBe(`${amount}.00`);
    } finally {
      await wire.end();
    }
  });
});

describe('ticket mode: denied with the approval id, the approved retry runs once', () => {
  const UPDATE = 'UPDATE orders SET amount = 5 WHERE id = 12';

  async function deniedTicket(client: pg.Client, sql: string | pg.QueryConfig): Promise<{ id: string; error: pg.DatabaseError }> {
    const error = await errorOf(client.query(sql));
    expect(error.code).toBe('42501');
    const id = /approval ([0-9a-f-]{36}): /.exec(error.hint ?? '')?.[1];
    expect(id, `hint: ${error.hint}`).toBeDefined();
    return { id: id!, error };
  }

  it('denies with the approval id and status URL; after approval the same text runs once, other text never', async () => {
    const client = await agent(ticket);
    const statusUrl = (id: string) => `${ticket.stack.api}/v1/approvals/${id}`;

    const first = await deniedTicket(client, UPDATE);
    expect(first.error.message).toContain(`approval required: request ${first.id} is pending with dba; follow it at ${statusUrl(first.id)}`);
    expect(first.error.hint).toBe(`approval ${first.id}: ${statusUrl(first.id)}`);
    expect(await amountOf(ticket, 12)).toBe('99.99');
    expect((await approvalOf(ticket, first.id)).status).toBe('pending');

    // Retrying before anyone approved opens no second request.
    expect((await deniedTicket(client, UPDATE)).id).toBe(first.id);

    const approve = await fetch(`${statusUrl(first.id)}/approve`, {
      method: 'POST', headers: { authorization: `Bearer ${ticket.dba}`, 'content-type': 'application/json' }, body: '{}',
    });
    expect(approve.status).toBe(200);
    expect((await approvalOf(ticket, first.id)).status).toBe('approved');

    // Another statement does not ride on that approval.
    const other = await deniedTicket(client, 'UPDATE orders SET amount = 6 WHERE id = 12');
    expect(other.id).not.toBe(first.id);
    expect((await approvalOf(ticket, first.id)).status).toBe('approved');
    expect(await amountOf(ticket, 12)).toBe('99.99');

    // The approved text runs, once.
    const result = await client.query(UPDATE);
    expect([result.command, result.rowCount]).toEqual(['UPDATE', 1]);
    expect(await amountOf(ticket, 12)).toBe('5.00');
    expect((await approvalOf(ticket, first.id)).status).toBe('consumed');

    await ticket.direct.query('UPDATE orders SET amount = 99.99 WHERE id = 12');
    const second = await deniedTicket(client, UPDATE);
    expect(second.id).not.toBe(first.id);
    expect(await amountOf(ticket, 12)).toBe('99.99');
    expect((await client.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
  });

  it('an approval binds the values of an extended-protocol statement: the same text with other values needs its own', async () => {
    const client = await agent(ticket);
    const setAmount = (amount: string) => ({ text: 'UPDATE orders SET amount = $1 WHERE id = $2', values: [amount, 11] });
    const before = await amountOf(ticket, 11);
    const first = await deniedTicket(client, setAmount('7'));
    expect((await approvalOf(ticket, first.id)).action.action.postgres.parameters).toEqual([{ format: 'text', value: '7' }, { format: 'text', value: '11' }]);
    await approve(ticket, first.id);

    const other = await deniedTicket(client, setAmount('7000'));
    expect(other.id).not.toBe(first.id);
    expect(await amountOf(ticket, 11)).toBe(before);

    const result = await client.query(setAmount('7'));
    expect([result.command, result.rowCount]).toEqual(['UPDATE', 1]);
    expect(await amountOf(ticket, 11)).toBe('7.00');
    expect((await approvalOf(ticket, first.id)).status).toBe('consumed');
  });

  it('an approval binds the DateStyle, IntervalStyle and TimeZone its statement is read under: the same text under others asks again', async () => {
    const dateOf = async () => (await ticket.direct.query<{ d: string }>('SELECT created_at::text AS d FROM customers WHERE id = 3')).rows[0]!.d;
    const SET_DATE = "UPDATE customers SET created_at = '01/02/2026' WHERE id = 3";
    const dmy = await agent(ticket);
    await dmy.query("SET datestyle = 'ISO, DMY'");
    const first = await deniedTicket(dmy, SET_DATE);
    const shown = (await approvalOf(ticket, first.id)).action.action.postgres as { settings?: Record<string, string> };
    expect(shown.settings).toMatchObject({ DateStyle: 'ISO, DMY', IntervalStyle: 'postgres' });
    expect(shown.settings?.TimeZone).toEqual(expect.any(String));
    await approve(ticket, first.id);

    // Read as MDY the same text is 2 January: not what was approved.
    const mdy = await agent(ticket);
    const other = await deniedTicket(mdy, SET_DATE);
    expect(other.id).not.toBe(first.id);
    expect(await dateOf()).toBe('2026-01-01');

    const result = await dmy.query(SET_DATE);
    expect([result.command, result.rowCount]).toEqual(['UPDATE', 1]);
    expect(await dateOf()).toBe('2026-02-01');
    expect((await approvalOf(ticket, first.id)).status).toBe('consumed');
    await ticket.direct.query("UPDATE customers SET created_at = '2026-01-01' WHERE id = 3");
  });

  it('an approval is not asked while a change of DateStyle sent before it is unanswered: it could bind the old value', async () => {
    const wire = await PipelineClient.connect({ host: '127.0.0.1', port: ticket.stack.proxyPort, user: 'orders-db', database: 'orders', password: ticket.sre });
    try {
      // No Sync or Flush after the SET: the server holds its answer (and the ParameterStatus) until the batch ends.
      wire.send(
        serialize.parse({ text: "SET datestyle = 'ISO, DMY'" }), serialize.bind({}), serialize.execute({}),
        serialize.parse({ name: 'w', text: "UPDATE customers SET created_at = '03/04/2026' WHERE id = 3" }), serialize.bind({ statement: 'w' }), serialize.execute({}),
        serialize.sync(),
      );
      const answer = await wire.until('Z');
      const error = errorFields(answer.find((m) => m.type === 'E')!.body);
      expect(error.C).toBe('42501');
      expect(error.M).toContain('a statement sent before it has not been answered up to ReadyForQuery');
      expect(error.H ?? '').not.toMatch(/approval [0-9a-f-]{36}/);
    } finally {
      await wire.end();
    }
    expect((await ticket.direct.query<{ d: string }>('SELECT created_at::text AS d FROM customers WHERE id = 3')).rows[0]!.d).toBe('2026-01-01');
  });

  /** Sends `messages`, then resolves with the error the proxy answers the statement needing approval with. */
  async function refusedOnWire(setup: Buffer[][], messages: Buffer[], readyForQueries = 1): Promise<Record<string, string>> {
    const wire = await PipelineClient.connect({ host: '127.0.0.1', port: ticket.stack.proxyPort, user: 'orders-db', database: 'orders', password: ticket.sre });
    try {
      for (const step of setup) {
        wire.send(...step);
        await wire.until(step.some((m) => m[0] === 0x48) ? 'C' : 'Z'); // after a Flush ('H'), the CommandComplete
      }
      wire.send(...messages);
      const answer = [];
      for (let i = 0; i < readyForQueries; i++) answer.push(...await wire.until('Z'));
      const error = answer.find((m) => m.type === 'E');
      expect(error, answer.map((m) => m.type).join('')).toBeDefined();
      return errorFields(error!.body);
    } finally {
      await wire.end();
    }
  }
  const UPDATE_DATE = "UPDATE customers SET created_at = '03/04/2026' WHERE id = 3";
  const createdAt = async () => (await ticket.direct.query<{ d: string }>('SELECT created_at::text AS d FROM customers WHERE id = 3')).rows[0]!.d;

  it('an approval is not asked after an extended-protocol SET the server has answered but not yet reported (ParameterStatus comes with ReadyForQuery)', async () => {
    const error = await refusedOnWire(
      [[serialize.parse({ text: "SET datestyle = 'ISO, DMY'" }), serialize.bind({}), serialize.execute({}), serialize.flush()]],
      [serialize.parse({ text: UPDATE_DATE }), serialize.bind({}), serialize.execute({}), serialize.sync()],
    );
    expect(error.M).toContain('a statement sent before it has not been answered up to ReadyForQuery');
    expect(await createdAt()).toBe('2026-01-01');
  });

  it('an approval is not asked while a ROLLBACK that undoes SET LOCAL is unanswered', async () => {
    const error = await refusedOnWire(
      [[serialize.query("BEGIN; SET LOCAL datestyle = 'ISO, DMY'")]],
      [serialize.query('ROLLBACK'), serialize.query(UPDATE_DATE)],
      2,
    );
    expect(error.M).toContain('a statement sent before it has not been answered up to ReadyForQuery');
    expect(await createdAt()).toBe('2026-01-01');
  });

  it('a prepared statement is not approved under other settings than it was parsed under', async () => {
    const error = await refusedOnWire(
      [[serialize.query("SET datestyle = 'ISO, DMY'")], [serialize.parse({ name: 'p3', text: UPDATE_DATE }), serialize.sync()], [serialize.query("SET datestyle = 'ISO, MDY'")]],
      [serialize.bind({ statement: 'p3' }), serialize.execute({}), serialize.sync()],
    );
    expect(error.M).toContain('it was prepared (its constants read) under other DateStyle, IntervalStyle or TimeZone than now');
    expect(await createdAt()).toBe('2026-01-01');
  });

  it('an approval is not asked in a session that changed search_path: the approver would read the names against the default', async () => {
    const client = new pg.Client(ticket.stack.clientConfig('orders-md5', ticket.sre));
    await client.connect();
    ticket.clients.push(client);
    const UPDATE = 'UPDATE orders SET amount = 8 WHERE id = 12';
    // Where nothing was changed, the write is sent for approval as usual.
    expect((await errorOf(client.query(UPDATE))).hint).toMatch(/^approval [0-9a-f-]{36}: /);
    // Here a SET is a write like any other, approved as one.
    const SET_PATH = 'SET search_path = pg_catalog, public';
    const set = await deniedTicket(client, SET_PATH);
    await approve(ticket, set.id);
    await client.query(SET_PATH);
    const error = await errorOf(client.query(UPDATE));
    expect(error.code).toBe('42501');
    expect(error.message).toContain('this session changed search_path, which changes what statements do');
    expect(error.hint ?? '').not.toMatch(/approval [0-9a-f-]{36}/);
    expect(await amountOf(ticket, 12)).toBe('99.99');
  });

  it('an approval is not asked in a session that changed a setting that changes what statements do (transform_null_equals)', async () => {
    const client = new pg.Client(ticket.stack.clientConfig('orders-md5', ticket.sre));
    await client.connect();
    ticket.clients.push(client);
    const SET = 'SET transform_null_equals = on';
    await approve(ticket, (await deniedTicket(client, SET)).id);
    await client.query(SET);
    const error = await errorOf(client.query("UPDATE orders SET notes = 'x' WHERE notes = NULL"));
    expect(error.message).toContain('this session changed transform_null_equals');
    expect(error.hint ?? '').not.toMatch(/approval [0-9a-f-]{36}/);
  });
});
