/**
 * How the ExternalProcessor reads text that may hold JSON it cannot parse
 * whole: where an object starts after comments, and member names with
 * comments before their colon. The bodies come from the upstream, so each
 * check must take time in proportion to the body: the last cases are
 * bodies that made the earlier patterns backtrack for seconds (quadratic)
 * or for good (exponential), holding the main thread and every other
 * request. They finish at once now; before, they ran past the test's
 * timeout.
 */
import { describe, expect, it } from 'vitest';
import { looksLikeJson, refuseMaskedMembersInText, withoutComments } from '../../ext-authz/process/json-body.js';

const MASKED = new Set(['email', 'ssn']);

const refusal = (text: string): string | null => {
  try {
    refuseMaskedMembersInText(text, MASKED);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
};

describe('looksLikeJson', () => {
  it('finds an object or array after a BOM, whitespace and comments', () => {
    expect(looksLikeJson('{"a":1}')).toBe(true);
    expect(looksLikeJson('\uFEFF  [1]')).toBe(true);
    expect(looksLikeJson('// note\n/* more */ \n{')).toBe(true);
    expect(looksLikeJson(`${'/**/'.repeat(50)}{"email":"ada@example.com"}`)).toBe(true);
  });

  it('does not take text, an unclosed comment or a comment with no line end for JSON', () => {
    for (const text of ['hello {', '/* open {', '// {', '', '0 {"a":1}', `${'/**/'.repeat(200_000)}x`]) {
      expect(looksLikeJson(text), text.slice(0, 40)).toBe(false);
    }
  });
});

describe('withoutComments', () => {
  it('drops comments but not what looks like one inside a string', () => {
    expect(withoutComments(`{"url":"http://x/*y*/", /* c */ email // z\n : 1, 'a//b': 2} /* open`))
      .toBe(`{"url":"http://x/*y*/",   email  \n : 1, 'a//b': 2}  `);
    expect(withoutComments('"escaped \\" /* still a string */" /**/x')).toBe('"escaped \\" /* still a string */"  x');
  });
});

describe('masked member names in text', () => {
  it('are found with comments before the colon, quoted or bare', () => {
    for (const text of ['0 {"email" /* c */ : "a"}', "0 {'ssn'// c\n: 'x'}", '0 { /* c */ email /* c */ : 1}', '0 {"em\\u0061il": 1}']) {
      expect(refusal(text), text).toMatch(/holds member "(email|ssn)"/);
    }
    expect(refusal('Contact email: write to the desk; see http://example.com/*')).toBeNull();
  });

  it('are looked for in time proportional to the text, whatever it repeats', () => {
    const bodies = [
      // A key then an unclosed comment, over and over: each try used to scan to the end.
      `{"customers":[{"id":1,"notes":"{: ${'"k"/*'.repeat(200_000)}"}]}`,
      `${'"k" /*'.repeat(200_000)}*/`,
      `{${'a/*'.repeat(200_000)}`,
      '"\\'.repeat(500_000),
    ];
    for (const body of bodies) expect(refusal(body)).toBeNull();
    expect(refusal(`${'"k"/*'.repeat(200_000)}*/ {"email" /**/ : 1}`)).toMatch(/holds member "email"/);
  });
});
