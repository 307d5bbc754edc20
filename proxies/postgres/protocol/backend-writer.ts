/**
 * Backend messages the proxy writes itself (pg-protocol serializes only the
 * frontend side). Everything else the client sees is the server's own bytes.
 */

export type Severity = 'ERROR' | 'FATAL' | 'NOTICE' | 'WARNING';

/** The fields of an ErrorResponse / NoticeResponse the proxy fills (protocol "Error and Notice Message Fields"). */
export interface ErrorFields {
  severity: Severity;
  /** SQLSTATE, e.g. 42501 insufficient_privilege. */
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  /** 1-based character position in the query text. */
  position?: number;
}

export type TransactionStatus = 'I' | 'T' | 'E';

function message(code: string, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = code.charCodeAt(0);
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function int32s(...values: number[]): Buffer {
  const body = Buffer.allocUnsafe(4 * values.length);
  values.forEach((v, i) => body.writeInt32BE(v, 4 * i));
  return body;
}

function cstring(text: string): Buffer {
  // A NUL would end the field early and shift every field after it.
  return Buffer.from(`${text.replaceAll('\0', '')}\0`, 'utf8');
}

export function authenticationCleartextPassword(): Buffer {
  return message('R', int32s(3));
}

export function authenticationOk(): Buffer {
  return message('R', int32s(0));
}

export function backendKeyData(processId: number, secretKey: number): Buffer {
  return message('K', int32s(processId, secretKey));
}

export function parameterStatus(name: string, value: string): Buffer {
  return message('S', Buffer.concat([cstring(name), cstring(value)]));
}

export function readyForQuery(status: TransactionStatus): Buffer {
  return message('Z', Buffer.from(status, 'latin1'));
}

/** The answer to a startup packet asking for a newer minor version or unknown `_pq_` options. */
export function negotiateProtocolVersion(newestMinor: number, unrecognised: string[]): Buffer {
  return message('v', Buffer.concat([int32s(newestMinor, unrecognised.length), ...unrecognised.map(cstring)]));
}

function fields(f: ErrorFields): Buffer {
  const parts = [`S${f.severity}`, `V${f.severity}`, `C${f.code}`, `M${f.message}`];
  if (f.detail) parts.push(`D${f.detail}`);
  if (f.hint) parts.push(`H${f.hint}`);
  if (f.position !== undefined) parts.push(`P${f.position}`);
  return Buffer.concat([...parts.map(cstring), Buffer.from([0])]);
}

export function errorResponse(f: ErrorFields): Buffer {
  return message('E', fields(f));
}

export function noticeResponse(f: ErrorFields): Buffer {
  return message('N', fields(f));
}

/** One byte, no header: the answer to SSLRequest and GSSENCRequest. */
export const SSL_ACCEPTED = Buffer.from('S');
export const REQUEST_REFUSED = Buffer.from('N');
