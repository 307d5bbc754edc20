/**
 * Mask strategies (redact, partial, hash, null) and the compiled column
 * masker: whole values and detector spans, "unchanged" as the same string,
 * counts per column and detector, and rules that cannot be enforced.
 */
import { createSecretKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MaskRuleError, UnknownDetectorError } from '../../engine/masking/errors.js';
import { compileMasker } from '../../engine/masking/masker.js';
import {
  createHasher, HASH_HEX_CHARS, HASH_PREFIX, maskShape, MIN_HASH_KEY_BYTES, partial, REDACTED, redactMarker,
} from '../../engine/masking/strategies.js';

const KEY = 'k'.repeat(32);

describe('redact', () => {
  it('is a fixed marker, naming the detector for a span', () => {
    expect(redactMarker(null)).toBe('[REDACTED]');
    expect(REDACTED).toBe('[REDACTED]');
    expect(redactMarker('email')).toBe('[REDACTED:email]');
  });
});

describe('partial', () => {
  it('keeps the last 4 of cards, SSNs and phones, and their punctuation', () => {
    expect(partial('4111 1111 1111 1111', 'payment_card')).toBe('**** **** **** 1111');
    expect(partial('4111111111111111', 'payment_card')).toBe('************1111');
    expect(partial('123-45-6789', 'us_ssn')).toBe('***-**-6789');
    expect(partial('+1 (415) 555-2671', 'phone')).toBe('+* (***) ***-2671');
  });

  it('keeps the first character and the domain of an email', () => {
    expect(partial('jane.doe@example.com', 'email')).toBe('j***@example.com');
    expect(partial('j@example.com', 'email')).toBe('***@example.com');
    expect(partial('😀x@example.com', 'email')).toBe('😀***@example.com');
  });

  it('keeps an IBAN\'s country code and an access key\'s prefix', () => {
    expect(partial('DE89 3704 0044 0532 0130 00', 'iban')).toBe('DE** **** **** **** **30 00');
    expect(partial('AKIAIOSFODNN7EXAMPLE', 'aws_access_key')).toBe('AKIA************MPLE');
  });

  it('keeps nothing of a secret', () => {
    expect(partial('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln', 'jwt')).toBe('[REDACTED:jwt]');
    expect(partial('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'aws_secret_key')).toBe('[REDACTED:aws_secret_key]');
    expect(partial('-----BEGIN PRIVATE KEY-----\n…', 'private_key')).toBe('[REDACTED:private_key]');
  });

  it('masks a whole value as an email when it is one, otherwise all but the last 4', () => {
    expect(partial('jane.doe@example.com')).toBe('j***@example.com');
    expect(partial('Jonathan Smith')).toBe('******** *mith');
    expect(partial('078-05-1120')).toBe('***-**-1120');
    expect(partial('not an @ email.com')).toBe('*** ** @ ****l.com');
  });

  it('fully masks short values: never half or more revealed', () => {
    expect(partial('1234')).toBe('****');
    expect(partial('1234567')).toBe('*******');
    expect(partial('12345678')).toBe('****5678');
    expect(partial('')).toBe('');
    expect(partial('--')).toBe('--');
    expect(maskShape('AKIA1234', 4, 4)).toBe('********');
  });

  it('masks one "*" per code point, never splitting a surrogate pair', () => {
    expect(partial('Zoë 🚀🚀 Müller-Lüdenscheidt')).toBe('*** ** ******-********eidt');
    expect(partial('ab🚀cdefgh🚀')).toBe('******fgh🚀');
    const masked = partial('😀😀😀😀😀😀😀😀😀');
    expect(masked).toBe('*****😀😀😀😀');
    expect(Buffer.from(masked, 'utf8').toString('utf8')).toBe(masked); // well-formed UTF-16
  });
});

describe('hash', () => {
  it('is a keyed, truncated HMAC-SHA256 with a prefix', () => {
    const hash = createHasher(KEY);
    const h = hash('123-45-6789');
    expect(h).toMatch(new RegExp(`^${HASH_PREFIX}[0-9a-f]{${HASH_HEX_CHARS}}$`));
    expect(hash('123-45-6789')).toBe(h); // deterministic: joins and GROUP BY still work
    expect(hash('123-45-6788')).not.toBe(h);
    expect(createHasher('j'.repeat(32))('123-45-6789')).not.toBe(h); // keyed
  });

  it('accepts raw bytes and KeyObjects, and the same key gives the same hash', () => {
    const bytes = Buffer.from(KEY, 'utf8');
    expect(createHasher(bytes)('x')).toBe(createHasher(KEY)('x'));
    expect(createHasher(createSecretKey(bytes))('x')).toBe(createHasher(KEY)('x'));
    expect(createHasher(new Uint8Array(bytes))('x')).toBe(createHasher(KEY)('x'));
  });

  it('refuses keys shorter than the minimum', () => {
    expect(() => createHasher('x'.repeat(MIN_HASH_KEY_BYTES - 1))).toThrow(MaskRuleError);
    expect(() => createHasher(Buffer.alloc(0))).toThrow(/at least 16 bytes/);
    expect(() => createHasher('x'.repeat(MIN_HASH_KEY_BYTES))).not.toThrow();
  });
});

describe('compileMasker, whole values', () => {
  it('applies each strategy to the whole value and counts values', () => {
    const redact = compileMasker({ strategy: 'redact' });
    expect(redact.mask('078-05-1120')).toBe('[REDACTED]');
    const part = compileMasker({ strategy: 'partial' });
    expect(part.mask('jane@example.com')).toBe('j***@example.com');
    const hash = compileMasker({ strategy: 'hash' }, { hashKey: KEY });
    expect(hash.mask('078-05-1120')).toBe(createHasher(KEY)('078-05-1120'));
    const nul = compileMasker({ strategy: 'null' });
    expect(nul.mask('078-05-1120')).toBeNull();

    redact.mask('a');
    redact.countValue();
    expect(redact.counts('public.customers.ssn')).toEqual([{ column: 'public.customers.ssn', detector: null, count: 3 }]);
    redact.reset();
    expect(redact.counts('ssn')).toEqual([]);
  });

  it('treats an empty detector list as the whole value (masking nothing would fail open)', () => {
    const masker = compileMasker({ strategy: 'redact', detectors: [] });
    expect(masker.detectors).toEqual([]);
    expect(masker.mask('plain text')).toBe('[REDACTED]');
  });
});

describe('compileMasker, detectors', () => {
  const text = 'Reach jane@example.com or 415-555-2671; card 4111 1111 1111 1111.';

  it('replaces only the matching spans, per strategy', () => {
    const detectors = ['email', 'phone', 'payment_card'];
    expect(compileMasker({ strategy: 'redact', detectors }).mask(text))
      .toBe('Reach [REDACTED:email] or [REDACTED:phone]; card [REDACTED:payment_card].');
    expect(compileMasker({ strategy: 'partial', detectors }).mask(text))
      .toBe('Reach j***@example.com or ***-***-2671; card **** **** **** 1111.');
    const hash = createHasher(KEY);
    expect(compileMasker({ strategy: 'hash', detectors }, { hashKey: KEY }).mask(text))
      .toBe(`Reach ${hash('jane@example.com')} or ${hash('415-555-2671')}; card ${hash('4111 1111 1111 1111')}.`);
  });

  it('reads escaped letters, digits and "@" as a client parsing the value would, keeping the value\'s shape', () => {
    const masker = compileMasker({ strategy: 'redact', detectors: ['email', 'payment_card', 'us_ssn'] });
    // NDJSON, or JSON5, inside a string: a client that parses it reads the escapes.
    expect(masker.mask('{"a":1}\n{"card":"\\u0034111111111111111"}')).toBe('{"a":1}\n{"card":"[REDACTED:payment_card]"}');
    expect(masker.mask("{'c': '\\x34111111111111111',}")).toBe("{'c': '[REDACTED:payment_card]',}");
    expect(masker.mask('ssn \\u0030\\u0037\\u0038-05-1120 "quoted\\" \\n"')).toBe('ssn [REDACTED:us_ssn] "quoted\\" \\n"');
    expect(masker.mask('ada\\u0040example\\u002ecom')).toBe('[REDACTED:email]');
    expect(masker.mask('<td>&#52;111 1111 1111 1111</td>')).toBe('<td>[REDACTED:payment_card]</td>');
    // Nothing found once read: the value as it came, escapes and all.
    expect(masker.mask('path C:\\x41\\u0042 and &#65;')).toBe('path C:\\x41\\u0042 and &#65;');
  });

  it('reads a value without the escape sequences a terminal or an ISO-2022 decoder shows nothing of', () => {
    const masker = compileMasker({ strategy: 'redact', detectors: ['email', 'us_ssn'] });
    expect(masker.mask('ada@exa\x1b(Bmple.com')).toBe('[REDACTED:email]');
    expect(masker.mask('\x1b[1mssn\x1b[0m 078-05-\x1b[31m1120')).toBe('ssn [REDACTED:us_ssn]');
    // Written as JSON escapes (NDJSON in a text body, which a client parses): read as what they stand for.
    expect(masker.mask('{"m":"ada@exa\\u001b(Bmple.com"}')).toBe('{"m":"[REDACTED:email]"}');
    // Nothing hidden by them: the value keeps them (a log's colours).
    expect(masker.mask('\x1b[32mok\x1b[0m')).toBe('\x1b[32mok\x1b[0m');
    expect(masker.mask('{"m":"\\u001b[32mok"}')).toBe('{"m":"\\u001b[32mok"}');
  });

  it('reads "@" as &commat; and as a \\u0040 escape, and leaves those that make no address alone', () => {
    const masker = compileMasker({ strategy: 'redact', detectors: ['email'] });
    for (const text of ['ada&commat;example.com', '<a href="mailto:ada&commat;example.com">', 'log: ada\\u0040example.com sent', 'const to = "ada\\u0040example.com";']) {
      expect(masker.mask(text), text).toContain('[REDACTED:email]');
    }
    for (const text of ['&commat;handle', 'ada&commat;localhost', 'ada&COMMAT;example.com', 'ada&Commat;example.com', '\\u0040example.com', 'x\\u0040y', 'ada\\u0041example.com', 'ada\\u00400.1']) {
      expect(masker.mask(text), text).toBe(text);
    }
  });

  it('reads escapes beside a plain match too, HTML references and escaped Unicode the detectors know, but not past an escaped backslash', () => {
    const masker = compileMasker({ strategy: 'redact', detectors: ['email', 'payment_card', 'us_ssn'] });
    expect(masker.mask('mail a@b.com card \\u0034111111111111111')).toBe('mail [REDACTED:email] card [REDACTED:payment_card]');
    expect(masker.mask('<p>ada@example.com</p><p>&#52;111111111111111</p>')).toBe('<p>[REDACTED:email]</p><p>[REDACTED:payment_card]</p>');
    expect(masker.mask('<td>4111&nbsp;1111&nbsp;1111&nbsp;1111</td>')).not.toContain('1111&nbsp;');
    expect(masker.mask('ada&commat;example&period;com')).toBe('[REDACTED:email]');
    expect(masker.mask('x=\\uff14\\uff11\\uff11\\uff11111111111111')).not.toMatch(/uff14|1111/);
    // "\\\\u0034" is a backslash and "u0034": read as such, it is kept, and so is what it would have spelled.
    expect(masker.mask('{"p":"C:\\\\u0034"} {"c":"\\u0034111111111111111"}')).toBe('{"p":"C:\\\\u0034"} {"c":"[REDACTED:payment_card]"}');
  });

  it('masks only what the rule names', () => {
    expect(compileMasker({ strategy: 'redact', detectors: ['phone'] }).mask(text))
      .toBe('Reach jane@example.com or [REDACTED:phone]; card 4111 1111 1111 1111.');
  });

  it('nulls the whole value when anything matched, and keeps it otherwise', () => {
    const masker = compileMasker({ strategy: 'null', detectors: ['email'] });
    expect(masker.mask(text)).toBeNull();
    expect(masker.mask('nothing here')).toBe('nothing here');
    expect(masker.counts('notes')).toEqual([{ column: 'notes', detector: 'email', count: 1 }]);
  });

  it('returns the very same string when nothing matched', () => {
    const masker = compileMasker({ strategy: 'redact', detectors: ['email', 'us_ssn'] });
    const value = `plain ${'text '.repeat(3)}`;
    expect(masker.mask(value)).toBe(value);
    expect(masker.counts('notes')).toEqual([]);
  });

  it('counts spans per detector, never values', () => {
    const masker = compileMasker({ strategy: 'redact', detectors: ['email', 'phone', 'us_ssn'] });
    masker.mask('a@example.com b@example.com 415-555-2671');
    masker.mask('c@example.com');
    masker.mask('nothing');
    const counts = masker.counts('public.tickets.notes');
    expect(counts).toEqual([
      { column: 'public.tickets.notes', detector: 'email', count: 3 },
      { column: 'public.tickets.notes', detector: 'phone', count: 1 },
    ]);
    expect(JSON.stringify(counts)).not.toContain('example.com');
  });

  it('refuses rules it cannot enforce, before any value is read', () => {
    expect(() => compileMasker({ strategy: 'redact', detectors: ['email', 'credit_card'] })).toThrow(UnknownDetectorError);
    expect(() => compileMasker({ strategy: 'hash' })).toThrow(MaskRuleError);
    expect(() => compileMasker({ strategy: 'hash' })).toThrow(/needs a hash key/);
    expect(() => compileMasker({ strategy: 'hash', detectors: ['email'] }, { hashKey: 'short' })).toThrow(MaskRuleError);
  });
});
