import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../engine/audit/canonical.js';
import { GENESIS, recordHash } from '../../engine/audit/chain.js';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('canonical JSON', () => {
  it('sorts keys, drops whitespace and uses ECMAScript number forms (RFC 8785)', () => {
    expect(canonicalJson({ b: [1, 2.5, 1e21, -0], a: { d: null, c: 'é\n' } })).toBe('{"a":{"c":"é\\n","d":null},"b":[1,2.5,1e+21,0]}');
  });

  it('refuses values that have no JSON form', () => {
    expect(() => canonicalJson(undefined)).toThrow(/JSON value/);
    expect(() => canonicalJson({ n: Number.NaN })).toThrow(/NaN/);
    expect(() => canonicalJson('\ud800')).toThrow(/surrogate/);
    expect(() => canonicalJson({ a: 'x\udc00' })).toThrow(/surrogate/);
    expect(canonicalJson('\ud83d\ude00')).toBe('"\ud83d\ude00"'.replace(/\\u([0-9a-f]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))));
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(() => canonicalJson(cycle)).toThrow(/nested deeper/);
  });

  it('agrees with the canonicalize package (the reference implementation) on any JSON', () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => {
      expect(canonicalJson(value)).toBe(canonicalize(value));
    }), { numRuns: 2000 });
    const odd = { z: undefined, y: [undefined, 1], x: new Date(0), '\u00e9': 1, e: 1, '\ud83d\ude00': 2, '\uff61': 3 };
    expect(canonicalJson(odd)).toBe(canonicalize(odd));
  });

  it('is a fixed point: canonical text parses back to the same text', () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => {
      const text = canonicalJson(value);
      expect(canonicalJson(JSON.parse(text))).toBe(text);
    }));
  });
});

describe('record hash', () => {
  it('starts every stream from 64 zeros', () => {
    expect(GENESIS).toBe('0'.repeat(64));
  });

  it('equals SHA-256 of the canonical {event, prev, seq, stream}, built without re-canonicalising', () => {
    fc.assert(fc.property(
      fc.jsonValue(),
      fc.stringMatching(/^[A-Za-z0-9._:-]{1,20}$/),
      fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      fc.stringMatching(/^[0-9a-f]{64}$/),
      (value, stream, seq, prev) => {
        const event = canonicalJson(value);
        expect(recordHash(stream, seq, prev, event)).toBe(sha256(canonicalJson({ stream, seq, prev, event: JSON.parse(event) })));
      },
    ));
  });

  it('is pinned, so a change to the record format cannot slip in unnoticed', () => {
    expect(recordHash('gw-1:8181', 1, GENESIS, '{"a":1}')).toBe(sha256(`{"event":{"a":1},"prev":"${GENESIS}","seq":1,"stream":"gw-1:8181"}`));
    expect(recordHash('gw-1:8181', 1, GENESIS, '{"a":1}')).toMatchInlineSnapshot(`"61c1e18e645ad7baad6da8e9607544644ac55f9c5344cfd30c9807ff0fe5da5d"`);
  });

  it('changes with every input', () => {
    const base = recordHash('s', 1, GENESIS, '{"a":1}');
    expect(recordHash('t', 1, GENESIS, '{"a":1}')).not.toBe(base);
    expect(recordHash('s', 2, GENESIS, '{"a":1}')).not.toBe(base);
    expect(recordHash('s', 1, '1'.repeat(64), '{"a":1}')).not.toBe(base);
    expect(recordHash('s', 1, GENESIS, '{"a":2}')).not.toBe(base);
  });
});
