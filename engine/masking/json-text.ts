/**
 * What one pass over JSON text tells that JSON.parse does not: whether a
 * key repeats, and how deep the text nests.
 */

/**
 * The deepest nesting the gateway reads as JSON (Jackson's default). The
 * parsers take any depth, but masking, the checks on what a body holds and
 * JSON.stringify walk a document recursively: a few thousand levels
 * overflow the stack. Text deeper than this is read as text, or refused.
 */
export const MAX_JSON_DEPTH = 1000;

/** JSON text nested deeper than MAX_JSON_DEPTH. Never quotes the text. */
export class JsonTooDeep extends Error {
  override name = 'JsonTooDeep';
  constructor() {
    super(`JSON nested more than ${MAX_JSON_DEPTH} levels deep, deeper than the gateway reads`);
  }
}

/**
 * Whether a JSON text repeats a key within one object.
 *
 * JSON.parse keeps the last of duplicate keys, so a mask plan applied to the
 * parsed document masks only that one; a client that reads the raw text, or
 * keeps the first (many parsers do), would still see the others. A body
 * with duplicates is therefore always re-serialised from the masked
 * document. JSON.parse has no hook that sees a duplicate; a syntax-tree
 * parser (@humanwhocodes/momoa) would report them at the cost of a tree per
 * body, where a single pass over text JSON.parse has already accepted will do.
 */
export function hasDuplicateKeys(text: string): boolean {
  // One entry per open container: the keys of an object, or null for an array.
  const open: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const end = stringEnd(text, i);
      const keys = open[open.length - 1];
      if (expectKey && keys) {
        const raw = text.slice(i, end + 1);
        // Escapes spell the same key differently: "em\u0061il" is "email".
        const key = raw.includes('\\') ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        if (keys.has(key)) return true;
        keys.add(key);
        expectKey = false;
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      open.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      open.push(null);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      open.pop();
    } else if (c === 0x2c /* , */) {
      expectKey = open[open.length - 1] != null;
    }
  }
  return false;
}

/** Whether JSON (or JSON5) text opens more than `max` objects and arrays inside one another, strings and comments skipped. */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */ || c === 0x27 /* ' (JSON5) */) i = stringEnd(text, i);
    else if (c === 0x2f /* / */ && text.charCodeAt(i + 1) === 0x2f) i = endOf(text, '\n', i + 2);
    else if (c === 0x2f && text.charCodeAt(i + 1) === 0x2a /* * */) i = endOf(text, '*/', i + 2) + 1;
    else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > max) return true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
  }
  return false;
}

/** Where `end` starts, from `from` on, or the text's length (a JSON5 comment). */
function endOf(text: string, end: string, from: number): number {
  const at = text.indexOf(end, from);
  return at === -1 ? text.length : at;
}

/** The index of the quote closing the string that starts at `start`. */
function stringEnd(text: string, start: number): number {
  const quote = text.charCodeAt(start);
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) i++;
    else if (c === quote) return i;
  }
  return text.length;
}
