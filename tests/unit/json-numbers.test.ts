/**
 * Long JSON numbers (json-numbers.ts): read as their exact text, masked as
 * that text, and written back as the numbers they were.
 */
import { describe, expect, it } from 'vitest';
import { compileFieldMasks, type JsonValue } from '../../engine/masking/json-fields.js';
import { parseJsonExactly, stringifyJson, taggedNumber } from '../../engine/masking/json-numbers.js';

describe('parseJsonExactly', () => {
  it('reads a document without long numbers as JSON.parse does', () => {
    const text = '{"id":900719925474099,"price":12.5,"notes":"12345678901234567890 in a string"}';
    expect(parseJsonExactly(text)).toEqual(JSON.parse(text));
  });

  it('keeps the exact text of numbers a double would round, and writes them back byte for byte', () => {
    const text = '{"id":12345678901234567891,"ids":[-98765432109876543210,1],"ratio":1234567890.123456789,"big":1.2345678901234567e300}';
    const document = parseJsonExactly(text) as { id: unknown; ids: unknown[] };
    expect(taggedNumber(document.id)).toBe('12345678901234567891');
    expect(taggedNumber(document.ids[0])).toBe('-98765432109876543210');
    expect(document.ids[1]).toBe(1);
    expect(stringifyJson(document)).toBe(text);
    // What JSON.parse alone gives: other digits.
    expect(JSON.stringify(JSON.parse(text))).not.toBe(text);
  });

  it('leaves digits inside strings alone, escaped quotes included', () => {
    const text = '{"a":"x\\"12345678901234567891","b":"12345678901234567891"}';
    expect(parseJsonExactly(text)).toEqual(JSON.parse(text));
  });

  it('throws on what JSON.parse throws on, long numbers or not', () => {
    for (const text of ['{"a":012345678901234567891}', '[12345678901234567891', '{"a":"12345678901234567891}', '[12345678901234567891 1]']) {
      expect(() => parseJsonExactly(text), text).toThrow(SyntaxError);
    }
  });

  it('lets a detector find a 19-digit card sent as a number, and a field rule mask it whole', () => {
    const text = '{"notes":[4000123456789010016,12345678901234567890],"card":6011000990139424124}';
    const masks = compileFieldMasks([
      { field: 'notes', detectors: ['payment_card'], strategy: 'redact' },
      { field: 'card', strategy: 'partial' },
    ]);
    const { value, changed } = masks.maskDocument(parseJsonExactly(text) as JsonValue);
    expect(changed).toBe(true);
    const written = stringifyJson(value);
    expect(written).toBe('{"notes":["[REDACTED:payment_card]",12345678901234567890],"card":"***************4124"}');
  });

  it('finds a card in any spelling of its number a client reads as it (a fraction of zeros, an exponent)', () => {
    const masks = compileFieldMasks([{ field: 'notes', detectors: ['payment_card'], strategy: 'redact' }]);
    for (const spelling of ['4111111111111111.0', '4111111111111111.00', '4.111111111111111e15', '4.111111111111111E+15', '41111111111111110e-1', '0.4111111111111111e16']) {
      masks.reset();
      const { value } = masks.maskDocument(parseJsonExactly(`{"notes":${spelling}}`) as JsonValue);
      expect(stringifyJson(value), spelling).toBe('{"notes":"[REDACTED:payment_card]"}');
    }
  });

  it('takes no string or member name of the document for a tag, and keeps a number past a double\'s range', () => {
    const text = '{"\\u0000json-number:5":"\\u0000json-number:7","n":12345678901234567890,"huge":1e400}';
    const masks = compileFieldMasks([{ field: 'n', strategy: 'redact' }]);
    const { value } = masks.maskDocument(parseJsonExactly(text) as JsonValue);
    const written = stringifyJson(value);
    expect(JSON.parse(written)).toEqual({ '\u0000json-number:5': '\u0000json-number:7', n: '[REDACTED]', huge: expect.anything() as unknown });
    expect(written).toContain('"huge":1e400');
  });
});
