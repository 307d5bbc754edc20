/**
 * Decodes the few backend messages the proxy must read, with pg-protocol's
 * parser (what it does well). DataRow is never passed here: its parser
 * decodes DataRow fields as UTF-8 (node-postgres#3495), which would corrupt
 * binary columns; data-row.ts handles DataRows byte by byte.
 */
import type { BackendMessage, CommandCompleteMessage, DatabaseError, Field, ParameterStatusMessage, RowDescriptionMessage } from 'pg-protocol/dist/messages.js';
import { Parser } from 'pg-protocol/dist/parser.js';

export type { Field } from 'pg-protocol/dist/messages.js';

const parser = new Parser();

export function decodeBackend(message: Buffer): BackendMessage {
  let decoded: BackendMessage | undefined;
  parser.parse(message, (m) => {
    decoded = m;
  });
  if (!decoded) throw new Error(`incomplete backend message (type ${String.fromCharCode(message[0]!)})`);
  return decoded;
}

export function decodeRowDescription(message: Buffer): Field[] {
  return (decodeBackend(message) as RowDescriptionMessage).fields;
}

export function decodeCommandTag(message: Buffer): string {
  return (decodeBackend(message) as CommandCompleteMessage).text;
}

/** An ErrorResponse's SQLSTATE and primary message. */
export function decodeError(message: Buffer): { sqlstate: string; message: string } {
  const error = decodeBackend(message) as DatabaseError;
  return { sqlstate: error.code ?? 'XX000', message: error.message };
}

/** A ParameterStatus's setting name and value. */
export function decodeParameterStatus(message: Buffer): { name: string; value: string } {
  const status = decodeBackend(message) as ParameterStatusMessage;
  return { name: status.parameterName, value: status.parameterValue };
}
