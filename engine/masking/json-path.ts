/**
 * Where a mask rule's `field` points in a JSON document, parsed once into
 * segments. Two spellings, told apart by the first character:
 *
 *   path      customers[*].email, data.items[0].ssn, $.a['odd.key'], $..email, $
 *   pointer   /customers/0/email  (RFC 6901: "~1" is "/", "~0" is "~")
 *
 * A segment is a member name or the wildcard. A member name that is a
 * canonical array index ("0", "12") also selects that element of an array,
 * as in RFC 6901, so `[0]`, `.0` and `/0` mean the same. The wildcard
 * (`[*]`, `.*`, and a `*` pointer segment) selects every element of an array
 * and every member of an object. RFC 6901 has no wildcard: a `*` segment is
 * read as one because a policy writing `/customers/*\/email` means it, and
 * masking a literal "*" member too is the safe way to be wrong.
 *
 * `..` (JSONPath's descendant operator, paths only) matches the segment after
 * it at any depth below: `$..email` is every `email` member wherever it
 * sits, in a top-level array, an envelope or a nested record, so one rule
 * survives an API changing the shape around the field.
 *
 * No segments (`$`) is the whole document.
 */
import { MaskRuleError } from './errors.js';

export const ANY = Symbol('any member');
/** The next segment matches here or at any depth below. */
export const DESCENDANTS = Symbol('any depth');
export type PathSegment = string | typeof ANY | typeof DESCENDANTS;

/** The field that names the whole document (the only one that parses to no segments). */
export const WHOLE_DOCUMENT = '$';

/** Throws MaskRuleError naming the field and what is wrong with it. */
export function parseFieldPath(field: string): PathSegment[] {
  if (field === '') throw invalid(field, 'it is empty (the whole document is "$")');
  if (field.startsWith('/')) return parsePointer(field);
  return parseDotted(field);
}

function parsePointer(pointer: string): PathSegment[] {
  return pointer.slice(1).split('/').map((raw) => {
    if (/~(?![01])/.test(raw)) throw invalid(pointer, 'a "~" must be followed by 0 or 1 (RFC 6901)');
    if (raw === '*') return ANY;
    return raw.replace(/~1/g, '/').replace(/~0/g, '~');
  });
}

function parseDotted(path: string): PathSegment[] {
  const segments: PathSegment[] = [];
  let i = 0;
  if (path.startsWith('$')) {
    i = 1;
    if (path.length === 1) return segments;
    if (path[1] !== '.' && path[1] !== '[') throw invalid(path, 'expected "." or "[" after "$"');
    if (path[1] === '.' && path[2] !== '.') i = 2;
  }
  let expectName = true; // at the start and after "."
  while (i < path.length) {
    const c = path[i];
    if (c === '.' && path[i + 1] === '.') {
      // `..name` or `..[…]`: a name or a bracket must follow.
      if (path[i + 2] === '.' || i + 2 === path.length) throw invalid(path, `".." at character ${i + 1} must be followed by a name or "["`);
      segments.push(DESCENDANTS);
      i += 2;
      expectName = true;
    } else if (c === '[') {
      const [segment, next] = bracket(path, i);
      segments.push(segment);
      i = next;
      expectName = false;
    } else if (c === '.') {
      if (expectName) throw invalid(path, `empty name at character ${i + 1}`);
      i++;
      expectName = true;
      if (i === path.length) throw invalid(path, 'it ends with "."');
    } else {
      if (!expectName) throw invalid(path, `expected "." or "[" at character ${i + 1}`);
      let end = i;
      while (end < path.length && path[end] !== '.' && path[end] !== '[' && path[end] !== ']') end++;
      if (path[end] === ']') throw invalid(path, `unexpected "]" at character ${end + 1}`);
      const name = path.slice(i, end);
      segments.push(name === '*' ? ANY : name);
      i = end;
      expectName = false;
    }
  }
  return segments;
}

/** `[*]`, `[12]`, `['name']` or `["name"]` at `start`; returns the segment and the index after "]". */
function bracket(path: string, start: number): [PathSegment, number] {
  const quote = path[start + 1];
  if (quote === '\'' || quote === '"') {
    const close = path.indexOf(quote, start + 2);
    if (close === -1 || path[close + 1] !== ']') throw invalid(path, `unterminated ${quote}…${quote}] at character ${start + 1}`);
    return [path.slice(start + 2, close), close + 2];
  }
  const close = path.indexOf(']', start);
  if (close === -1) throw invalid(path, `unterminated "[" at character ${start + 1}`);
  const inner = path.slice(start + 1, close);
  if (inner === '*') return [ANY, close + 1];
  if (!/^(0|[1-9]\d*)$/.test(inner)) throw invalid(path, `"[${inner}]" is not [*], an index or a quoted name`);
  return [inner, close + 1];
}

function invalid(field: string, why: string): MaskRuleError {
  return new MaskRuleError(`mask field ${JSON.stringify(field)} is not a JSON path or pointer: ${why}`);
}
