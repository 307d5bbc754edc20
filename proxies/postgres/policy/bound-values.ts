/**
 * Values a client binds to a prepared statement (Bind) or passes to a
 * function (FunctionCall), as policy input and an approval show them. An
 * approval binds its request by hash, so the form must never let two
 * different values look alike: text that is not valid UTF-8 (the client
 * encoding may be another) and binary values are shown as hex, and values
 * too large for an approval record are bound by their SHA-256 (the largest
 * ones, past a budget for all).
 */
import { createHash } from 'node:crypto';
import { formatAt, type FormatCode } from '../protocol/frontend-messages.js';

type Shown =
  | { value: string | null }
  | { hex: string }
  | { sha256: string; bytes: number };

/** `type`: the OID the Parse gave the parameter, when it gave one (the same text reads otherwise as a date than as text). */
export type BoundValue = { format: 'text' | 'binary'; type?: number } & Shown;

/**
 * At most this many bytes are shown in all (an approval record holds the whole action); past it, the largest
 * values are bound by digest. Largest first, so that one padded value cannot push a small one out of sight.
 */
const SHOWN_BYTES = 64 * 1024;

export function boundValues(values: readonly (Buffer | null)[], formats: readonly FormatCode[], types: readonly number[] = []): BoundValue[] {
  const digested = largestPastBudget(values);
  return values.map((value, i) => {
    const format = formatAt(formats, i) === 1 ? 'binary' : 'text';
    const type = types[i];
    return { format, ...(type ? { type } : {}), ...show(value, format, !digested.has(i)) };
  });
}

/** The values not shown: smallest first (ties in order) fill SHOWN_BYTES, the rest are digested. */
function largestPastBudget(values: readonly (Buffer | null)[]): ReadonlySet<number> {
  let total = 0;
  for (const v of values) total += v?.length ?? 0;
  if (total <= SHOWN_BYTES) return new Set();
  const bySize = values.map((v, i) => ({ i, bytes: v?.length ?? 0 })).sort((a, b) => a.bytes - b.bytes || a.i - b.i);
  const digested = new Set<number>();
  let shown = 0;
  for (const { i, bytes } of bySize) {
    if (digested.size === 0 && shown + bytes <= SHOWN_BYTES) shown += bytes;
    else digested.add(i);
  }
  return digested;
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
