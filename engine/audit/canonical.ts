import canonicalize from 'canonicalize';

/**
 * RFC 8785 (JCS) canonical JSON: sorted keys, no whitespace, ECMAScript number
 * and string forms. The same event always gives the same bytes, so its hash
 * can be recomputed by anyone, in any language, from the stored text alone.
 */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  // canonicalize returns undefined for undefined, functions and symbols:
  // those have no JSON form, and an audit event must have one.
  if (text === undefined) throw new TypeError('an audit event must be a JSON value');
  return text;
}
