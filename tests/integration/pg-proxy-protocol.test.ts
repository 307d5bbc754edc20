/**
 * The proxy's client side at the byte level, over raw sockets: protocol
 * negotiation, encryption requests, TLS, malformed input, session limits
 * and cancel keys. Two gateways: one in plaintext with small message,
 * prepared-statement and portal limits, one that requires TLS. Each in
 * front of its own real PostgreSQL.
 */
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxyStack, type ProxyStack } from '../helpers/pg-proxy.js';
import {
  cancelRequestPacket, errorFields, frontendMessage, GSSENC_REQUEST_CODE, passwordMessage, queryMessage, requestPacket,
  SSL_REQUEST_CODE, startupPacket, WireClient, wireLogin, wireQuery, type WireMessage, type WireSession,
} from '../helpers/pg-wire.js';
import { PipelineClient } from '../helpers/pg-pipeline.js';
import { devToken, runCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';

const MAX_MESSAGE_BYTES = 4096;
/** Short, so that a connection that never logs in is seen to be ended; long enough for a real login on a busy machine. */
const LOGIN_TIMEOUT_MS = 4000;
/** Connections from one address that may be logging in at once on the plain gateway; no test here needs more. */
const MAX_LOGINS_PER_SOURCE = 6;
/** Sessions one identity may hold at once through the plain gateway. */
const MAX_SESSIONS_PER_IDENTITY = 3;
/** Named prepared statements a session of the plain gateway may hold, and the bytes of their SQL and names. */
const MAX_PREPARED_STATEMENTS = 3;
const MAX_PREPARED_STATEMENT_BYTES = 2048;
/** Named portals a session of the plain gateway may hold (their names' bytes: MAX_PREPARED_STATEMENT_BYTES). */
const MAX_PORTALS = 3;

let plain: ProxyStack;
let secure: ProxyStack;
let direct: pg.Client;
let analyst: string;
let dba: string;
let secureAnalyst: string;

beforeAll(async () => {
  [plain, secure] = await Promise.all([
    startProxyStack({
      listenerYaml: `    max_message_bytes: ${MAX_MESSAGE_BYTES}\n    login_timeout_ms: ${LOGIN_TIMEOUT_MS}\n    max_logins_per_source: ${MAX_LOGINS_PER_SOURCE}\n`
        + `    max_prepared_statements: ${MAX_PREPARED_STATEMENTS}\n    max_prepared_statement_bytes: ${MAX_PREPARED_STATEMENT_BYTES}\n`
        + `    max_portals: ${MAX_PORTALS}\n    max_sessions_per_identity: ${MAX_SESSIONS_PER_IDENTITY}\n`,
    }),
    startProxyStack({ tls: { required: true }, listenerYaml: `    login_timeout_ms: ${LOGIN_TIMEOUT_MS}\n` }),
  ]);
  direct = await plain.direct();
  analyst = plain.token('ann', ['analysts']);
  dba = plain.token('dora', ['dba']);
  secureAnalyst = secure.token('ann', ['analysts']);
}, 120_000);

afterAll(async () => {
  await direct?.end();
  await Promise.all([plain?.stop(), secure?.stop()]);
});

/** Sends the JWT and reads through ReadyForQuery; the session must be logged in. */
async function finishLogin(client: WireClient, token: string): Promise<void> {
  client.write(passwordMessage(token));
  const messages = await client.readUntil('Z');
  expect(messages.map((m) => m.type)).not.toContain('E');
  expect(messages[0]!.type).toBe('R');
  expect(messages[0]!.body.readInt32BE(0)).toBe(0); // AuthenticationOk
  expect(messages.some((m) => m.type === 'K')).toBe(true);
}

/** The next message is a FATAL ErrorResponse and then the gateway closes the connection. */
async function expectFatal(client: WireClient): Promise<Record<string, string>> {
  const message = await client.next();
  expect(message.type).toBe('E');
  const fields = errorFields(message.body);
  expect(fields.S).toBe('FATAL');
  await client.closed; // the deadline of the test is the only bound: it must close
  return fields;
}

describe('protocol negotiation', () => {
  it('answers a 3.2 startup with a _pq_ option with NegotiateProtocolVersion, then asks for the password', async () => {
    const client = await WireClient.connect(plain.proxyPort);
    try {
      client.write(startupPacket({ user: 'orders-db', database: 'orders', '_pq_.something': 'on' }, { major: 3, minor: 2 }));
      const negotiate = await client.next();
      expect(negotiate.type).toBe('v');
      expect(negotiate.body.readInt32BE(0)).toBe(0); // newest minor version supported
      expect(negotiate.body.readInt32BE(4)).toBe(1); // one option not recognised
      expect(negotiate.body.toString('utf8', 8)).toBe('_pq_.something\0');
      const ask = await client.next();
      expect(ask.type).toBe('R');
      expect(ask.body.readInt32BE(0)).toBe(3); // cleartext password
      await finishLogin(client, analyst);
      expect((await wireQuery(client, 'SELECT 1')).rows).toEqual([['1']]);
    } finally {
      client.destroy();
    }
  });

  it('asks for the password without negotiation for a plain 3.0 startup', async () => {
    const client = await WireClient.connect(plain.proxyPort);
    try {
      client.write(startupPacket({ user: 'orders-db', database: 'orders' }));
      const ask = await client.next();
      expect(ask.type).toBe('R');
      expect(ask.body.readInt32BE(0)).toBe(3);
    } finally {
      client.destroy();
    }
  });

  it('refuses protocol 2 with a FATAL', async () => {
    const client = await WireClient.connect(plain.proxyPort);
    client.write(startupPacket({ user: 'orders-db' }, { major: 2, minor: 0 }));
    const fields = await expectFatal(client);
    expect(fields.C).toBe('0A000');
  });
});

describe('encryption requests', () => {
  it("answers GSSENCRequest with 'N' and goes on with a normal startup", async () => {
    const client = await WireClient.connect(plain.proxyPort);
    try {
      client.write(requestPacket(GSSENC_REQUEST_CODE));
      expect(await client.readByte()).toBe('N');
      client.write(startupPacket({ user: 'orders-db', database: 'orders' }));
      const ask = await client.next();
      expect(ask.type).toBe('R');
      expect(ask.body.readInt32BE(0)).toBe(3);
      await finishLogin(client, analyst);
    } finally {
      client.destroy();
    }
  });

  it('lets psql with gssencmode=prefer connect', () => {
    const res = plain.psql('orders-db', analyst, ['-A', '-t', '-d', 'dbname=orders gssencmode=prefer', '-c', 'SELECT 5']);
    expect(res.stderr).toBe('');
    expect(res.stdout.trim()).toBe('5');
  });

  it("answers SSLRequest with 'N' when no TLS is configured, and the startup goes on", async () => {
    const client = await WireClient.connect(plain.proxyPort);
    try {
      client.write(requestPacket(SSL_REQUEST_CODE));
      expect(await client.readByte()).toBe('N');
      client.write(startupPacket({ user: 'orders-db', database: 'orders' }));
      expect((await client.next()).type).toBe('R');
      await finishLogin(client, analyst);
    } finally {
      client.destroy();
    }
  });

  it('lets psql with sslmode=prefer fall back to plaintext when no TLS is configured', () => {
    const res = plain.psql('orders-db', analyst, ['-A', '-t', '-d', 'dbname=orders sslmode=prefer', '-c', '\\conninfo', '-c', 'SELECT 8']);
    expect(res.stderr).toBe('');
    expect(res.stdout).not.toContain('SSL connection');
    expect(res.stdout.trim().split('\n').at(-1)).toBe('8');
  });
});

describe('a connection that does not log in', () => {
  /** Everything the gateway sends until it closes the connection. */
  async function untilClosed(client: WireClient): Promise<WireMessage[]> {
    const messages: WireMessage[] = [];
    for (;;) {
      try {
        messages.push(await client.next());
      } catch {
        return messages;
      }
    }
  }

  it.each([
    ['sends nothing', (_client: WireClient) => undefined],
    ['stops at the password', (client: WireClient) => client.write(startupPacket({ user: 'orders-db', database: 'orders' }))],
  ])('is ended after login_timeout_ms when it %s, as PostgreSQL\'s authentication_timeout does', async (_what, start) => {
    const client = await WireClient.connect(plain.proxyPort);
    try {
      start(client);
      const sent = await untilClosed(client);
      const fatal = sent.find((m) => m.type === 'E');
      expect(fatal && errorFields(fatal.body)).toMatchObject({ S: 'FATAL', C: '57014', M: 'canceling authentication due to timeout' });
    } finally {
      client.destroy();
    }
  });

  it('is ended when it stops in the TLS handshake', async () => {
    const client = await WireClient.connect(secure.proxyPort);
    try {
      client.write(requestPacket(SSL_REQUEST_CODE));
      expect(await client.readByte()).toBe('S');
      // No ClientHello ever follows.
      await client.closed;
    } finally {
      client.destroy();
    }
  });
});

describe('connections logging in from one address', () => {
  it('are capped by max_logins_per_source: one more is refused at once with 53300, and a freed slot lets the next in', async () => {
    const waiting = await Promise.all(Array.from({ length: MAX_LOGINS_PER_SOURCE }, () => WireClient.connect(plain.proxyPort)));
    try {
      const refused = await WireClient.connect(plain.proxyPort);
      try {
        const fields = await expectFatal(refused);
        expect(fields).toMatchObject({ C: '53300' });
        expect(fields.M).toContain('max_logins_per_source is 6');
      } finally {
        refused.destroy();
      }
      // A connection that logged in holds no slot: sessions past the cap are served once logins end.
      waiting.pop()!.destroy();
      const again = await waitFor(() => wireLogin(plain.proxyPort, 'orders-db', analyst).catch(() => false as const), 'a login once a slot is free');
      // With the other slots still taken, this login gets in only because the one before gave its slot back.
      const second = await wireLogin(plain.proxyPort, 'orders-db', analyst);
      expect(await wireQuery(again.client, 'SELECT 1 AS one')).toMatchObject({ error: null });
      again.client.destroy();
      second.client.destroy();
    } finally {
      for (const client of waiting) client.destroy();
    }
  });
});

// Red-team round 24: one read-only agent held every connection its target's server had, and logins
// refused after a valid token left no audit event.
describe('sessions of one identity', () => {
  it(`are capped by max_sessions_per_identity = ${MAX_SESSIONS_PER_IDENTITY}: one more is refused with 53300 and audited; others log in, and a freed slot lets it in`, async () => {
    const token = plain.token('hog', ['analysts']);
    const held = await Promise.all(Array.from({ length: MAX_SESSIONS_PER_IDENTITY }, () => wireLogin(plain.proxyPort, 'orders-db', token)));
    try {
      await expect(wireLogin(plain.proxyPort, 'orders-db', token)).rejects.toThrow(/hog already holds 3 sessions through this gateway \(listeners\.postgres\.max_sessions_per_identity\)/);
      // Another identity is not held back by this one's sessions.
      const other = await wireLogin(plain.proxyPort, 'orders-db', plain.token('someone-else', ['analysts']));
      other.client.destroy();
      held.pop()!.client.destroy();
      const again = await waitFor(() => wireLogin(plain.proxyPort, 'orders-db', token).catch(() => false as const), 'a login once a session has ended');
      held.push(again);
    } finally {
      for (const session of held) session.client.destroy();
    }
    expect(runCli(['audit', 'export', '-c', plain.config]).stdout).toMatch(/"failure":"invalid_action"[^\n]*max_sessions_per_identity|max_sessions_per_identity[^\n]*"failure":"invalid_action"/);
  });

  it('a login refused after its token was verified (a database the target does not serve, a role the database refuses) is audited', async () => {
    await expect(wireLogin(plain.proxyPort, 'orders-db', analyst, 'template1')).rejects.toThrow(/serves database "orders", not "template1"/);
    await expect(wireLogin(plain.proxyPort, 'postgres@orders-db', analyst)).rejects.toThrow(/cannot open orders-db/);
    const exported = runCli(['audit', 'export', '-c', plain.config]).stdout.split('\n').filter((line) => line.includes('"invalid_action"'));
    expect(exported.some((line) => line.includes('not \\"template1\\"'))).toBe(true);
    expect(exported.some((line) => line.includes('cannot open orders-db'))).toBe(true);
  });
});

describe('TLS', () => {
  it('serves psql with sslmode=require', () => {
    const res = secure.psql('orders-db', secureAnalyst, ['-A', '-t', '-d', 'dbname=orders sslmode=require', '-c', '\\conninfo', '-c', 'SELECT name FROM products WHERE id = 1']);
    expect(res.stderr).toBe('');
    expect(res.stdout).toMatch(/SSL connection \(protocol: TLSv1\.[23]/);
    expect(res.stdout.trim().split('\n').at(-1)).toBe('Widget');
  });

  it('serves the configured certificate (psql verifies it with sslmode=verify-full)', () => {
    const conninfo = `host=localhost dbname=orders sslmode=verify-full sslrootcert=${secure.tlsCert}`;
    const res = secure.psql('orders-db', secureAnalyst, ['-A', '-t', '-d', conninfo, '-c', 'SELECT 6']);
    expect(res.stderr).toBe('');
    expect(res.stdout.trim()).toBe('6');
  });

  it('refuses psql with sslmode=disable: TLS is required', () => {
    const res = secure.psql('orders-db', secureAnalyst, ['-d', 'dbname=orders sslmode=disable', '-c', 'SELECT 1']);
    expect(res.status).toBe(2);
    expect(res.stderr).toContain('FATAL:  this gateway requires TLS');
  });

  it('refuses a plaintext startup with FATAL 28000 before asking for a password', async () => {
    const client = await WireClient.connect(secure.proxyPort);
    client.write(startupPacket({ user: 'orders-db', database: 'orders' }));
    const fields = await expectFatal(client);
    expect(fields.C).toBe('28000');
    expect(fields.M).toMatch(/requires TLS/);
  });

  it('rejects plaintext bytes sent in the same write as the SSLRequest, and closes', async () => {
    for (const stack of [secure, plain]) {
      const client = await WireClient.connect(stack.proxyPort);
      client.write(Buffer.concat([requestPacket(SSL_REQUEST_CODE), startupPacket({ user: 'orders-db', database: 'orders' })]));
      // No 'S' or 'N': the injected bytes are refused before the request is answered.
      const fields = await expectFatal(client);
      expect(fields.C).toBe('08P01');
      expect(fields.M).toMatch(/unencrypted byte\(s\) followed SSLRequest/);
    }
  });
});

describe('malformed input closes only that connection', () => {
  let bystander: WireSession;

  beforeAll(async () => {
    bystander = await wireLogin(plain.proxyPort, 'orders-db', analyst);
    expect((await wireQuery(bystander.client, 'SELECT 1')).rows).toEqual([['1']]);
  });

  afterAll(() => bystander?.client.destroy());

  async function victim(): Promise<WireClient> {
    return (await wireLogin(plain.proxyPort, 'orders-db', analyst)).client;
  }

  async function bystanderStillWorks(): Promise<void> {
    const { rows, error } = await wireQuery(bystander.client, 'SELECT name FROM products WHERE id = 2');
    expect(error).toBeNull();
    expect(rows).toEqual([['Gadget']]);
  }

  it('garbage bytes: FATAL 08P01', async () => {
    const client = await victim();
    client.write(Buffer.from('\x01\x02 this is not the postgres protocol'));
    const fields = await expectFatal(client);
    expect(fields.C).toBe('08P01');
    expect(fields.M).toContain('invalid frontend message type');
    await bystanderStillWorks();
  });

  it('garbage before the startup packet: FATAL 08P01', async () => {
    const client = await WireClient.connect(plain.proxyPort);
    client.write(Buffer.from([0, 0, 0, 2, 0xde, 0xad, 0xbe, 0xef]));
    const fields = await expectFatal(client);
    expect(fields.C).toBe('08P01');
    await bystanderStillWorks();
  });

  it('a truncated message (its length ends it before its last field): FATAL 08P01', async () => {
    const client = await victim();
    // A Query whose length stops before the string's terminator.
    const sql = Buffer.from('SELECT 1\0');
    const truncated = Buffer.concat([Buffer.from('Q'), Buffer.from([0, 0, 0, 4 + sql.length - 1]), sql.subarray(0, sql.length - 1)]);
    client.write(truncated);
    const fields = await expectFatal(client);
    expect(fields.C).toBe('08P01');
    expect(fields.M).toContain('no NUL terminator');
    await bystanderStillWorks();
  });

  it('a truncated Bind (a parameter runs past the message): FATAL 08P01', async () => {
    const client = await victim();
    // portal "", statement "", 0 formats, 1 parameter of 100 bytes, but only 3 bytes follow.
    client.write(frontendMessage('B', Buffer.from([0, 0, 0, 0, 0, 1, 0, 0, 0, 100, 1, 2, 3])));
    const fields = await expectFatal(client);
    expect(fields.C).toBe('08P01');
    expect(fields.M).toContain('runs past the end of the message');
    await bystanderStillWorks();
  });

  it('a message cut off by the client hanging up: the connection closes, nothing else is harmed', async () => {
    const client = await victim();
    client.write(Buffer.concat([Buffer.from('Q'), Buffer.from([0, 0, 0, 100]), Buffer.from('SELECT ')]));
    client.socket.end();
    await client.closed;
    await bystanderStillWorks();
  });

  it(`an oversized message (over max_message_bytes = ${MAX_MESSAGE_BYTES}): FATAL 54000, refused from its header`, async () => {
    const client = await victim();
    // Only the header and a few bytes: the refusal must not wait for the body.
    client.write(Buffer.concat([Buffer.from('Q'), Buffer.from([0, 0, 0x20, 0]), Buffer.from('SELECT ')]));
    const fields = await expectFatal(client);
    expect(fields.C).toBe('54000');
    expect(fields.M).toContain(`exceeds the maximum of ${MAX_MESSAGE_BYTES}`);
    await bystanderStillWorks();
  });

  it('a message just under the limit is fine', async () => {
    const client = await victim();
    try {
      const padding = ' '.repeat(MAX_MESSAGE_BYTES - 64);
      const { rows, error } = await wireQuery(client, `SELECT 'fits'${padding}`);
      expect(error).toBeNull();
      expect(rows).toEqual([['fits']]);
    } finally {
      client.destroy();
    }
  });
});

describe('denials in a transaction', () => {
  async function status(client: WireClient, sql: string): Promise<string> {
    client.write(queryMessage(sql));
    const messages = await client.readUntil('Z');
    return messages.at(-1)!.body.toString('latin1');
  }

  it('a Parse denied inside a transaction block fails the transaction, as a server error would', async () => {
    const { client } = await wireLogin(plain.proxyPort, 'orders-db', dba);
    try {
      expect(await status(client, 'BEGIN')).toBe('T');
      client.write(Buffer.concat([
        serialize.parse({ text: "COPY products TO PROGRAM 'true'" }),
        serialize.bind({}),
        serialize.execute({}),
        serialize.sync(),
      ]));
      const messages = await client.readUntil('Z');
      expect(messages.map((m) => m.type)).toEqual(['E', 'Z']);
      expect(errorFields(messages[0]!.body)).toMatchObject({ S: 'ERROR', C: '42501' });
      expect(messages[1]!.body.toString('latin1')).toBe('E');
      expect(await status(client, 'ROLLBACK')).toBe('I');
    } finally {
      client.destroy();
    }
  });

  it('a Parse denied outside a transaction block leaves the session idle', async () => {
    const { client } = await wireLogin(plain.proxyPort, 'orders-db', dba);
    try {
      client.write(Buffer.concat([serialize.parse({ text: "COPY products TO PROGRAM 'true'" }), serialize.flush()]));
      // Flush alone must bring the denial: the client waits for it before sending Sync.
      const denied = await client.next();
      expect(denied.type).toBe('E');
      expect(errorFields(denied.body).C).toBe('42501');
      client.write(serialize.sync());
      const ready = await client.next();
      expect(ready.type).toBe('Z');
      expect(ready.body.toString('latin1')).toBe('I');
      expect((await wireQuery(client, 'SELECT 3')).rows).toEqual([['3']]);
    } finally {
      client.destroy();
    }
  });
});

describe('prepared statements and portals a session holds', () => {
  /** Sends `messages` (a batch ending in Sync) and reads the answer through ReadyForQuery. */
  async function batch(client: WireClient, ...messages: Buffer[]): Promise<{ types: string[]; error: Record<string, string> | null; status: string }> {
    client.write(Buffer.concat(messages));
    const answer = await client.readUntil('Z');
    const error = answer.find((m) => m.type === 'E');
    return { types: answer.map((m) => m.type), error: error ? errorFields(error.body) : null, status: answer.at(-1)!.body.toString('latin1') };
  }

  const parse = (name: string, text: string): Buffer => serialize.parse({ name, text });
  const closeStatement = (name: string): Buffer => serialize.close({ type: 'S', name });
  /** A portal of statement "one" (SELECT 1), which each portal test prepares. */
  const bind = (portal: string): Buffer => serialize.bind({ portal, statement: 'one' });
  const closePortal = (name: string): Buffer => serialize.close({ type: 'P', name });
  const execute = (portal: string): Buffer => serialize.execute({ portal });

  /** What the server itself holds for the session: a refused Parse must not be there. */
  async function onServer(client: WireClient): Promise<string[]> {
    const { rows, error } = await wireQuery(client, 'SELECT name FROM pg_catalog.pg_prepared_statements ORDER BY name');
    expect(error).toBeNull();
    return rows.map(([name]) => name!);
  }

  it(`refuses a named Parse past max_prepared_statements = ${MAX_PREPARED_STATEMENTS} with 54000; Close and DEALLOCATE free slots`, async () => {
    const { client } = await wireLogin(plain.proxyPort, 'orders-db', dba);
    try {
      expect((await batch(client, parse('s1', 'SELECT 1'), parse('s2', 'SELECT 2'), parse('s3', 'SELECT 3'), serialize.sync())).types).toEqual(['1', '1', '1', 'Z']);

      const refused = await batch(client, parse('s4', 'SELECT 4'), serialize.bind({ statement: 's4' }), serialize.execute({}), serialize.sync());
      expect(refused.types).toEqual(['E', 'Z']);
      expect(refused.error).toMatchObject({ S: 'ERROR', C: '54000' });
      expect(refused.error!.M).toContain(`listeners.postgres.max_prepared_statements (${MAX_PREPARED_STATEMENTS})`);
      expect(refused.error!.M).toContain('DEALLOCATE or Close');
      expect(refused.status).toBe('I');
      // The session goes on, and the refused Parse never reached the server.
      expect(await onServer(client)).toEqual(['s1', 's2', 's3']);

      // The unnamed statement takes no slot, however often it is parsed again.
      for (const n of [5, 6]) {
        expect((await batch(client, parse('', `SELECT ${n}`), serialize.bind({}), serialize.execute({}), serialize.sync())).types).toEqual(['1', '2', 'D', 'C', 'Z']);
      }

      expect((await batch(client, closeStatement('s1'), parse('s4', 'SELECT 4'), serialize.sync())).types).toEqual(['3', '1', 'Z']);
      expect((await wireQuery(client, 'DEALLOCATE s2')).error).toBeNull();
      expect((await batch(client, parse('s5', 'SELECT 5'), serialize.sync())).types).toEqual(['1', 'Z']);
      expect((await batch(client, parse('s6', 'SELECT 6'), serialize.sync())).error).toMatchObject({ C: '54000' });
      expect(await onServer(client)).toEqual(['s3', 's4', 's5']);

      expect((await wireQuery(client, 'DEALLOCATE ALL')).error).toBeNull();
      expect((await batch(client, parse('a', 'SELECT 7'), parse('b', 'SELECT 8'), parse('c', 'SELECT 9'), serialize.sync())).types).toEqual(['1', '1', '1', 'Z']);
      expect((await batch(client, serialize.bind({ statement: 'c' }), serialize.execute({}), serialize.sync())).types).toEqual(['2', 'D', 'C', 'Z']);
      // A Parse of a name already held takes no new slot; the server refuses it (42P05), and the slot is still c's alone.
      expect((await batch(client, parse('c', 'SELECT 10'), serialize.sync())).error).toMatchObject({ C: '42P05' });
      expect((await batch(client, parse('d', 'SELECT 11'), serialize.sync())).error).toMatchObject({ C: '54000' });
      expect(await onServer(client)).toEqual(['a', 'b', 'c']);
    } finally {
      client.destroy();
    }
  });

  it(`refuses a Parse that would hold more than max_prepared_statement_bytes = ${MAX_PREPARED_STATEMENT_BYTES} of SQL; the unnamed statement counts once`, async () => {
    const sized = (bytes: number): string => {
      const head = "SELECT '";
      return `${head}${'x'.repeat(bytes - head.length - 1)}'`;
    };
    const { client } = await wireLogin(plain.proxyPort, 'orders-db', dba);
    try {
      expect((await batch(client, parse('big1', sized(1200)), serialize.sync())).types).toEqual(['1', 'Z']);

      const refused = await batch(client, parse('big2', sized(1000)), serialize.sync());
      expect(refused.types).toEqual(['E', 'Z']);
      expect(refused.error).toMatchObject({ S: 'ERROR', C: '54000' });
      expect(refused.error!.M).toContain(`listeners.postgres.max_prepared_statement_bytes (${MAX_PREPARED_STATEMENT_BYTES})`);
      expect(refused.error!.M).toContain('DEALLOCATE or Close');
      expect(await onServer(client)).toEqual(['big1']);

      // Each unnamed Parse replaces the one before: three of 700 bytes fit beside big1, one at a time.
      for (let i = 0; i < 3; i++) {
        expect((await batch(client, parse('', sized(700)), serialize.bind({}), serialize.execute({}), serialize.sync())).types).toEqual(['1', '2', 'D', 'C', 'Z']);
      }

      expect((await batch(client, closeStatement('big1'), parse('big2', sized(1000)), serialize.sync())).types).toEqual(['3', '1', 'Z']);
      expect(await onServer(client)).toEqual(['big2']);
    } finally {
      client.destroy();
    }
  });

  it(`refuses a Bind of a named portal past max_portals = ${MAX_PORTALS} with 54000; Close and the end of the transaction free slots`, async () => {
    const { client } = await wireLogin(plain.proxyPort, 'orders-db', dba);
    try {
      expect((await batch(client, parse('one', 'SELECT 1'), serialize.sync())).types).toEqual(['1', 'Z']);
      // In a transaction, portals outlive their batch. The unnamed portal takes no slot.
      expect((await wireQuery(client, 'BEGIN')).error).toBeNull();
      expect((await batch(client, bind('p1'), bind('p2'), bind('p3'), bind(''), execute(''), serialize.sync())).types).toEqual(['2', '2', '2', '2', 'D', 'C', 'Z']);
      expect((await batch(client, closePortal('p1'), bind('p4'), execute('p4'), serialize.sync())).types).toEqual(['3', '2', 'D', 'C', 'Z']);

      const refused = await batch(client, bind('p5'), execute('p5'), serialize.sync());
      expect(refused.types).toEqual(['E', 'Z']);
      expect(refused.error).toMatchObject({ S: 'ERROR', C: '54000' });
      expect(refused.error!.M).toContain(`listeners.postgres.max_portals (${MAX_PORTALS})`);
      expect(refused.error!.M).toContain('Close portals no longer used, or end the transaction');
      // The refusal fails the transaction, as any error does; the session goes on, and the end of the
      // transaction drops its portals.
      expect(refused.status).toBe('E');
      expect((await wireQuery(client, 'ROLLBACK')).error).toBeNull();
      expect((await batch(client, bind('q1'), bind('q2'), bind('q3'), execute('q3'), serialize.sync())).types).toEqual(['2', '2', '2', 'D', 'C', 'Z']);
      // Outside a transaction, each batch is one: its Sync ends it.
      expect((await batch(client, bind('q4'), bind('q5'), bind('q6'), execute('q6'), serialize.sync())).types).toEqual(['2', '2', '2', 'D', 'C', 'Z']);
      expect((await batch(client, bind('r1'), bind('r2'), bind('r3'), bind('r4'), serialize.sync())).types).toEqual(['2', '2', '2', 'E', 'Z']);
    } finally {
      client.destroy();
    }
  });

  it(`holds the names of a session's portals to max_prepared_statement_bytes = ${MAX_PREPARED_STATEMENT_BYTES}`, async () => {
    const { client } = await wireLogin(plain.proxyPort, 'orders-db', dba);
    try {
      expect((await batch(client, parse('one', 'SELECT 1'), serialize.sync())).types).toEqual(['1', 'Z']);
      expect((await wireQuery(client, 'BEGIN')).error).toBeNull();
      expect((await batch(client, bind('n'.repeat(1500)), serialize.sync())).types).toEqual(['2', 'Z']);
      const refused = await batch(client, bind('m'.repeat(600)), serialize.sync());
      expect(refused.error).toMatchObject({ S: 'ERROR', C: '54000' });
      expect(refused.error!.M).toContain(`portals would hold 2100 bytes of names, over listeners.postgres.max_prepared_statement_bytes (${MAX_PREPARED_STATEMENT_BYTES})`);
      expect((await wireQuery(client, 'ROLLBACK')).error).toBeNull();
      expect((await batch(client, bind('m'.repeat(600)), execute('m'.repeat(600)), serialize.sync())).types).toEqual(['2', 'D', 'C', 'Z']);
    } finally {
      client.destroy();
    }
  });

  it('forgets portals when their transaction ends, but not those of Binds sent behind its Sync', async () => {
    const { client } = await wireLogin(plain.proxyPort, 'orders-db', dba);
    try {
      expect((await batch(client, parse('one', 'SELECT 1'), parse('begin', 'BEGIN'), serialize.sync())).types).toEqual(['1', '1', 'Z']);
      // One write: the gateway has b1's Bind (a batch that begins a transaction) before the first batch's ReadyForQuery.
      client.write(Buffer.concat([
        bind('a1'), execute('a1'), serialize.sync(),
        serialize.bind({ statement: 'begin' }), execute(''), bind('b1'), serialize.sync(),
      ]));
      const first = await client.readUntil('Z');
      expect(first.map((m) => m.type)).toEqual(['2', 'D', 'C', 'Z']);
      expect(first.at(-1)!.body.toString('latin1')).toBe('I');
      const second = await client.readUntil('Z');
      expect(second.map((m) => m.type)).toEqual(['2', 'C', '2', 'Z']);
      expect(second.at(-1)!.body.toString('latin1')).toBe('T');

      // b1 is live on the server, and the gateway kept it; a1 ended with its batch, and the gateway forgot it.
      expect((await batch(client, execute('b1'), serialize.sync())).types).toEqual(['D', 'C', 'Z']);
      const gone = await batch(client, execute('a1'), serialize.sync());
      expect(gone.error!.M).toContain('portal "a1" was not bound through the extended protocol');
      expect((await wireQuery(client, 'ROLLBACK')).error).toBeNull();
      expect((await batch(client, execute('b1'), serialize.sync())).error!.M).toContain('portal "b1" was not bound through the extended protocol');
    } finally {
      client.destroy();
    }
  });
});

describe('backpressure', () => {
  it('a client that stops reading makes the database wait, not the gateway hold the rows', async () => {
    // About 1 GB of rows: more than the gateway could hold for one slow client.
    const sql = "SELECT repeat('x', 100000) AS filler FROM generate_series(1, 10000)";
    const wire = await PipelineClient.connect({ host: '127.0.0.1', port: plain.proxyPort, user: 'orders-db', database: 'orders', password: dba });
    try {
      wire.pause();
      wire.send(serialize.query(sql));
      // The server blocks writing to the gateway (ClientWrite) and stays blocked: the gateway stopped reading it.
      let blocked = 0;
      await waitFor(async () => {
        const { rows } = await direct.query<{ wait_event: string | null }>('SELECT wait_event FROM pg_stat_activity WHERE query = $1', [sql]);
        blocked = rows[0]?.wait_event === 'ClientWrite' ? blocked + 1 : 0;
        return blocked >= 25;
      }, 'the server to wait on the gateway', 30_000);
      const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${plain.serve.pid}/status`, 'utf8'))![1]) * 1024;
      expect(rss).toBeLessThan(512 * 1024 * 1024);
    } finally {
      wire.destroy();
    }
    // The client gone, so is the statement.
    await waitFor(async () => (await direct.query('SELECT 1 FROM pg_stat_activity WHERE query = $1', [sql])).rowCount === 0, 'the statement to end with its client');
  });
});

describe('cancel keys', () => {
  const active = `SELECT count(*) AS n FROM pg_stat_activity WHERE query = $1 AND state = 'active'`;

  async function running(sql: string): Promise<void> {
    await waitFor(async () => Number((await direct.query<{ n: string }>(active, [sql])).rows[0]!.n) === 1, `${sql} to run upstream`);
  }

  /** Sends a CancelRequest on a connection of its own; the gateway closes it when handled. */
  async function sendCancel(processId: number, secretKey: number): Promise<void> {
    const client = await WireClient.connect(plain.proxyPort);
    client.write(cancelRequestPacket(processId, secretKey));
    await client.closed;
  }

  it('hands out its own BackendKeyData, not the upstream backend\'s', async () => {
    const session = await wireLogin(plain.proxyPort, 'orders-db', dba);
    try {
      const { rows } = await wireQuery(session.client, 'SELECT pg_backend_pid()');
      const upstreamPid = Number(rows[0]![0]);
      expect(upstreamPid).toBeGreaterThan(0);
      expect(session.processId).not.toBe(upstreamPid);
      const other = await wireLogin(plain.proxyPort, 'orders-db', dba);
      expect([other.processId, other.secretKey]).not.toEqual([session.processId, session.secretKey]);
      other.client.destroy();
    } finally {
      session.client.destroy();
    }
  });

  it('a wrong secret cancels nothing; the right key cancels the running query', async () => {
    const victim = await wireLogin(plain.proxyPort, 'orders-db', dba);
    const other = await wireLogin(plain.proxyPort, 'orders-db', dba);
    try {
      const short = 'SELECT pg_sleep(2) AS wrong_key';
      const shortDone = wireQuery(victim.client, short);
      await running(short);
      await sendCancel(victim.processId, victim.secretKey ^ 1); // right process id, wrong secret
      await sendCancel(other.processId, victim.secretKey); // another session's id with this secret
      await sendCancel(victim.processId, other.secretKey); // this id with another session's secret
      const completed = await shortDone;
      expect(completed.error).toBeNull();
      expect(completed.rows).toEqual([['']]);

      const long = 'SELECT pg_sleep(30) AS right_key';
      const longDone = wireQuery(victim.client, long);
      await running(long);
      await sendCancel(victim.processId, victim.secretKey);
      const cancelled = await longDone;
      expect(cancelled.error).toMatchObject({ C: '57014', M: 'canceling statement due to user request' });
      expect(Number((await direct.query<{ n: string }>(active, [long])).rows[0]!.n)).toBe(0);

      // Both sessions go on.
      expect((await wireQuery(victim.client, 'SELECT 1')).rows).toEqual([['1']]);
      expect((await wireQuery(other.client, 'SELECT 2')).rows).toEqual([['2']]);
    } finally {
      victim.client.destroy();
      other.client.destroy();
    }
  });
});

/** A FunctionCall ('F') of `oid` with text arguments and a text result. */
function functionCall(oid: number, args: string[]): Buffer {
  const parts = [Buffer.alloc(4), Buffer.from([0, 1, 0, 0]), Buffer.alloc(2)];
  parts[0]!.writeInt32BE(oid);
  parts[2]!.writeInt16BE(args.length);
  for (const arg of args) {
    const value = Buffer.from(arg, 'utf8');
    const length = Buffer.alloc(4);
    length.writeInt32BE(value.length);
    parts.push(length, value);
  }
  parts.push(Buffer.from([0, 0]));
  return frontendMessage('F', Buffer.concat(parts));
}

describe('a session whose token expires', () => {
  it('runs no prepared statement after exp: a Bind or Execute ends the session with 28P01', async () => {
    for (const after of [
      [serialize.bind({}), serialize.execute({}), serialize.sync()],
      // A portal bound in time, executed late.
      [serialize.execute({ portal: 'p' }), serialize.sync()],
    ]) {
      const shortLived = devToken(plain.config, 'ann', ['analysts'], { ttl: '2s' });
      const session = await wireLogin(plain.proxyPort, 'orders-db', shortLived);
      try {
        session.client.write(Buffer.concat([serialize.parse({ text: 'SELECT 42 AS answer' }), serialize.bind({ portal: 'p' }), serialize.sync()]));
        // (An analyst's session is put in read-only mode first: its ParameterStatus may come along.)
        expect((await session.client.readUntil('Z')).map((m) => m.type).filter((t) => t !== 'S')).toEqual(['1', '2', 'Z']);
        await new Promise((resolve) => setTimeout(resolve, 2500));
        session.client.write(Buffer.concat(after));
        const fields = await expectFatal(session.client);
        expect(fields).toMatchObject({ C: '28P01' });
        expect(fields.M).toContain('reconnect with a fresh token');
      } finally {
        session.client.destroy();
      }
    }
  });
});

describe('FunctionCall', () => {
  it('is decided like a statement calling that function, named from its OID', async () => {
    const { rows } = await direct.query<{ oid: number }>(`SELECT 'pg_catalog.int4pl(int4, int4)'::regprocedure::oid::int AS oid`);
    const add = rows[0]!.oid;

    const writer = await wireLogin(plain.proxyPort, 'orders-db', dba);
    writer.client.write(functionCall(add, ['2', '40']));
    const answer = await writer.client.readUntil('Z');
    expect(answer.map((m) => m.type)).toEqual(['V', 'Z']);
    const result = answer[0]!.body;
    expect(result.toString('utf8', 4, 4 + result.readInt32BE(0))).toBe('42');
    writer.client.destroy();

    // A FunctionCall can run anything, so it is not read-only: an analyst is denied, and the session goes on.
    const reader = await wireLogin(plain.proxyPort, 'orders-db', analyst);
    reader.client.write(functionCall(add, ['2', '40']));
    const denied = await reader.client.readUntil('Z');
    expect(denied.map((m) => m.type)).toEqual(['E', 'Z']);
    const fields = errorFields(denied[0]!.body);
    expect(fields.C).toBe('42501');
    expect(fields.M).toMatch(/read-only access to orders-db; FUNCTION CALL is not read-only/);
    expect((await wireQuery(reader.client, 'SELECT 1')).rows).toEqual([['1']]);
    reader.client.destroy();
  });
});
