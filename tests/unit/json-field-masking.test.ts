import { describe, expect, it } from 'vitest';
import { MaskRuleError, UnknownDetectorError } from '../../engine/masking/errors.js';
import { compileFieldMasks, type FieldMaskRule, type JsonValue } from '../../engine/masking/json-fields.js';
import { ANY, DESCENDANTS, parseFieldPath } from '../../engine/masking/json-path.js';
import { REDACTED } from '../../engine/masking/strategies.js';

const HASH_KEY = 'k'.repeat(32);

function mask(rules: FieldMaskRule[], document: JsonValue) {
  const masks = compileFieldMasks(rules, { hashKey: HASH_KEY });
  const out = masks.maskDocument(document);
  return { ...out, counts: masks.counts(), masks };
}

describe('parseFieldPath', () => {
  it.each([
    ['customers[*].email', ['customers', ANY, 'email']],
    ['$.customers[*].email', ['customers', ANY, 'email']],
    ['data.items[0].ssn', ['data', 'items', '0', 'ssn']],
    ['$[2]', ['2']],
    ['a.*.b', ['a', ANY, 'b']],
    ["a['odd.key'][\"x]y\"]", ['a', 'odd.key', 'x]y']],
    ['$', []],
    ['/customers/0/email', ['customers', '0', 'email']],
    ['/a~1b/c~0d', ['a/b', 'c~d']],
    ['/customers/*/email', ['customers', ANY, 'email']],
    ['/', ['']],
    ['$..email', [DESCENDANTS, 'email']],
    ['..email', [DESCENDANTS, 'email']],
    ['customers..email', ['customers', DESCENDANTS, 'email']],
    ["$..['odd.key']", [DESCENDANTS, 'odd.key']],
    ['$..[*].ssn', [DESCENDANTS, ANY, 'ssn']],
    ['a..b.c', ['a', DESCENDANTS, 'b', 'c']],
  ])('%s', (field, segments) => {
    expect(parseFieldPath(field)).toEqual(segments);
  });

  it.each(['', 'a...b', 'a..', '$..', '$...a', 'a.', '.a', 'a[x]', 'a[1', 'a]b', '$x', 'a[-1]', "a['x]", '/a~2b'])('refuses %j with a MaskRuleError naming it', (field) => {
    expect(() => parseFieldPath(field)).toThrow(MaskRuleError);
    expect(() => parseFieldPath(field)).toThrow(JSON.stringify(field));
  });
});

describe('compileFieldMasks', () => {
  const crm = (): JsonValue => ({
    customers: [
      { id: 1, email: 'jane.doe@example.com', phone: '+1 415 555 2671', notes: 'card 4111 1111 1111 1111, write to jd@example.org' },
      { id: 2, email: 'bob@example.net', phone: null, notes: 'nothing here' },
    ],
    total: 2,
  });
  const crmRules: FieldMaskRule[] = [
    { field: 'customers[*].email', strategy: 'partial' },
    { field: 'customers[*].phone', strategy: 'hash' },
    { field: 'customers[*].notes', detectors: ['email', 'payment_card'], strategy: 'redact' },
  ];

  it('masks the crm-api fields and counts per rule and detector', () => {
    const { value, changed, counts } = mask(crmRules, crm());
    expect(changed).toBe(true);
    const customers = (value as { customers: Record<string, JsonValue>[] }).customers;
    expect(customers[0]!.email).toBe('j***@example.com');
    expect(customers[1]!.email).toBe('b***@example.net');
    expect(customers[0]!.phone).toMatch(/^hash:[0-9a-f]{16}$/);
    expect(customers[1]!.phone).toBeNull(); // null hides nothing: left alone, not counted
    expect(customers[0]!.notes).toBe('card [REDACTED:payment_card], write to [REDACTED:email]');
    expect(customers[1]!.notes).toBe('nothing here');
    expect(customers[0]!.id).toBe(1);
    expect(JSON.stringify(value)).not.toMatch(/jane|4111|jd@|415/);
    expect(counts).toEqual([
      { column: 'customers[*].email', detector: null, count: 2 },
      { column: 'customers[*].phone', detector: null, count: 1 },
      { column: 'customers[*].notes', detector: 'email', count: 1 },
      { column: 'customers[*].notes', detector: 'payment_card', count: 1 },
    ]);
  });

  it('rewrites in place and reports no change when nothing matched', () => {
    const document = { customers: [{ id: 1, notes: 'plain' }], other: { email: 'x@example.com' } };
    const { value, changed, counts } = mask(crmRules, document);
    expect(value).toBe(document);
    expect(changed).toBe(false);
    expect(counts).toEqual([]);
    expect(document.other.email).toBe('x@example.com');
  });

  it('selects by index and by JSON Pointer, including escaped names', () => {
    const { value } = mask(
      [{ field: 'data.items[1].ssn', strategy: 'redact' }, { field: '/data/a~1b', strategy: 'null' }],
      { data: { items: [{ ssn: '123-45-6789' }, { ssn: '234-56-7890' }], 'a/b': 'secret' } },
    );
    expect(value).toEqual({ data: { items: [{ ssn: '123-45-6789' }, { ssn: REDACTED }], 'a/b': null } });
  });

  it('"..name" masks the member at any depth: top-level arrays, envelopes, nested records', () => {
    const document: JsonValue = [
      { id: 1, email: 'jane.doe@example.com', contact: { email: 'jd@example.org', backup: [{ email: 'j@example.net' }] } },
      { id: 2, data: { items: [{ email: 'bob@example.net' }] }, emails: ['not@matched.example'] },
    ];
    const { value, counts } = mask([{ field: '$..email', strategy: 'redact' }], document);
    expect(value).toEqual([
      { id: 1, email: REDACTED, contact: { email: REDACTED, backup: [{ email: REDACTED }] } },
      { id: 2, data: { items: [{ email: REDACTED }] }, emails: ['not@matched.example'] },
    ]);
    expect(counts).toEqual([{ column: '$..email', detector: null, count: 4 }]);
  });

  it('"..name" masks a matched structure once, as a whole, and scans it once', () => {
    const whole = mask([{ field: '..contact', strategy: 'redact' }], { a: { contact: { contact: { phone: '1' } } } });
    expect(whole.value).toEqual({ a: { contact: REDACTED } });
    expect(whole.counts).toEqual([{ column: '..contact', detector: null, count: 1 }]);

    const scanned = mask([{ field: '..notes', detectors: ['email'], strategy: 'partial' }], {
      notes: { text: 'write to jane.doe@example.com', notes: 'or jd@example.org' },
    });
    expect(scanned.value).toEqual({ notes: { text: 'write to j***@example.com', notes: 'or j***@example.org' } });
    expect(scanned.counts).toEqual([{ column: '..notes', detector: 'email', count: 2 }]);
  });

  it('"a..b.c" matches b.c anywhere under a, and nowhere else', () => {
    const { value } = mask([{ field: 'customers..card.number', strategy: 'null' }], {
      customers: [{ card: { number: '4111111111111111' } }, { wallet: { card: { number: '5500005555555559', exp: '12/30' } } }],
      card: { number: 'outside' },
    });
    expect(value).toEqual({
      customers: [{ card: { number: null } }, { wallet: { card: { number: null, exp: '12/30' } } }],
      card: { number: 'outside' },
    });
  });

  it('masks whole non-string values and never lets a matched structure through', () => {
    const document: JsonValue = {
      n: 4111111111111111, flag: true,
      nested: { card: '4111 1111 1111 1111', deeper: { email: 'a@example.com' } },
      list: ['a@example.com'],
      hashed: { b: 1 }, nulled: [1, 2], partial: { email: 'a@example.com' },
    };
    const { value, counts } = mask([
      { field: 'n', strategy: 'partial' },
      { field: 'flag', strategy: 'redact' },
      { field: 'nested', strategy: 'redact' },
      { field: 'list', strategy: 'redact' },
      { field: 'hashed', strategy: 'hash' },
      { field: 'nulled', strategy: 'null' },
      { field: 'partial', strategy: 'partial' },
    ], document);
    expect(value).toEqual({
      n: '************1111', flag: REDACTED, nested: REDACTED, list: REDACTED,
      hashed: expect.stringMatching(/^hash:[0-9a-f]{16}$/), nulled: null, partial: REDACTED,
    });
    expect(counts.map((c) => [c.column, c.count])).toEqual([['n', 1], ['flag', 1], ['nested', 1], ['list', 1], ['hashed', 1], ['nulled', 1], ['partial', 1]]);
  });

  it('a detector rule on a structure scans every string under it, and leaves numbers that match nothing alone', () => {
    const { value, counts } = mask([{ field: 'profile', detectors: ['email'], strategy: 'redact' }], {
      profile: { contacts: [{ email: 'a@example.com' }, 'b@example.com'], age: 42 },
    });
    expect(value).toEqual({ profile: { contacts: [{ email: '[REDACTED:email]' }, '[REDACTED:email]'], age: 42 } });
    expect(counts).toEqual([{ column: 'profile', detector: 'email', count: 2 }]);
  });

  it('a detector rule reads a string that is JSON as a client parsing it would, escapes decoded, however often it is encoded', () => {
    const inner = '{"contact": "ada\\u0040example.com", "card": "4111\\u00201111\\u00201111\\u00201111", "id": 7}';
    const { value, changed, counts } = mask([{ field: '$..notes', detectors: ['email', 'payment_card'], strategy: 'redact' }], {
      rows: [{ notes: inner }, { notes: JSON.stringify(inner) }, { notes: [JSON.stringify({ deep: JSON.stringify('bob\u0040example.com') })] }],
    });
    expect(changed).toBe(true);
    const rows = (value as { rows: Array<{ notes: JsonValue }> }).rows;
    expect(JSON.parse(rows[0]!.notes as string)).toEqual({ contact: '[REDACTED:email]', card: '[REDACTED:payment_card]', id: 7 });
    expect(JSON.parse(JSON.parse(rows[1]!.notes as string) as string)).toEqual({ contact: '[REDACTED:email]', card: '[REDACTED:payment_card]', id: 7 });
    expect(JSON.parse(JSON.parse((rows[2]!.notes as string[])[0]!).deep as string)).toBe('[REDACTED:email]');
    expect(JSON.stringify(value)).not.toMatch(/ada|bob|4111/);
    expect(counts).toContainEqual(expect.objectContaining({ detector: 'email', count: 3 }));
  });

  it('JSON held in a string that repeats a key is written from the parsed copy: the earlier values never pass', () => {
    // The parse keeps the last "contact"; a client that keeps the first (many do) would read the first.
    const notes = ['{"contact": "ada@example.com", "contact": "n/a"}', JSON.stringify('{"a": {"contact": "bob@example.com", "contact": 1}}')];
    const { value, changed } = mask([{ field: '$..notes', detectors: ['email'], strategy: 'redact' }], { rows: notes.map((n) => ({ notes: n })) });
    expect(changed).toBe(true);
    expect(JSON.stringify(value)).not.toMatch(/ada|bob/);
    const rows = (value as { rows: Array<{ notes: string }> }).rows;
    expect(rows[0]!.notes).toBe('{"contact":"n/a"}');
    expect(JSON.parse(JSON.parse(rows[1]!.notes) as string)).toEqual({ a: { contact: 1 } });
  });

  it('a string that only looks like JSON is scanned as text, and JSON with nothing to mask is kept byte for byte', () => {
    const notes = ['{ not json, mail ada@example.com', '[1, 2,\n 3]', '"quoted"'];
    const { value } = mask([{ field: '$..notes', detectors: ['email'], strategy: 'redact' }], { rows: notes.map((n) => ({ notes: n })) });
    expect((value as { rows: Array<{ notes: string }> }).rows.map((r) => r.notes)).toEqual(['{ not json, mail [REDACTED:email]', '[1, 2,\n 3]', '"quoted"']);
  });

  it('a detector rule scans a number as its text, and a match replaces the number with the masked string', () => {
    const { value, counts, changed } = mask([{ field: 'notes', detectors: ['payment_card', 'us_ssn'], strategy: 'redact' }], {
      notes: { card: 4111111111111111, ssn: 123456789, items: [4111111111111111, 42, 12.5, true], qty: 1234567890123 },
    });
    expect(changed).toBe(true);
    expect(value).toEqual({
      notes: { card: '[REDACTED:payment_card]', ssn: '[REDACTED:us_ssn]', items: ['[REDACTED:payment_card]', 42, 12.5, true], qty: 1234567890123 },
    });
    expect(counts).toEqual([
      { column: 'notes', detector: 'payment_card', count: 2 },
      { column: 'notes', detector: 'us_ssn', count: 1 },
    ]);
    // The matched value itself, and every strategy: partial keeps the shape, null nulls it.
    expect(mask([{ field: 'n', detectors: ['payment_card'], strategy: 'partial' }], { n: 4111111111111111 }).value).toEqual({ n: '************1111' });
    expect(mask([{ field: 'n', detectors: ['payment_card'], strategy: 'null' }], { n: 4111111111111111 }).value).toEqual({ n: null });
    const untouched = mask([{ field: 'n', detectors: ['payment_card'], strategy: 'redact' }], { n: 4111111111111112 });
    expect(untouched.value).toEqual({ n: 4111111111111112 });
    expect(untouched.changed).toBe(false);
  });

  it('a detector rule masks member names under the match, in place and in order', () => {
    const document: JsonValue = { notes: { 'ada@example.com': 1, plain: { 'card 4111 1111 1111 1111': 'x' }, last: 3 }, 'bob@example.com': 'outside' };
    const { value, counts, changed } = mask([{ field: 'notes', detectors: ['email', 'payment_card'], strategy: 'redact' }], document);
    expect(changed).toBe(true);
    expect(value).toBe(document);
    expect(JSON.stringify(value)).toBe('{"notes":{"[REDACTED:email]":1,"plain":{"card [REDACTED:payment_card]":"x"},"last":3},"bob@example.com":"outside"}');
    expect(counts).toEqual([{ column: 'notes', detector: 'email', count: 1 }, { column: 'notes', detector: 'payment_card', count: 1 }]);

    const partial = mask([{ field: '$', detectors: ['email'], strategy: 'partial' }], { 'ada@example.com': { 'bob@example.org': 2 } });
    expect(partial.value).toEqual({ 'a***@example.com': { 'b***@example.org': 2 } });
    // "null" cannot make a name null: the name becomes the marker.
    const nulled = mask([{ field: '$', detectors: ['email'], strategy: 'null' }], { 'ada@example.com': 1 });
    expect(nulled.value).toEqual({ [REDACTED]: 1 });
    // An own "__proto__" value under a renamed member stays an own member.
    const proto = mask([{ field: '$', detectors: ['email'], strategy: 'redact' }], JSON.parse('{"ada@example.com": 1, "__proto__": "b@example.com"}') as JsonValue);
    expect(JSON.stringify(proto.value)).toBe('{"[REDACTED:email]":1,"__proto__":"[REDACTED:email]"}');
  });

  it('masked member names that collide keep every value, under a numbered name', () => {
    const { value, counts } = mask([{ field: 'stats', detectors: ['email'], strategy: 'redact' }], {
      stats: { '[REDACTED:email]#2': 0, 'ada@example.com': 1, 'bob@example.com': 2, '[REDACTED:email]': 3, 'cy@example.com': 4 },
    });
    expect(Object.entries((value as { stats: Record<string, JsonValue> }).stats)).toEqual([
      ['[REDACTED:email]#2', 0], ['[REDACTED:email]#3', 1], ['[REDACTED:email]#4', 2], ['[REDACTED:email]', 3], ['[REDACTED:email]#5', 4],
    ]);
    expect(counts).toEqual([{ column: 'stats', detector: 'email', count: 3 }]);
  });

  it('"$" with detectors scans every string of the document; without, it replaces the document', () => {
    const scanned = mask([{ field: '$', detectors: ['us_ssn'], strategy: 'redact' }], { a: ['ssn 123-45-6789'], b: { c: 'no' } });
    expect(scanned.value).toEqual({ a: ['ssn [REDACTED:us_ssn]'], b: { c: 'no' } });
    expect(scanned.changed).toBe(true);
    const whole = mask([{ field: '$', strategy: 'redact' }], { a: 1 });
    expect(whole.value).toBe(REDACTED);
    expect(whole.changed).toBe(true);
    expect(mask([{ field: '$', strategy: 'null' }], [1]).value).toBeNull();
  });

  it('masks an own "__proto__" member instead of calling the prototype setter', () => {
    const document = JSON.parse('{"__proto__": "a@example.com", "items": [{"__proto__": "b@example.com"}]}') as JsonValue;
    const { value } = mask([
      { field: '__proto__', strategy: 'redact' },
      { field: 'items[*]', detectors: ['email'], strategy: 'redact' },
    ], document);
    expect(JSON.stringify(value)).toBe('{"__proto__":"[REDACTED]","items":[{"__proto__":"[REDACTED:email]"}]}');
  });

  it('never resolves inherited members', () => {
    const { changed } = mask([{ field: 'constructor', strategy: 'redact' }, { field: 'a.toString', strategy: 'redact' }], { a: {} });
    expect(changed).toBe(false);
  });

  it('applies only "$" rules to text that is not JSON', () => {
    const masks = compileFieldMasks([
      { field: 'customers[*].email', strategy: 'redact' },
      { field: '$', detectors: ['email'], strategy: 'redact' },
    ]);
    expect(masks.coversText).toBe(true);
    expect(masks.hasFieldRules).toBe(true);
    expect(masks.maskText('mail jane@example.com now')).toEqual({ value: 'mail [REDACTED:email] now', changed: true });
    expect(masks.maskText('nothing')).toEqual({ value: 'nothing', changed: false });
    expect(masks.counts()).toEqual([{ column: '$', detector: 'email', count: 1 }]);
    masks.reset();
    expect(masks.counts()).toEqual([]);
    const fieldsOnly = compileFieldMasks([{ field: 'a', strategy: 'redact' }]);
    expect(fieldsOnly.coversText).toBe(false);
    expect(fieldsOnly.maskText('jane@example.com').changed).toBe(false);
  });

  it('fails at compile time, never per value: unknown detectors, a hash rule without a key, a bad field', () => {
    expect(() => compileFieldMasks([{ field: 'a', detectors: ['nope'], strategy: 'redact' }])).toThrow(UnknownDetectorError);
    expect(() => compileFieldMasks([{ field: 'a', strategy: 'hash' }])).toThrow(/hash key/);
    expect(() => compileFieldMasks([{ field: 'a...b', strategy: 'redact' }])).toThrow(MaskRuleError);
    expect(compileFieldMasks([]).empty).toBe(true);
  });
});
