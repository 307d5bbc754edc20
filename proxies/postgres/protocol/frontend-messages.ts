/**
 * PostgreSQL frontend messages: what a client sends to a server (protocol
 * 3.0, https://www.postgresql.org/docs/current/protocol-message-formats.html).
 * `frontend-parser.ts` produces them; pg-protocol only parses the backend side.
 *
 * Byte payloads (Bind and FunctionCall arguments, CopyData, the 'p' body) are
 * Buffers that view the bytes the parser was fed, never re-encoded, so binary
 * values pass through byte-exact. Text fields (SQL, names, startup
 * parameters) are valid UTF-8, decoded; the parser rejects anything else.
 */

/** Protocol version 3.0 as the startup packet carries it: major << 16 | minor. */
export const PROTOCOL_3_0 = (3 << 16) | 0;
/** The request codes that take the place of a protocol version (1234.5678…). */
export const CANCEL_REQUEST_CODE = (1234 << 16) | 5678;
export const SSL_REQUEST_CODE = (1234 << 16) | 5679;
export const GSSENC_REQUEST_CODE = (1234 << 16) | 5680;

/** Format codes of Bind parameters and results: 0 text, 1 binary. */
export type FormatCode = 0 | 1;

/** The format of value `i` under a list of format codes: none means all text, one applies to all, else one each. */
export function formatAt(codes: readonly FormatCode[], i: number): FormatCode {
  return codes.length === 0 ? 0 : codes.length === 1 ? codes[0]! : codes[i] ?? 0;
}

// ── Startup phase: a length, then the message, no type byte ──────────────

export interface StartupMessage {
  type: 'startup';
  /** Always 3; any minor is parsed so the proxy can answer NegotiateProtocolVersion. */
  majorVersion: number;
  minorVersion: number;
  /** In the order sent; names are unique (a repeated name is a protocol error). Includes `_pq_.*` options. */
  parameters: Map<string, string>;
}
export interface SSLRequest { type: 'sslRequest' }
export interface GSSENCRequest { type: 'gssEncRequest' }
export interface CancelRequest {
  type: 'cancelRequest';
  processId: number;
  /** 4 bytes in protocol 3.0; up to 256 in 3.2. Kept as bytes. */
  secretKey: Buffer;
}

export type StartupPhaseMessage = StartupMessage | SSLRequest | GSSENCRequest | CancelRequest;

// ── Regular phase: a type byte, a length, the body ───────────────────────

/** 'Q': simple query, possibly several statements. */
export interface Query { type: 'query'; sql: string }

/** 'P': prepare `sql` as statement `name` ('' is the unnamed statement). OIDs are unsigned; 0 means unspecified. */
export interface Parse { type: 'parse'; name: string; sql: string; paramTypes: number[] }

/** 'B': bind `statement` into `portal`. A null value is SQL NULL (length -1). */
export interface Bind {
  type: 'bind';
  portal: string;
  statement: string;
  /** 0 entries: all text; 1: applies to all; else one per parameter. */
  paramFormats: FormatCode[];
  params: (Buffer | null)[];
  /** Same convention, over the result columns. */
  resultFormats: FormatCode[];
}

/** 'D': describe a prepared statement ('S') or a portal ('P'). */
export interface Describe { type: 'describe'; target: 'S' | 'P'; name: string }

/** 'E': run `portal`; `maxRows` 0 means all rows. */
export interface Execute { type: 'execute'; portal: string; maxRows: number }

/** 'C': close a prepared statement ('S') or a portal ('P'). */
export interface Close { type: 'close'; target: 'S' | 'P'; name: string }

export interface Sync { type: 'sync' }
export interface Flush { type: 'flush' }
export interface Terminate { type: 'terminate' }

/**
 * 'p': PasswordMessage, SASLInitialResponse or SASLResponse. Which one it is
 * depends on what the server asked for, so the body is kept as bytes; read it
 * with `readPasswordMessage` / `readSASLInitialResponse` from the parser.
 */
export interface AuthenticationResponse { type: 'authenticationResponse'; data: Buffer }

/** 'F': the legacy fast-path function call. */
export interface FunctionCall {
  type: 'functionCall';
  functionOid: number;
  argFormats: FormatCode[];
  args: (Buffer | null)[];
  resultFormat: FormatCode;
}

/** 'd', 'c', 'f': COPY FROM STDIN traffic. */
export interface CopyData { type: 'copyData'; data: Buffer }
export interface CopyDone { type: 'copyDone' }
export interface CopyFail { type: 'copyFail'; message: string }

export type RegularMessage =
  | Query | Parse | Bind | Describe | Execute | Close | Sync | Flush | Terminate
  | AuthenticationResponse | FunctionCall | CopyData | CopyDone | CopyFail;

export type FrontendMessage = StartupPhaseMessage | RegularMessage;

/** SQLSTATEs the parser reports. */
export type FrontendErrorCode =
  | '08P01' // protocol_violation
  | '54000' // program_limit_exceeded: a message over the configured maximum
  | '0A000' // feature_not_supported: a protocol version other than 3.x
  | '22021'; // character_not_in_repertoire: text that is not UTF-8

/**
 * Malformed client input. The connection that sent it gets one ErrorResponse
 * (severity FATAL, `sqlState`, `message`) and is closed; nothing else is affected.
 */
export class FrontendProtocolError extends Error {
  override name = 'FrontendProtocolError';
  readonly sqlState: FrontendErrorCode;
  constructor(message: string, sqlState: FrontendErrorCode = '08P01') {
    super(message);
    this.sqlState = sqlState;
  }
}
