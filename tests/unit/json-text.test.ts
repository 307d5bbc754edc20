import { describe, expect, it } from 'vitest';
import { compileFieldMasks, type FieldMasks, type JsonValue } from '../../engine/masking/json-fields.js';
import { parseJsonExactly } from '../../engine/masking/json-numbers.js';
import { hasDuplicateKeys, JsonTooDeep, MAX_JSON_DEPTH, nestsDeeperThan } from '../../engine/masking/json-text.js';
import { BodyRefused, processBody } from '../../ext-authz/process/body.js';

describe('hasDuplicateKeys', () => {
  it.each([
    '{"a":1,"a":2}',
    '{"x":{"email":"a@b.c","email":null}}',
    '[{"id":1},{"id":2,"n":[1,{"k":0,"k":1}]}]',
    '{"em\\u0061il":"x","email":"y"}',
    '{ "a" : 1 , "b" : { } , "a" : [ ] }',
  ])('finds the repeat in %s', (text) => {
    JSON.parse(text); // only text JSON.parse accepted reaches it
    expect(hasDuplicateKeys(text)).toBe(true);
  });

  it.each([
    '{"a":1,"b":{"a":2}}',
    '[{"id":1},{"id":2}]',
    '{"a":"a","b":"\\"a\\",\\"a\\":"}',
    '{"a":["a","a"],"b":{"c":"a"}}',
    '"a"',
    '[]',
    '{"a\\\\":1,"a":2}',
  ])('finds none in %s', (text) => {
    JSON.parse(text);
    expect(hasDuplicateKeys(text)).toBe(false);
  });
});

describe('nestsDeeperThan', () => {
  it.each([
    ['[[]]', 2, false],
    ['[[[]]]', 2, true],
    ['{"a":{"b":[1]}}', 3, false],
    ['{"a":{"b":[1]}}', 2, true],
    // Brackets in strings, JSON5 strings and comments open nothing.
    ['["[[[[", "\\"[[[["]', 1, false],
    ["['[[[[', '\\'[[[']", 1, false],
    ['[// [[[[\n1, /* [[[[ */ 2]', 1, false],
    ['[] [] [] []', 1, false],
  ] as const)('%s past %i: %s', (text, max, deeper) => {
    expect(nestsDeeperThan(text, max)).toBe(deeper);
  });
});

describe('JSON nested past MAX_JSON_DEPTH', () => {
  const nested = (depth: number, inside = '1') => '['.repeat(depth) + inside + ']'.repeat(depth);

  it('parseJsonExactly reads it to the limit and throws JsonTooDeep past it, without quoting the text', () => {
    expect(() => parseJsonExactly(nested(MAX_JSON_DEPTH))).not.toThrow();
    expect(() => parseJsonExactly(nested(MAX_JSON_DEPTH + 1))).toThrow(JsonTooDeep);
    expect(() => parseJsonExactly(nested(MAX_JSON_DEPTH + 1))).toThrow(/more than 1000 levels deep/);
  });

  const json = { contentType: 'application/json', contentEncoding: '' };
  const options = { maxBytes: 64 * 1024 * 1024, record: true, secrets: ['crm-upstream-secret-5d1e'] };
  const refusal = async (body: string, masks: FieldMasks) => {
    try {
      await processBody(Buffer.from(body), json, masks, options);
      return null;
    } catch (err) {
      return err;
    }
  };

  it('a body nested deeper is refused with why (it overflowed the stack: a 500 with nothing said)', async () => {
    const masks = compileFieldMasks([{ field: '$..email', strategy: 'redact' }], { hashKey: 'k'.repeat(32) });
    for (const body of [nested(100_000), '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000), JSON.stringify({ notes: nested(20_000) })]) {
      const err = await refusal(body, masks);
      expect(err).toBeInstanceOf(BodyRefused);
      expect((err as Error).message).toMatch(/nested more than 1000 levels deep/);
    }
  });

  // Each string within the limit, JSON in JSON in JSON …: the walks go through every one.
  const chain = (levels: number, depth: number) => {
    let inner: JsonValue = 'ada@example.com';
    for (let level = 0; level < levels; level++) inner = nested(depth, JSON.stringify(inner));
    return JSON.stringify({ notes: [inner] });
  };

  it('JSON in JSON strings deeper than the limit in all is refused under field rules', async () => {
    const masks = compileFieldMasks([{ field: '$..notes', detectors: ['email'], strategy: 'redact' }], { hashKey: 'k'.repeat(32) });
    const err = await refusal(chain(4, 990), masks);
    expect(err).toBeInstanceOf(BodyRefused);
    expect((err as Error).message).toMatch(/in JSON strings nested more than 1000 levels deep in all/);
  });

  it('and scanned as text by a detector rule on the whole document, which still finds what is at the bottom', async () => {
    const masks = compileFieldMasks([{ field: '$', detectors: ['email'], strategy: 'redact' }], { hashKey: 'k'.repeat(32) });
    const out = await processBody(Buffer.from(chain(4, 990)), json, masks, options);
    expect(out.replacement).not.toBeNull();
    expect(out.replacement!.toString()).not.toContain('ada');
    expect(out.replacement!.toString()).toContain('[REDACTED:email]');
  });
});
