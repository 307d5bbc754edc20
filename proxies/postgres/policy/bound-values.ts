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

export type BoundValue =
  | { format: 'text' | 'binary'; value: string | null }
  | { format: 'text' | 'binary'; hex: string }
  | { format: 'text' | 'binary'; sha256: string; bytes: number };

/** Above this many bytes in all, values are shown by digest: an approval record holds the whole action. */
const SHOWN_BYTES = 64 * 1024;

export function boundValues(values: readonly (Buffer | null)[], formats: readonly FormatCode[]): BoundValue[] {
  const shown = values.reduce((sum, v) => sum + (v?.length ?? 0), 0) <= SHOWN_BYTES;
  return values.map((value, i) => {
    const format = formatAt(formats, i) === 1 ? 'binary' : 'text';
    if (value === null) return { format, value: null };
    if (!shown) return { format, sha256: createHash('sha256').update(value).digest('hex'), bytes: value.length };
    if (format === 'text') {
      const text = value.toString('utf8');
      if (Buffer.from(text, 'utf8').equals(value)) return { format, value: text };
    }
    return { format, hex: value.toString('hex') };
  });
}
