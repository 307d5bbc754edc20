import { describe, expect, it } from 'vitest';
import { hasDuplicateKeys } from '../../ext-authz/process/duplicate-keys.js';

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
