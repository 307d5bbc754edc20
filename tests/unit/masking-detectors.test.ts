/**
 * Content detectors: for every detector, values it must find (and exactly
 * what span) and look-alikes it must leave alone (the reason validation
 * exists: a Luhn-invalid number, a date, an order id, a bad IBAN checksum,
 * base64 that is not a JWT, …). Then the registry: unknown names, merging
 * overlapping spans.
 */
import { describe, expect, it } from 'vitest';
import {
  DETECTOR_NAMES, DETECTORS, findSpans, isDetectorName, resolveDetectors, scanSpans, type DetectorName,
} from '../../engine/masking/detectors.js';
import { MaskRuleError, UnknownDetectorError } from '../../engine/masking/errors.js';

/** The substrings `detector` finds in `text`. */
const found = (text: string, detector: DetectorName) => findSpans(text, [detector]).map((s) => text.slice(s.start, s.end));

/** Appends the Luhn check digit, so tests can make valid (or deliberately invalid) numbers of any length. */
function withLuhn(body: string): string {
  let sum = 0;
  for (let i = body.length - 1, double = true; i >= 0; i--, double = !double) {
    let d = Number(body[i]) * (double ? 2 : 1);
    if (d > 9) d -= 9;
    sum += d;
  }
  return body + ((10 - (sum % 10)) % 10);
}

/** An IBAN with correct check digits for any country and account, whatever the country's length. */
function ibanWith(country: string, bban: string): string {
  const digits = (bban + country + '00').replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55));
  let r = 0;
  for (const d of digits) r = (r * 10 + Number(d)) % 97;
  return country + String(98 - r).padStart(2, '0') + bban;
}

function expectFinds(detector: DetectorName, cases: [text: string, match: string][]) {
  for (const [text, match] of cases) expect(found(text, detector), text).toEqual([match]);
}
function expectIgnores(detector: DetectorName, texts: string[]) {
  for (const text of texts) expect(found(text, detector), text).toEqual([]);
}

describe('email', () => {
  it('finds addresses, including sub-domains, tags and non-ASCII, without trailing punctuation', () => {
    expectFinds('email', [
      ['contact jane.doe@example.com today', 'jane.doe@example.com'],
      ['<a.b+tag@mail.sub.example.co.uk>', 'a.b+tag@mail.sub.example.co.uk'],
      ['write to josé@exemple.fr.', 'josé@exemple.fr'],
      ['user_01@xn--bcher-kva.example', 'user_01@xn--bcher-kva.example'],
      ['"email":"ops@acme.io"', 'ops@acme.io'],
    ]);
  });

  it('finds several in one text', () => {
    expect(found('a@example.com, b@example.org; c@example.net', 'email')).toEqual(['a@example.com', 'b@example.org', 'c@example.net']);
  });

  it('finds "@" as clients turn text into one: fullwidth, URL-encoded, an HTML character reference', () => {
    expectFinds('email', [
      ['write to ada\uff20example.com', 'ada\uff20example.com'],
      ['<a href="mailto:ada%40example.com">', 'ada%40example.com'],
      ['ada&#64;example.com', 'ada&#64;example.com'],
      ['ada&#x40;example.com', 'ada&#x40;example.com'],
    ]);
    expectIgnores('email', ['100%40 done', 'rate %40example', '&#64;handle']);
  });

  it('ignores handles, hosts without a dot, numeric TLDs and malformed domains', () => {
    expectIgnores('email', [
      'ping @jane on chat',
      'ssh admin@localhost',
      'version 1.2@3.4',
      'a@b.c',
      'x@-bad.example.com',
      'ends with dot.@example.com',
      `${'a'.repeat(65)}@example.com`,
      'no at sign here',
    ]);
  });
});

describe('payment_card', () => {
  it('finds Luhn-valid numbers, together or grouped by spaces or dashes', () => {
    expectFinds('payment_card', [
      ['visa 4111111111111111 on file', '4111111111111111'],
      ['card: 4111 1111 1111 1111.', '4111 1111 1111 1111'],
      ['4111-1111-1111-1111', '4111-1111-1111-1111'],
      ['amex 378282246310005', '378282246310005'],
      ['amex 3782 822463 10005', '3782 822463 10005'],
      ['mc 5555555555554444', '5555555555554444'],
      [`mc 2-series ${withLuhn('222300312200322')}`, withLuhn('222300312200322')],
      ['discover 6011111111111117', '6011111111111117'],
      [`19 digits ${withLuhn('622126000000000000')}`, withLuhn('622126000000000000')],
      ['qty 12 4111 1111 1111 1111', '4111 1111 1111 1111'],
      ['4111.1111.1111.1111', '4111.1111.1111.1111'],
      ['4111  1111  1111  1111', '4111  1111  1111  1111'],
      ['4111\u00a01111\u00a01111\u00a01111', '4111\u00a01111\u00a01111\u00a01111'],
      ['4111\t1111\t1111\t1111', '4111\t1111\t1111\t1111'],
    ]);
  });

  it('finds a card glued to a word: Luhn, length and MII are check enough', () => {
    expectFinds('payment_card', [
      ['card-4111-1111-1111-1111', '4111-1111-1111-1111'],
      ['visa/4111111111111111', '4111111111111111'],
      ['ref_4111111111111111', '4111111111111111'],
      ['x4111111111111111', '4111111111111111'],
      ['4111111111111111x', '4111111111111111'],
      ['ORD-4111-1111-1111-1111', '4111-1111-1111-1111'],
      ['4111/1111/1111/1111', '4111/1111/1111/1111'],
      ['4111_1111_1111_1111', '4111_1111_1111_1111'],
      ['4111\u20091111\u20091111\u20091111', '4111\u20091111\u20091111\u20091111'],
      ['uuid 4111111111111111-aaaa', '4111111111111111'],
    ]);
  });

  it('ignores Luhn-invalid numbers, wrong lengths, timestamps, amounts and numbers inside tokens', () => {
    const luhnValidTimestamp = withLuhn('171800000000'); // 13 digits, Luhn-valid, starts with 1
    expectIgnores('payment_card', [
      'order 4111111111111112',
      'invoice 4111 1111 1111 1112',
      '411111111111', // 12 digits
      `${withLuhn('4111111111111111111')}`, // 20 digits
      `created ${luhnValidTimestamp}`,
      'total 4111111111111111.50',
      'rate 12.4111111111111111',
      '4111 1111-1111 1111', // mixed separators
      '4111 1111   1111 1111', // three spaces
      '2024-06-30 12 34 56 78',
      '10.0.4.17',
    ]);
  });
});

describe('us_ssn', () => {
  it('finds AAA-GG-SSSS within the SSA rules, and bare nine digits in context or alone', () => {
    expectFinds('us_ssn', [
      ['ssn 123-45-6789 on file', '123-45-6789'],
      ['ssn 123 45 6789', '123 45 6789'],
      ['(078-05-1120)', '078-05-1120'],
      ['078.05.1120', '078.05.1120'],
      ['078\u201305\u20131120', '078\u201305\u20131120'],
      ['SSN078-05-1120x', '078-05-1120'],
      ['SSN: 123456789', '123456789'],
      ['social security number 899999999', '899999999'],
      ['123456789', '123456789'],
      [' 123456789 ', '123456789'],
    ]);
  });

  it('ignores numbers the SSA never issues, bare nine digits without context, and longer tokens', () => {
    expectIgnores('us_ssn', [
      '000-12-3456',
      '666-12-3456',
      '900-12-3456',
      '999-99-9999',
      '123-00-4567',
      '123-45-0000',
      'SSN 000123456',
      'order 123456789 shipped',
      'ORD-123-45-6789',
      '123-45-6789-01',
      '1234-56-7890',
      '123-45 6789',
      '2024-06-30',
      '1234567890',
    ]);
  });
});

describe('phone', () => {
  it('finds NANP numbers with separators and E.164 numbers', () => {
    expectFinds('phone', [
      ['call (415) 555-2671 now', '(415) 555-2671'],
      ['415-555-2671', '415-555-2671'],
      ['415.555.2671', '415.555.2671'],
      ['tel 415 555 2671.', '415 555 2671'],
      ['1-800-555-0199', '1-800-555-0199'],
      ['+1 415 555 2671', '+1 415 555 2671'],
      ['+1 (415) 555-2671', '+1 (415) 555-2671'],
      ['+44 20 7946 0958', '+44 20 7946 0958'],
      ['+44 (0)20 7946 0958', '+44 (0)20 7946 0958'],
      ['whatsapp:+4915112345678', '+4915112345678'],
      ['+1 415 555 2671 12345', '+1 415 555 2671'],
    ]);
  });

  it('ignores dates, ids, bare ten digits, invalid area codes and short numbers', () => {
    expectIgnores('phone', [
      'shipped 2024-06-30',
      'due 12/31/2024',
      'id 4155552671',
      'ORD-415-555-2671',
      '415-555-2671-88',
      '015-555-2671',
      '415-055-2671',
      '415-555.2671',
      'build 10.0.19041.1',
      'score +123',
      '3+4155552671',
      'version 415.555.26710',
    ]);
  });
});

describe('iban', () => {
  it('finds IBANs with a valid mod-97 checksum and the country length, compact or grouped', () => {
    expectFinds('iban', [
      ['pay to DE89 3704 0044 0532 0130 00 today', 'DE89 3704 0044 0532 0130 00'],
      ['GB82WEST12345698765432', 'GB82WEST12345698765432'],
      ['iban: FR1420041010050500013M02606.', 'FR1420041010050500013M02606'],
      ['NL91ABNA0417164300', 'NL91ABNA0417164300'],
      ['no NO9386011117947', 'NO9386011117947'],
      ['lower de89370400440532013000', 'de89370400440532013000'],
      [`unlisted ${ibanWith('ZZ', '1234567890123456')}`, ibanWith('ZZ', '1234567890123456')],
    ]);
  });

  it('ignores bad checksums, wrong lengths for the country and IBANs inside tokens', () => {
    expectIgnores('iban', [
      'DE89 3704 0044 0532 0130 01',
      'GB82WEST12345698765431',
      ibanWith('DE', '37040044053201300'), // valid checksum, 21 characters: Germany has 22
      ibanWith('DE', '3704004405320130001'), // 23 characters
      'XDE89370400440532013000',
      'DE00370400440532013000',
      'AB12 short',
    ]);
  });
});

describe('jwt', () => {
  const token = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
  const header = (json: object) => Buffer.from(JSON.stringify(json)).toString('base64url');

  it('finds signed tokens, unsigned ones and JWE, with a header carrying "alg"', () => {
    const unsigned = `${header({ alg: 'none' })}.eyJzdWIiOiJhIn0.`;
    const jwe = `${header({ alg: 'RSA-OAEP', enc: 'A256GCM' })}.a2V5.aXY.Y2lwaGVy.dGFn`;
    expectFinds('jwt', [
      [`Authorization: Bearer ${token}`, token],
      [`token=${token}.`, token],
      [`"${token}"`, token],
      [`x ${unsigned} y`, unsigned],
      [jwe, jwe],
    ]);
  });

  it('ignores base64 that is not a JWT', () => {
    expectIgnores('jwt', [
      `${header({ typ: 'JWT' })}.eyJzdWIiOiIxIn0.c2ln`, // no "alg"
      `${Buffer.from('{"alg" "HS256"').toString('base64url')}.eyJzdWIiOiIxIn0.c2ln`, // not JSON
      `${header({ alg: 'HS256' })}.eyJzdWIiOiIxIn0`, // two segments
      `${header({ alg: 'HS256' })}..c2ln`, // empty payload
      `${header({ alg: 'HS256' })}.a.b.c`, // four segments
      `x${token}`,
      'eyJhbGciOiJIUzI1NiJ9',
      'dGhpcyBpcyBqdXN0IGJhc2U2NA==.dGhpcw==.dGhhdA==',
    ]);
  });
});

describe('aws_access_key', () => {
  it('finds AKIA and ASIA keys', () => {
    expectFinds('aws_access_key', [
      ['aws_access_key_id = AKIAIOSFODNN7EXAMPLE', 'AKIAIOSFODNN7EXAMPLE'],
      ['"ASIAY34FZKBOKMUTVV7A"', 'ASIAY34FZKBOKMUTVV7A'],
    ]);
  });

  it('ignores other prefixes, wrong lengths, lower case and keys inside tokens', () => {
    expectIgnores('aws_access_key', [
      'AIDAIOSFODNN7EXAMPLE',
      'AKIAIOSFODNN7EXAMPL',
      'AKIAIOSFODNN7EXAMPLE1',
      'akiaiosfodnn7example',
      'XAKIAIOSFODNN7EXAMPLE',
    ]);
  });
});

describe('aws_secret_key', () => {
  const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

  it('finds 40-character keys with "aws", "secret" or an access key id just before', () => {
    expectFinds('aws_secret_key', [
      [`AWS_SECRET_ACCESS_KEY=${secret}`, secret],
      [`{"SecretAccessKey": "${secret}"}`, secret],
      [`AKIAIOSFODNN7EXAMPLE,${secret}`, secret],
    ]);
  });

  it('ignores such strings without context, hex digests, padded base64 and other lengths', () => {
    expectIgnores('aws_secret_key', [
      `value ${secret}`,
      'secret commit 0123456789abcdef0123456789abcdef01234567',
      `aws ${secret}=`,
      `aws ${secret}A`,
      `aws secret ${'-'.repeat(100)} ${secret}`,
      'aws ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMN', // no lower case, no digit
    ]);
  });
});

describe('private_key', () => {
  const body = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n';

  it('finds PEM private keys from BEGIN through the matching END line', () => {
    for (const label of ['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY', 'OPENSSH PRIVATE KEY', 'ENCRYPTED PRIVATE KEY', 'PGP PRIVATE KEY BLOCK']) {
      const pem = `-----BEGIN ${label}-----\n${body}-----END ${label}-----`;
      expectFinds('private_key', [[`key:\n${pem}\nrest`, pem]]);
    }
  });

  it('masks an unterminated key to the end of the text, and escaped newlines too', () => {
    const cut = `-----BEGIN RSA PRIVATE KEY-----\n${body}`;
    expectFinds('private_key', [[`log: ${cut}`, cut]]);
    const json = '-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----';
    expectFinds('private_key', [[`{"key":"${json}\\n"}`, json]]);
  });

  it('ignores public keys and certificates', () => {
    expectIgnores('private_key', [
      `-----BEGIN PUBLIC KEY-----\n${body}-----END PUBLIC KEY-----`,
      `-----BEGIN CERTIFICATE-----\n${body}-----END CERTIFICATE-----`,
      '-----BEGIN private key-----',
    ]);
  });
});

describe('registry', () => {
  it('has a detector for every name, and only those', () => {
    expect(Object.keys(DETECTORS).sort()).toEqual([...DETECTOR_NAMES].sort());
    for (const name of DETECTOR_NAMES) {
      expect(isDetectorName(name)).toBe(true);
      expect(DETECTORS[name].name).toBe(name);
    }
    expect(isDetectorName('credit_card')).toBe(false);
    expect(isDetectorName('toString')).toBe(false);
    expect(isDetectorName('__proto__')).toBe(false);
  });

  it('reports every unknown name, never ignores it', () => {
    let error: unknown;
    try {
      resolveDetectors(['email', 'credit_card', 'ssn', 'credit_card']);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UnknownDetectorError);
    expect(error).toBeInstanceOf(MaskRuleError);
    expect((error as UnknownDetectorError).unknown).toEqual(['credit_card', 'ssn']);
    expect((error as Error).message).toMatch(/unknown mask detectors "credit_card", "ssn" \(known: email, payment_card/);
    expect(() => findSpans('x', ['nope'])).toThrow(UnknownDetectorError);
  });

  it('resolves names de-duplicated, in order', () => {
    expect(resolveDetectors(['phone', 'email', 'phone']).map((d) => d.name)).toEqual(['phone', 'email']);
    expect(resolveDetectors([])).toEqual([]);
  });

  it('returns spans sorted by position across detectors', () => {
    const text = 'call 415-555-2671 or mail a@example.com, ssn 123-45-6789';
    expect(findSpans(text, ['us_ssn', 'email', 'phone']).map((s) => [s.detector, text.slice(s.start, s.end)])).toEqual([
      ['phone', '415-555-2671'], ['email', 'a@example.com'], ['us_ssn', '123-45-6789'],
    ]);
  });

  it('merges overlapping spans into one, labelled with the longest', () => {
    // E.164 takes "+1 4111 1111 1111" (13 digits), the card "4111 1111 1111 1111": both are masked as one span.
    const text = 'x +1 4111 1111 1111 1111 y';
    const spans = findSpans(text, ['phone', 'payment_card']);
    expect(spans).toEqual([{ start: 2, end: 24, detector: 'payment_card' }]);
    // A span contained in another disappears into it.
    const pem = '-----BEGIN PRIVATE KEY-----\naws AKIAIOSFODNN7EXAMPLE\n-----END PRIVATE KEY-----';
    expect(scanSpans(pem, resolveDetectors(['aws_access_key', 'private_key']))).toEqual([{ start: 0, end: pem.length, detector: 'private_key' }]);
  });

  it('finds nothing in plain text with every detector on', () => {
    expect(findSpans('The quick brown fox jumps over the lazy dog on 2024-06-30 at 10:30, order #123456.', DETECTOR_NAMES)).toEqual([]);
    expect(findSpans('', DETECTOR_NAMES)).toEqual([]);
  });
});
