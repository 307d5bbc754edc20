/**
 * RFC 8785 (JCS) canonical JSON: sorted keys, no whitespace, ECMAScript number
 * and string forms. The same event always gives the same bytes, so its hash
 * can be recomputed by anyone, in any language, from the stored text alone.
 *
 * This is the `canonicalize` package's algorithm (tests/unit/audit-chain.test.ts
 * checks the two agree on arbitrary JSON) without its per-call bookkeeping: a
 * cycle-tracking Set and a closure per array. It runs once per event on the
 * write path and once per event in `audit verify`, where that bookkeeping was
 * 40% of the time (bench/audit.ts). Audit events are trees built from JSON
 * data, so depth, not a Set, bounds the recursion.
 */
export function canonicalJson(value: unknown): string {
  const text = serialize(value, 0);
  // Like JSON.stringify, undefined, functions and symbols have no JSON form,
  // and an audit event must have one.
  if (text === undefined) throw new TypeError('an audit event must be a JSON value');
  return text;
}

export const MAX_DEPTH = 100;

function serialize(value: unknown, depth: number): string | undefined {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${value} is not allowed in JSON`);
      // A finite number's ECMAScript string form, which is also JSON.stringify's (-0 gives "0").
      return String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      break;
    default:
      return undefined;
  }
  if (value === null) return 'null';
  if (depth > MAX_DEPTH) throw new TypeError(`nested deeper than ${MAX_DEPTH} levels (a cycle?)`);
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return serialize((value as { toJSON: () => unknown }).toJSON(), depth + 1);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      out += serialize(value[i], depth + 1) ?? 'null';
    }
    return `${out}]`;
  }
  const object = value as Record<string, unknown>;
  const keys = sortKeys(Object.keys(object));
  let out = '{';
  let first = true;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const text = serialize(object[key], depth + 1);
    if (text === undefined) continue;
    if (first) first = false;
    else out += ',';
    out += member(key) + text;
  }
  return `${out}}`;
}

/**
 * Sorts in place by UTF-16 code units, which is what RFC 8785 asks for and
 * what both `<` on strings and Array.prototype.sort's default order compare.
 * An event's objects have a few keys to a few dozen: insertion sort does
 * those without sort()'s per-call setup.
 */
function sortKeys(keys: string[]): string[] {
  const n = keys.length;
  if (n > 32) return keys.sort();
  for (let i = 1; i < n; i++) {
    const key = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > key) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = key;
  }
  return keys;
}

/**
 * A string's JSON form. Most strings in an event need no escape and have no
 * surrogate at all: they are their own text between quotes, which is exactly
 * what JSON.stringify would give, without its per-call cost.
 */
function quote(text: string): string {
  if (!MAY_NEED_ESCAPE.test(text)) return `"${text}"`;
  if (LONE_SURROGATE.test(text)) throw new TypeError('Lone surrogate is not allowed');
  return JSON.stringify(text);
}

/**
 * `"key":` for an object key. Events reuse a small set of keys, so their
 * quoted forms are kept; the cache is bounded, since keys can come from data
 * (target labels), and holds only keys that passed quote().
 */
function member(key: string): string {
  let text = MEMBERS.get(key);
  if (text === undefined) {
    text = `${quote(key)}:`;
    if (MEMBERS.size < MAX_MEMBERS && key.length <= MAX_MEMBER_LENGTH) MEMBERS.set(key, text);
  }
  return text;
}

const MEMBERS = new Map<string, string>();
const MAX_MEMBERS = 2048;
const MAX_MEMBER_LENGTH = 64;

/** What JSON.stringify escapes (control characters, quote, backslash) and any surrogate, paired or not. */
// eslint-disable-next-line no-control-regex -- the control characters are what is looked for
const MAY_NEED_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Whether `text` has a lone surrogate, which has no canonical JSON form. */
export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}
