/**
 * Incremental parser for PostgreSQL frontend messages (what clients send),
 * organised like pg-protocol's backend `Parser`: fed Buffers as they arrive,
 * split anywhere, it calls back once per complete message.
 *
 * Two phases. A connection opens in the startup phase: a length-prefixed
 * packet with no type byte (StartupMessage, SSLRequest, GSSENCRequest,
 * CancelRequest). After a StartupMessage, messages carry a type byte.
 *
 * Every malformation throws a FrontendProtocolError carrying a SQLSTATE, the
 * proxy sends it as one FATAL ErrorResponse and closes that connection. After
 * an error the parser stays failed: every later call throws the same error.
 * Lengths are checked against the limits as soon as the header arrives, so an
 * oversized message is refused before any of its body is buffered.
 *
 * Copying: a chunk holding whole messages is parsed in place. Only an
 * incomplete tail is kept, as a view, until enough bytes have arrived for the
 * next header or the whole next message; then the pieces are concatenated
 * once. The parser never writes into a buffer, so Buffers in emitted messages
 * (Bind values, CopyData, …) stay valid as long as the caller does not reuse
 * the chunks it fed in (sockets hand out fresh chunks).
 */
import { isUtf8 } from 'node:buffer';
import {
  CANCEL_REQUEST_CODE, FrontendProtocolError, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE,
  type AuthenticationResponse, type FormatCode, type FrontendMessage, type RegularMessage, type StartupPhaseMessage,
} from './frontend-messages.js';
import { PendingBytes } from './pending-bytes.js';

export { FrontendProtocolError } from './frontend-messages.js';

/** Default bound on a regular message's length field (which counts itself, not the type byte). */
export const DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024;
/** PostgreSQL's own bound on a startup packet (MAX_STARTUP_PACKET_LENGTH). */
export const DEFAULT_MAX_STARTUP_SIZE = 10_000;
/** Protocol 3.2 allows cancel keys up to 256 bytes; 3.0 sends 4. */
const MAX_CANCEL_KEY = 256;

export interface FrontendParserOptions {
  /** Largest accepted length field of a regular message, in bytes. */
  maxMessageSize?: number;
  /** Largest accepted startup-phase packet, in bytes. */
  maxStartupSize?: number;
}

export type FrontendPhase = 'startup' | 'regular' | 'cancel';
/** `raw` is the whole message as sent (type byte and length included), for forwarding it unchanged. */
export type FrontendMessageCallback = (message: FrontendMessage, raw: Buffer) => void;

const NAMES: Record<number, string> = {
  0x51: 'Query', 0x50: 'Parse', 0x42: 'Bind', 0x44: 'Describe', 0x45: 'Execute', 0x53: 'Sync', 0x48: 'Flush',
  0x43: 'Close', 0x58: 'Terminate', 0x70: 'password/SASL', 0x46: 'FunctionCall', 0x64: 'CopyData',
  0x63: 'CopyDone', 0x66: 'CopyFail',
};
/** Type byte → known, as a flat table for the hot loop. */
const KNOWN = new Uint8Array(256);
for (const code of Object.keys(NAMES)) KNOWN[Number(code)] = 1;

const violation = (message: string) => new FrontendProtocolError(message, '08P01');

function describeByte(byte: number): string {
  return byte >= 0x20 && byte < 0x7f ? `'${String.fromCharCode(byte)}' (0x${byte.toString(16).padStart(2, '0')})` : `0x${byte.toString(16).padStart(2, '0')}`;
}

/** UTF-8 text, strictly: Node's decoder replaces bad sequences with U+FFFD, so only then is the full check needed. */
function utf8(buf: Buffer, start: number, end: number, what: string): string {
  const text = buf.toString('utf8', start, end);
  if (text.includes('\uFFFD') && !isUtf8(buf.subarray(start, end))) {
    throw new FrontendProtocolError(`${what} is not valid UTF-8`, '22021');
  }
  return text;
}

/**
 * A cursor over one message body [pos, end). One per parser, reset per
 * message, so reading allocates nothing but the results.
 */
class Cursor {
  buf: Buffer = Buffer.alloc(0);
  pos = 0;
  end = 0;
  what = '';

  reset(buf: Buffer, pos: number, end: number, what: string): this {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
    this.what = what;
    return this;
  }

  private need(bytes: number, field: string): void {
    if (this.end - this.pos < bytes) throw violation(`${this.what} message: ${field} runs past the end of the message`);
  }

  cstring(field: string): string {
    const nul = this.buf.indexOf(0, this.pos);
    if (nul === -1 || nul >= this.end) throw violation(`${this.what} message: ${field} has no NUL terminator within the message`);
    const text = nul === this.pos ? '' : utf8(this.buf, this.pos, nul, `${this.what} message: ${field}`);
    this.pos = nul + 1;
    return text;
  }

  byte(field: string): number {
    this.need(1, field);
    return this.buf[this.pos++]!;
  }

  int16(field: string): number {
    this.need(2, field);
    const value = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return value;
  }

  int32(field: string): number {
    this.need(4, field);
    const value = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return value;
  }

  uint32(field: string): number {
    this.need(4, field);
    const value = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return value;
  }

  /** A count whose items take at least `itemSize` bytes each: negative or not fitting is an error. */
  count(field: string, itemSize: number): number {
    const n = this.int16(field);
    if (n < 0) throw violation(`${this.what} message: ${field} is negative (${n})`);
    if (n * itemSize > this.end - this.pos) throw violation(`${this.what} message: ${field} (${n}) does not fit in the message`);
    return n;
  }

  format(field: string): FormatCode {
    const code = this.int16(field);
    if (code !== 0 && code !== 1) throw violation(`${this.what} message: ${field} is ${code}, must be 0 (text) or 1 (binary)`);
    return code;
  }

  formats(field: string): FormatCode[] {
    const n = this.count(`${field} count`, 2);
    const out = new Array<FormatCode>(n);
    for (let i = 0; i < n; i++) out[i] = this.format(field);
    return out;
  }

  /** Length-prefixed values (Bind parameters, FunctionCall arguments); -1 is NULL. */
  values(field: string): (Buffer | null)[] {
    const n = this.count(`${field} count`, 4);
    const out = new Array<Buffer | null>(n);
    for (let i = 0; i < n; i++) {
      const length = this.int32(`${field} ${i + 1} length`);
      if (length === -1) {
        out[i] = null;
        continue;
      }
      if (length < 0) throw violation(`${this.what} message: ${field} ${i + 1} has invalid length ${length}`);
      this.need(length, `${field} ${i + 1}`);
      out[i] = this.buf.subarray(this.pos, this.pos + length);
      this.pos += length;
    }
    return out;
  }

  target(field: string): 'S' | 'P' {
    const byte = this.byte(field);
    if (byte === 0x53) return 'S';
    if (byte === 0x50) return 'P';
    throw violation(`${this.what} message: ${field} is ${describeByte(byte)}, must be 'S' or 'P'`);
  }

  rest(): Buffer {
    const out = this.buf.subarray(this.pos, this.end);
    this.pos = this.end;
    return out;
  }

  done(): void {
    if (this.pos !== this.end) throw violation(`${this.what} message has ${this.end - this.pos} unexpected trailing byte(s)`);
  }
}

export class FrontendParser {
  readonly maxMessageSize: number;
  readonly maxStartupSize: number;

  private phaseNow: FrontendPhase = 'startup';
  private sslRequested = false;
  private gssRequested = false;
  /** The incomplete tail, joined once `need` bytes are there. */
  private readonly pending = new PendingBytes();
  private need = 0;
  private failure: FrontendProtocolError | undefined;
  private readonly cursor = new Cursor();

  constructor(options: FrontendParserOptions = {}) {
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.maxStartupSize = options.maxStartupSize ?? DEFAULT_MAX_STARTUP_SIZE;
    if (!(this.maxMessageSize >= 4) || !(this.maxStartupSize >= 8)) {
      throw new RangeError('maxMessageSize must be at least 4 and maxStartupSize at least 8');
    }
  }

  /** 'startup' until a StartupMessage; 'cancel' after a CancelRequest, when nothing more may follow. */
  get phase(): FrontendPhase {
    return this.phaseNow;
  }

  /** Bytes held back waiting for the rest of a message. */
  get bufferedBytes(): number {
    return this.pending.size;
  }

  /**
   * Feed bytes; `onMessage` is called for each complete message, in order.
   * Throws FrontendProtocolError on malformed input (messages before the bad
   * one have been delivered). An exception thrown by `onMessage` propagates
   * and leaves the parser failed too.
   */
  parse(chunk: Buffer, onMessage: FrontendMessageCallback): void {
    if (this.failure) throw this.failure;
    if (chunk.length === 0) return;
    const data = this.pending.add(chunk);
    if (data === null) return;
    try {
      this.consume(data, onMessage);
    } catch (error) {
      this.failure = error instanceof FrontendProtocolError
        ? error
        : violation('the frontend parser is unusable after an error in its message handler');
      this.pending.clear();
      throw error;
    }
  }

  private consume(data: Buffer, onMessage: FrontendMessageCallback): void {
    const end = data.length;
    let pos = 0;
    while (pos < end) {
      if (this.phaseNow === 'regular') {
        const code = data[pos]!;
        if (KNOWN[code] === 0) throw violation(`invalid frontend message type ${describeByte(code)}`);
        if (end - pos < 5) {
          this.need = 5;
          break;
        }
        const length = data.readInt32BE(pos + 1);
        if (length < 4) throw violation(`invalid length ${length} of ${NAMES[code]} message (minimum 4)`);
        if (length > this.maxMessageSize) {
          throw new FrontendProtocolError(`${NAMES[code]} message of ${length} bytes exceeds the maximum of ${this.maxMessageSize}`, '54000');
        }
        const next = pos + 1 + length;
        if (next > end) {
          this.need = 1 + length;
          break;
        }
        onMessage(this.regular(code, data, pos + 5, next), data.subarray(pos, next));
        pos = next;
      } else if (this.phaseNow === 'startup') {
        if (end - pos < 4) {
          this.need = 4;
          break;
        }
        const length = data.readInt32BE(pos);
        if (length < 8) throw violation(`invalid length ${length} of startup packet (minimum 8)`);
        if (length > this.maxStartupSize) {
          throw new FrontendProtocolError(`startup packet of ${length} bytes exceeds the maximum of ${this.maxStartupSize}`, '54000');
        }
        const next = pos + length;
        if (next > end) {
          this.need = length;
          break;
        }
        onMessage(this.startup(data, pos + 4, next, end - next), data.subarray(pos, next));
        pos = next;
      } else {
        throw violation('unexpected data after CancelRequest');
      }
    }
    if (pos < end) this.pending.hold(pos === 0 ? data : data.subarray(pos), this.need);
  }

  private startup(buf: Buffer, start: number, end: number, following: number): StartupPhaseMessage {
    const code = buf.readInt32BE(start);
    const bodyLength = end - start - 4;
    if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
      const name = code === SSL_REQUEST_CODE ? 'SSLRequest' : 'GSSENCRequest';
      if (bodyLength !== 0) throw violation(`${name} has length ${bodyLength + 8}, must be 8`);
      // Bytes behind an encryption request would bypass the handshake (CVE-2021-23214).
      if (following > 0) throw violation(`${following} unencrypted byte(s) followed ${name} before the encryption handshake`);
      if (code === SSL_REQUEST_CODE) {
        if (this.sslRequested) throw violation('SSLRequest sent twice');
        this.sslRequested = true;
        return { type: 'sslRequest' };
      }
      if (this.gssRequested) throw violation('GSSENCRequest sent twice');
      this.gssRequested = true;
      return { type: 'gssEncRequest' };
    }
    if (code === CANCEL_REQUEST_CODE) {
      const keyLength = bodyLength - 4;
      if (keyLength < 4 || keyLength > MAX_CANCEL_KEY) {
        throw violation(`CancelRequest has length ${bodyLength + 8}, must be 16 (or up to ${12 + MAX_CANCEL_KEY} in protocol 3.2)`);
      }
      if (following > 0) throw violation('unexpected data after CancelRequest');
      this.phaseNow = 'cancel';
      return { type: 'cancelRequest', processId: buf.readInt32BE(start + 4), secretKey: buf.subarray(start + 8, end) };
    }
    const major = code >>> 16;
    const minor = code & 0xffff;
    if (major !== 3) {
      throw new FrontendProtocolError(`unsupported frontend protocol ${major}.${minor}: Gatehouse supports protocol 3.0`, '0A000');
    }
    const c = this.cursor.reset(buf, start + 4, end, 'StartupMessage');
    const parameters = new Map<string, string>();
    for (;;) {
      if (c.pos >= c.end) throw violation('StartupMessage: parameter list has no final NUL terminator');
      const name = c.cstring('parameter name');
      if (name === '') break;
      const value = c.cstring(`value of parameter "${name}"`);
      if (parameters.has(name)) throw violation(`StartupMessage: parameter "${name}" given twice`);
      parameters.set(name, value);
    }
    c.done();
    this.phaseNow = 'regular';
    return { type: 'startup', majorVersion: major, minorVersion: minor, parameters };
  }

  private regular(code: number, buf: Buffer, start: number, end: number): RegularMessage {
    switch (code) {
      case 0x53: return this.empty(buf, start, end, 'Sync', { type: 'sync' });
      case 0x48: return this.empty(buf, start, end, 'Flush', { type: 'flush' });
      case 0x58: return this.empty(buf, start, end, 'Terminate', { type: 'terminate' });
      case 0x63: return this.empty(buf, start, end, 'CopyDone', { type: 'copyDone' });
      case 0x64: return { type: 'copyData', data: buf.subarray(start, end) };
      case 0x70: return { type: 'authenticationResponse', data: buf.subarray(start, end) };
    }
    const c = this.cursor.reset(buf, start, end, NAMES[code]!);
    let message: RegularMessage;
    switch (code) {
      case 0x51:
        message = { type: 'query', sql: c.cstring('query string') };
        break;
      case 0x50: {
        const name = c.cstring('statement name');
        const sql = c.cstring('query string');
        const n = c.count('parameter type count', 4);
        const paramTypes = new Array<number>(n);
        for (let i = 0; i < n; i++) paramTypes[i] = c.uint32('parameter type');
        message = { type: 'parse', name, sql, paramTypes };
        break;
      }
      case 0x42: {
        const portal = c.cstring('portal name');
        const statement = c.cstring('statement name');
        const paramFormats = c.formats('parameter format');
        const params = c.values('parameter');
        if (paramFormats.length > 1 && paramFormats.length !== params.length) {
          throw violation(`Bind message has ${paramFormats.length} parameter formats but ${params.length} parameters`);
        }
        const resultFormats = c.formats('result format');
        message = { type: 'bind', portal, statement, paramFormats, params, resultFormats };
        break;
      }
      case 0x44:
      case 0x43: {
        const target = c.target('target');
        const name = c.cstring('name');
        message = code === 0x44 ? { type: 'describe', target, name } : { type: 'close', target, name };
        break;
      }
      case 0x45: {
        const portal = c.cstring('portal name');
        message = { type: 'execute', portal, maxRows: c.int32('row limit') };
        break;
      }
      case 0x46: {
        const functionOid = c.uint32('function OID');
        const argFormats = c.formats('argument format');
        const args = c.values('argument');
        if (argFormats.length > 1 && argFormats.length !== args.length) {
          throw violation(`FunctionCall message has ${argFormats.length} argument formats but ${args.length} arguments`);
        }
        message = { type: 'functionCall', functionOid, argFormats, args, resultFormat: c.format('result format') };
        break;
      }
      case 0x66:
        message = { type: 'copyFail', message: c.cstring('error message') };
        break;
      default:
        // Unreachable: consume() only passes known codes.
        throw violation(`invalid frontend message type ${describeByte(code)}`);
    }
    c.done();
    return message;
  }

  private empty<M extends RegularMessage>(_buf: Buffer, start: number, end: number, name: string, message: M): M {
    if (end !== start) throw violation(`${name} message has ${end - start} unexpected trailing byte(s)`);
    return message;
  }
}

// ── The 'p' message, read once the authentication state says which it is ──

function authCursor(message: AuthenticationResponse, what: string): Cursor {
  return new Cursor().reset(message.data, 0, message.data.length, what);
}

/** PasswordMessage: one NUL-terminated string (cleartext password; here, the agent's JWT). */
export function readPasswordMessage(message: AuthenticationResponse): string {
  const c = authCursor(message, 'PasswordMessage');
  const password = c.cstring('password');
  c.done();
  return password;
}

/** SASLInitialResponse: mechanism name, then Int32 length (-1: none) and the client-first message. */
export function readSASLInitialResponse(message: AuthenticationResponse): { mechanism: string; response: Buffer | null } {
  const c = authCursor(message, 'SASLInitialResponse');
  const mechanism = c.cstring('mechanism');
  const length = c.int32('response length');
  if (length < -1) throw violation(`SASLInitialResponse message: invalid response length ${length}`);
  if (length !== -1 && length !== c.end - c.pos) {
    throw violation(`SASLInitialResponse message: response length ${length} does not match the ${c.end - c.pos} byte(s) left`);
  }
  const response = length === -1 ? null : c.rest();
  c.done();
  return { mechanism, response };
}

/** SASLResponse: the whole body is mechanism data. */
export function readSASLResponse(message: AuthenticationResponse): Buffer {
  return message.data;
}
