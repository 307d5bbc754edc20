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

/** The index of the quote closing the string that starts at `start`. */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) i++;
    else if (c === 0x22) return i;
  }
  return text.length;
}
