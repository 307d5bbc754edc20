/**
 * Raw PostgreSQL wire-protocol bytes for tests of the proxy's client side:
 * startup and request packets, frontend messages, and a socket reader that
 * returns whole backend messages (or single bytes, for the one-byte answers
 * to SSLRequest and GSSENCRequest).
 *
 * NOTE: reconstructed from its uses in tests/integration/pg-proxy-protocol.test.ts
 * after the original was overwritten by mistake by another session; the API is the
 * one that test uses.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;

export interface WireMessage {
  /** The type byte as a character ('R', 'E', 'Z', …). */
  type: string;
  /** The message after its type byte and length. */
  body: Buffer;
}

/** A StartupMessage: protocol version, then name/value pairs. */
export function startupPacket(parameters: Record<string, string>, version: { major: number; minor: number } = { major: 3, minor: 0 }): Buffer {
  const pairs = Object.entries(parameters).flatMap(([k, v]) => [Buffer.from(`${k}\0`), Buffer.from(`${v}\0`)]);
  const body = Buffer.concat([...pairs, Buffer.from([0])]);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt16BE(version.major, 4);
  head.writeInt16BE(version.minor, 6);
  return Buffer.concat([head, body]);
}

/** An 8-byte request packet (SSLRequest, GSSENCRequest). */
export function requestPacket(code: number): Buffer {
  const packet = Buffer.alloc(8);
  packet.writeInt32BE(8, 0);
  packet.writeInt32BE(code, 4);
  return packet;
}

export function cancelRequestPacket(processId: number, secretKey: number): Buffer {
  const packet = Buffer.alloc(16);
  packet.writeInt32BE(16, 0);
  packet.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  packet.writeInt32BE(processId, 8);
  packet.writeInt32BE(secretKey, 12);
  return packet;
}

/** A typed frontend message: type byte, Int32 length, body. */
export function frontendMessage(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

export function passwordMessage(password: string): Buffer {
  return frontendMessage('p', Buffer.from(`${password}\0`));
}

export function queryMessage(sql: string): Buffer {
  return frontendMessage('Q', Buffer.from(`${sql}\0`));
}

/** The fields of an ErrorResponse or NoticeResponse by their one-letter codes (C, M, S, …). */
export function errorFields(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length && body[pos] !== 0) {
    const end = body.indexOf(0, pos + 1);
    if (end === -1) break;
    fields[String.fromCharCode(body[pos]!)] = body.toString('utf8', pos + 1, end);
    pos = end + 1;
  }
  return fields;
}

export class WireClient {
  /** Resolves when the connection has closed. */
  readonly closed: Promise<void>;
  private buffer = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | null = null;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.notify();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.once('close', () => {
      this.ended = true;
      this.notify();
      resolve();
    }));
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<WireClient> {
    const socket = connect({ host, port });
    await once(socket, 'connect');
    return new WireClient(socket);
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** One byte, as a character (the answer to SSLRequest or GSSENCRequest). */
  async readByte(): Promise<string> {
    await this.waitFor(1);
    const byte = String.fromCharCode(this.buffer[0]!);
    this.buffer = this.buffer.subarray(1);
    return byte;
  }

  /** The next whole backend message. */
  async next(): Promise<WireMessage> {
    await this.waitFor(5);
    const length = this.buffer.readInt32BE(1);
    await this.waitFor(1 + length);
    const message = { type: String.fromCharCode(this.buffer[0]!), body: Buffer.from(this.buffer.subarray(5, 1 + length)) };
    this.buffer = this.buffer.subarray(1 + length);
    return message;
  }

  /** Messages up to and including the first of `type`. */
  async readUntil(type: string): Promise<WireMessage[]> {
    const messages: WireMessage[] = [];
    for (;;) {
      const message = await this.next();
      messages.push(message);
      if (message.type === type) return messages;
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private async waitFor(bytes: number): Promise<void> {
    while (this.buffer.length < bytes) {
      if (this.ended) throw new Error(`the connection closed with ${this.buffer.length} of ${bytes} expected byte(s) unread`);
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

export interface WireSession {
  client: WireClient;
  processId: number;
  secretKey: number;
}

/** Logs in to database "orders" as `user` with `token` as the password; resolves at ReadyForQuery. */
export async function wireLogin(port: number, user: string, token: string, database = 'orders'): Promise<WireSession> {
  const client = await WireClient.connect(port);
  client.write(startupPacket({ user, database }));
  let processId = 0;
  let secretKey = 0;
  for (;;) {
    const message = await client.next();
    if (message.type === 'E') {
      client.destroy();
      throw new Error(`login failed: ${errorFields(message.body).M}`);
    }
    if (message.type === 'R' && message.body.readInt32BE(0) === 3) client.write(passwordMessage(token));
    if (message.type === 'K') {
      processId = message.body.readInt32BE(0);
      secretKey = message.body.readInt32BE(4);
    }
    if (message.type === 'Z') return { client, processId, secretKey };
  }
}

/** A simple Query: its rows as text (null for NULL) and its first error's fields, read through ReadyForQuery. */
export async function wireQuery(client: WireClient, sql: string): Promise<{ rows: (string | null)[][]; error: Record<string, string> | null; messages: WireMessage[] }> {
  client.write(queryMessage(sql));
  const messages = await client.readUntil('Z');
  const rows: (string | null)[][] = [];
  let error: Record<string, string> | null = null;
  for (const message of messages) {
    if (message.type === 'E' && !error) error = errorFields(message.body);
    if (message.type !== 'D') continue;
    const count = message.body.readInt16BE(0);
    const row: (string | null)[] = [];
    let pos = 2;
    for (let i = 0; i < count; i++) {
      const length = message.body.readInt32BE(pos);
      pos += 4;
      if (length < 0) {
        row.push(null);
        continue;
      }
      row.push(message.body.toString('utf8', pos, pos + length));
      pos += length;
    }
    rows.push(row);
  }
  return { rows, error, messages };
}
