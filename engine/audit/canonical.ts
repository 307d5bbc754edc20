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

const MAX_DEPTH = 100;

function serialize(value: unknown, depth: number): string | undefined {
  switch (typeof value) {
    case 'string':
      if (LONE_SURROGATE.test(value)) throw new TypeError('Lone surrogate is not allowed');
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${value} is not allowed in JSON`);
      return JSON.stringify(value);
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
  // Default sort compares UTF-16 code units, which is what RFC 8785 asks for.
  const keys = Object.keys(object).sort();
  let out = '{';
  for (const key of keys) {
    const text = serialize(object[key], depth + 1);
    if (text === undefined) continue;
    if (out.length > 1) out += ',';
    out += `${serialize(key, depth)}:${text}`;
  }
  return `${out}}`;
}

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
