/**
 * Values a client binds to a prepared statement (Bind) or passes to a
 * function (FunctionCall), as policy input and an approval show them. An
 * approval binds its request by hash, so the form must never let two
 * different values look alike: text that is not valid UTF-8 (the client
 * encoding may be another) and binary values are shown as hex, and values
 * too large for an approval record are bound by their SHA-256.
 */
import { createHash } from 'node:crypto';
import { formatAt, type FormatCode } from '../protocol/frontend-messages.js';

type Shown =
  | { value: string | null }
  | { hex: string }
  | { sha256: string; bytes: number };

/** `type`: the OID the Parse gave the parameter, when it gave one (the same text reads otherwise as a date than as text). */
export type BoundValue = { format: 'text' | 'binary'; type?: number } & Shown;

/** Above this many bytes in all, values are shown by digest: an approval record holds the whole action. */
const SHOWN_BYTES = 64 * 1024;

export function boundValues(values: readonly (Buffer | null)[], formats: readonly FormatCode[], types: readonly number[] = []): BoundValue[] {
  const shown = values.reduce((sum, v) => sum + (v?.length ?? 0), 0) <= SHOWN_BYTES;
  return values.map((value, i) => {
    const format = formatAt(formats, i) === 1 ? 'binary' : 'text';
    const type = types[i];
    return { format, ...(type ? { type } : {}), ...show(value, format, shown) };
  });
}

function show(value: Buffer | null, format: 'text' | 'binary', shown: boolean): Shown {
  if (value === null) return { value: null };
  if (!shown) return { sha256: createHash('sha256').update(value).digest('hex'), bytes: value.length };
  if (format === 'text') {
    const text = value.toString('utf8');
    if (Buffer.from(text, 'utf8').equals(value)) return { value: text };
  }
  return { hex: value.toString('hex') };
}
