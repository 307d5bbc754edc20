/**
 * The relay's last line of defence against being out of step with the
 * server: an answer that cannot belong to what it is waiting for (rows for
 * a Sync, say) ends the session instead of passing rows past their mask
 * plan. Real sockets on both sides; the "server" is this test.
 */
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { serialize } from 'pg-protocol';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { LiteralSettings } from '../../proxies/postgres/session/literal-settings.js';
import { Relay } from '../../proxies/postgres/session/relay.js';
import { readyForQuery } from '../../proxies/postgres/protocol/backend-writer.js';

/** Two connected sockets. */
async function socketPair(server: Server): Promise<[Socket, Socket]> {
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const { port } = server.address() as { port: number };
  const near = connect(port, '127.0.0.1');
  await once(near, 'connect');
  const [far] = await accepted;
  return [near, far];
}

/** A DataRow ('D') of one text value. */
function dataRow(value: string): Buffer {
  const field = Buffer.from(value);
  const body = Buffer.alloc(2 + 4 + field.length);
  body.writeInt16BE(1, 0);
  body.writeInt32BE(field.length, 2);
  field.copy(body, 6);
  const head = Buffer.alloc(5);
  head[0] = 0x44;
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

let server: Server | null = null;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = null;
});

/** A relay between an "agent" socket and a "database" socket, both driven by the test. */
async function relayBetween(maxServerMessageBytes = 1024 * 1024) {
  server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const [agent, relayClient] = await socketPair(server);
  const [relayUpstream, database] = await socketPair(server);
  sockets.push(agent, relayClient, relayUpstream, database);
  const ended: string[] = [];
  const relay = new Relay(relayClient, relayUpstream, {
    decider: {} as never,
    catalog: {} as never,
    columnHistory: () => ({}) as never,
    hashKey: Buffer.alloc(32),
    logger: pino({ level: 'silent' }),
    statusUrl: (id) => id,
    onStatement: () => undefined,
    cancelUpstream: () => undefined,
    onEnd: (reason) => ended.push(reason),
    expiresAtMs: null,
    onExpired: async () => undefined,
    settings: new LiteralSettings(),
    maxServerMessageBytes,
    preparedStatementLimits: { maxNamed: 10_000, maxBytes: 64 * 1024 * 1024 },
    portalLimits: { maxNamed: 10_000, maxBytes: 64 * 1024 * 1024 },
    maxSqlNames: 10_000,
  });
  const received: Buffer[] = [];
  agent.on('data', (chunk: Buffer) => received.push(chunk));
  return { relay, agent, database, relayUpstream, ended, received };
}

describe('Relay: answers out of step', () => {
  it('ends the session when rows come for a Sync, and passes none of them', async () => {
    const { relay, database, relayUpstream, ended, received } = await relayBetween();

    const sync = serialize.sync();
    await relay.fromClient({ type: 'sync' }, sync);
    // The server answers the Sync with rows it owes someone else, as if an earlier message had been ignored.
    database.write(Buffer.concat([dataRow('078-05-1120'), readyForQuery('I')]));
    await once(relayUpstream, 'close', { signal: AbortSignal.timeout(5000) });
    await new Promise((resolve) => setTimeout(resolve, 50));

    expect(ended).toEqual(['the database answered what the proxy did not ask']);
    const sent = Buffer.concat(received).toString('latin1');
    expect(sent).not.toContain('078-05-1120');
    expect(sent).toContain('gatehouse ends the session: the database answered a message the gateway did not send it');
  });
});

describe('Relay: messages from the database over max_server_message_bytes', () => {
  it('ends the session from the message header, with a FATAL naming the limit, and holds none of the message', async () => {
    const { relay, database, relayUpstream, ended, received } = await relayBetween(64 * 1024);
    await relay.fromClient({ type: 'sync' }, serialize.sync());
    // A DataRow declaring 100 MB: only its first bytes are ever sent.
    const head = Buffer.alloc(5);
    head[0] = 0x44;
    head.writeInt32BE(100 * 1024 * 1024, 1);
    database.write(Buffer.concat([head, Buffer.from('078-05-1120')]));
    await once(relayUpstream, 'close', { signal: AbortSignal.timeout(5000) });
    await new Promise((resolve) => setTimeout(resolve, 50));

    expect(ended).toEqual(['a message from the database was over max_server_message_bytes']);
    const sent = Buffer.concat(received).toString('latin1');
    expect(sent).toContain('54000');
    expect(sent).toContain('the database sent a D message of 104857600 bytes, over the gateway\'s limit of 65536');
    expect(sent).toContain('max_server_message_bytes');
    expect(sent).not.toContain('078-05-1120');
  });
});
