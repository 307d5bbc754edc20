/**
 * A bare PostgreSQL wire client for tests that must see what node-postgres
 * hides: several extended-protocol messages before one Sync (a pipeline),
 * the exact bytes of binary-format columns (node-postgres decodes every
 * field as UTF-8, node-postgres#3495), ParameterStatus messages, and the
 * transaction status byte of each ReadyForQuery. Messages are built with
 * pg-protocol's serializer; backend messages are split by length and left
 * as bytes, decoded only by the small readers below.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { serialize } from 'pg-protocol';

export interface PgMessage {
  /** The type byte as a character: 'Z' ReadyForQuery, 'E' ErrorResponse, 'D' DataRow, … */
  type: string;
  /** The message without its type byte and length. */
  body: Buffer;
}

export interface PipelineLogin {
  host: string;
  port: number;
  user: string;
  database: string;
  /** Sent when the server asks for a cleartext password (the proxy: the JWT). */
  password?: string;
}

export class PipelineClient {
  processId = 0;
  secretKey = 0;
  readonly parameters = new Map<string, string>();
  private readonly inbox: PgMessage[] = [];
  private buffered = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= 5) {
        const end = 1 + this.buffered.readInt32BE(1);
        if (this.buffered.length < end) break;
        const message = { type: String.fromCharCode(this.buffered[0]!), body: Buffer.from(this.buffered.subarray(5, end)) };
        this.buffered = this.buffered.subarray(end);
        if (message.type === 'S') {
          // Asynchronous by protocol (the server may send one at any time): kept in `parameters`, not in the answers.
          const [name, value] = cstrings(message.body);
          this.parameters.set(name!, value!);
          continue;
        }
        this.inbox.push(message);
      }
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  /** Logs in (trust or cleartext password) and returns once the server is ready for queries. */
  static async connect(login: PipelineLogin): Promise<PipelineClient> {
    const socket = connect({ host: login.host, port: login.port });
    await once(socket, 'connect');
    const client = new PipelineClient(socket);
    client.send(serialize.startup({ user: login.user, database: login.database }));
    for (;;) {
      const message = await client.next();
      if (message.type === 'E') throw new Error(`login failed: ${errorFields(message.body).M}`);
      if (message.type === 'R') {
        const kind = message.body.readInt32BE(0);
        if (kind === 3) client.send(serialize.password(login.password ?? ''));
        else if (kind !== 0) throw new Error(`PipelineClient supports trust and cleartext password only (authentication request ${kind})`);
      }
      if (message.type === 'K') {
        client.processId = message.body.readInt32BE(0);
        client.secretKey = message.body.readInt32BE(4);
      }
      if (message.type === 'Z') return client;
    }
  }

  send(...messages: Buffer[]): void {
    this.socket.write(Buffer.concat(messages));
  }

  /** Stops reading from the socket, as a client too slow to keep up would. */
  pause(): void {
    this.socket.pause();
  }

  /** Drops the connection without a Terminate, as a client that goes away does. */
  destroy(): void {
    this.socket.destroy();
  }

  /** The next backend message, whatever it is. */
  async next(): Promise<PgMessage> {
    for (;;) {
      const message = this.inbox.shift();
      if (message) return message;
      if (this.closed) throw new Error('the server closed the connection');
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
  }

  /** Every message up to and including the next one of `type` (default: ReadyForQuery). */
  async until(type = 'Z'): Promise<PgMessage[]> {
    const messages: PgMessage[] = [];
    for (;;) {
      const message = await this.next();
      messages.push(message);
      if (message.type === type) return messages;
    }
  }

  async end(): Promise<void> {
    if (this.closed) return;
    this.socket.end(serialize.end());
    await once(this.socket, 'close');
  }
}

/** The fields of an ErrorResponse or NoticeResponse, by their one-letter codes (C: SQLSTATE, M: message, …). */
export function errorFields(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const end = body.indexOf(0, pos + 1);
    fields[String.fromCharCode(body[pos]!)] = body.toString('utf8', pos + 1, end);
    pos = end + 1;
  }
  return fields;
}

/** A DataRow's fields as raw bytes (null for SQL NULL), without any decoding. */
export function dataRowFields(body: Buffer): (Buffer | null)[] {
  const count = body.readInt16BE(0);
  const fields: (Buffer | null)[] = [];
  let pos = 2;
  for (let i = 0; i < count; i++) {
    const length = body.readInt32BE(pos);
    pos += 4;
    if (length < 0) {
      fields.push(null);
      continue;
    }
    fields.push(Buffer.from(body.subarray(pos, pos + length)));
    pos += length;
  }
  return fields;
}

/** RowDescription: each column's name, table OID, attribute number, type OID and format code. */
export function rowDescription(body: Buffer): { name: string; tableOid: number; column: number; typeOid: number; format: number }[] {
  const count = body.readInt16BE(0);
  const columns = [];
  let pos = 2;
  for (let i = 0; i < count; i++) {
    const end = body.indexOf(0, pos);
    const name = body.toString('utf8', pos, end);
    pos = end + 1;
    columns.push({ name, tableOid: body.readUInt32BE(pos), column: body.readInt16BE(pos + 4), typeOid: body.readUInt32BE(pos + 6), format: body.readInt16BE(pos + 16) });
    pos += 18;
  }
  return columns;
}

/** The transaction status a ReadyForQuery reports: I (idle), T (in a transaction block) or E (failed block). */
export function readyStatus(message: PgMessage): string {
  if (message.type !== 'Z') throw new Error(`expected ReadyForQuery, got ${message.type}`);
  return String.fromCharCode(message.body[0]!);
}

/** CommandComplete's tag ("SELECT 3", "UPDATE 1"). */
export function commandTag(body: Buffer): string {
  return body.toString('utf8', 0, body.indexOf(0));
}

/** Parse, Bind, Execute of one statement (unnamed statement and portal), with result columns in `format`. */
export function extendedStatement(text: string, values: (string | null)[] = [], format: 'text' | 'binary' = 'text'): Buffer[] {
  return [
    serialize.parse({ text }),
    serialize.bind({ values, binary: format === 'binary' }),
    serialize.describe({ type: 'P', name: '' }),
    serialize.execute(),
  ];
}

/** A CancelRequest with the key a client got in BackendKeyData; resolves once the receiver has hung up. */
export async function sendCancel(host: string, port: number, processId: number, secretKey: number): Promise<void> {
  const socket = connect({ host, port });
  await once(socket, 'connect');
  socket.end(serialize.cancel(processId, secretKey));
  socket.resume();
  await once(socket, 'close');
}

function cstrings(body: Buffer): string[] {
  return body.toString('utf8').split('\0').slice(0, -1);
}
