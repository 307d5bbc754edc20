/**
 * Content detectors: for every detector, values it must find (and exactly
 * what span) and look-alikes it must leave alone (the reason validation
 * exists: a Luhn-invalid number, a date, an order id, a bad IBAN checksum,
 * base64 that is not a JWT, …). Then the registry: unknown names, merging
 * overlapping spans.
 */
import { describe, expect, it } from 'vitest';
import {
  DETECTOR_NAMES, DETECTORS, findSpans, isDetectorName, resolveDetectors, scanSpans, type DetectorName, type Span,
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

  it('finds "@" as an upper-case hex reference', () => {
    expectFinds('email', [['ada&#X40;example.com', 'ada&#X40;example.com']]);
  });

  it('ignores handles, hosts without a dot, numeric TLDs and malformed domains', () => {
    expectIgnores('email', [
      'ping @jane on chat',
      'ssh admin@localhost',
      'version 1.2@3.4',
      'a@b.c',
      'x@-bad.example.com',
      'ends with dot.@example.com',
      'no at sign here',
    ]);
  });

  it('finds a quoted local part and an IP-literal domain', () => {
    expectFinds('email', [
      ['write to "ada lovelace"@example.com now', '"ada lovelace"@example.com'],
      ['"ada\\"l"@example.com', '"ada\\"l"@example.com'],
      ['mail ada@[192.168.0.1] now', 'ada@[192.168.0.1]'],
      ['mail ada@[IPv6:2001:db8::1].', 'ada@[IPv6:2001:db8::1]'],
    ]);
  });

  it('ignores quotes and brackets that do not make an address', () => {
    expectIgnores('email', [
      'say "hi" @example.com',
      '""@example.com',
      '"ada\nlovelace"@example.com',
      'ping @[192.168.0.1]',
      'ada@[300.1.2.3]',
      'ada@[1.2.3]',
      'ada@[example.com]',
      'ada@[IPv6:zz::1]',
    ]);
  });

  it('masks the 64 characters before the "@" when a longer run of local-part characters precedes it', () => {
    const url = `https://crm.example.com/customers/search?query=${'a'.repeat(70)}&email=ada@example.com`;
    expectFinds('email', [
      [url, `${'a'.repeat(54)}&email=ada@example.com`],
      [`${'a'.repeat(65)}@example.com`, `${'a'.repeat(64)}@example.com`],
    ]);
  });

  it('reads through format characters and ideographic or fullwidth full stops', () => {
    expectFinds('email', [
      ['ada@exa\u200bmple.com', 'ada@exa\u200bmple.com'],
      ['ada\u00ad@example.com', 'ada\u00ad@example.com'],
      ['a\u2060da@example\u200d.com today', 'a\u2060da@example\u200d.com'],
      ['ada@example\u3002com', 'ada@example\u3002com'],
      ['ada@example\uff0ecom', 'ada@example\uff0ecom'],
      ['ada@example\uff61com', 'ada@example\uff61com'],
    ]);
  });

  it('ends the domain at its last valid label: trailing dots, a hyphenated suffix', () => {
    expectFinds('email', [
      ['ada@example.com...then', 'ada@example.com'],
      ['ada@example.com-2024', 'ada@example.com'],
      ['ada@example.com--', 'ada@example.com'],
      ['ada@mail.example-corp.com', 'ada@mail.example-corp.com'],
      ['ada@example.com.\u3002next', 'ada@example.com'],
    ]);
    expectIgnores('email', ['ada@example..com', 'ada@.example.com', 'ada@example-.com', 'ada@example.c-om']);
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
      '4111 1111-1111 1112', // mixed separators, Luhn-invalid
      '4111 1111   1111 1111', // three spaces
      '2024-06-30 12 34 56 78',
      '10.0.4.17',
    ]);
  });

  it('finds cards written in other decimal digits, mapped to their values for Luhn', () => {
    expectFinds('payment_card', [
      ['\uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11', '\uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11'],
      [`card ${'\u0664' + '\u0661'.repeat(15)}.`, '\u0664' + '\u0661'.repeat(15)],
      ['\u096a\u0967\u0967\u0967-\u0967\u0967\u0967\u0967-\u0967\u0967\u0967\u0967-\u0967\u0967\u0967\u0967', '\u096a\u0967\u0967\u0967-\u0967\u0967\u0967\u0967-\u0967\u0967\u0967\u0967-\u0967\u0967\u0967\u0967'],
      [`x ${'\u{1d7d2}' + '\u{1d7cf}'.repeat(15)} y`, '\u{1d7d2}' + '\u{1d7cf}'.repeat(15)], // mathematical bold digits: surrogate pairs
      ['41\u200b11111111111111', '41\u200b11111111111111'],
    ]);
    expectIgnores('payment_card', ['\u0664' + '\u0661'.repeat(14) + '\u0662', '\uff14\uff11\uff11\uff11111111111111.50']);
  });

  it('finds groups separated by other dashes, separator runs and line breaks', () => {
    expectFinds('payment_card', [
      ['4111\u20131111\u20131111\u20131111', '4111\u20131111\u20131111\u20131111'],
      ['4111\u20141111\u20141111\u20141111', '4111\u20141111\u20141111\u20141111'],
      ['4111\u22121111\u22121111\u22121111', '4111\u22121111\u22121111\u22121111'],
      ['4111\u20101111\u20101111\u20101111', '4111\u20101111\u20101111\u20101111'],
      ['4111\u20111111\u20111111\u20111111', '4111\u20111111\u20111111\u20111111'],
      ['card 4111, 1111, 1111, 1111.', '4111, 1111, 1111, 1111'],
      ['4111 - 1111 - 1111 - 1111', '4111 - 1111 - 1111 - 1111'],
      ['4111 \u2013 1111 \u2013 1111 \u2013 1111', '4111 \u2013 1111 \u2013 1111 \u2013 1111'],
      ['card:\n4111\n1111\n1111\n1111\nexp 12/30', '4111\n1111\n1111\n1111'],
      ['4111\r\n1111\r\n1111\r\n1111', '4111\r\n1111\r\n1111\r\n1111'],
      ['4111,1111,1111,1111', '4111,1111,1111,1111'],
      ['amex 3782, 822463, 10005', '3782, 822463, 10005'],
      ['4111 1111 1111 1111\n\n12,50', '4111 1111 1111 1111'],
    ]);
  });

  it('ignores amounts, lists, dates and versions written with the new separators', () => {
    expectIgnores('payment_card', [
      '1,234, 5678',
      '1,111,111,111,111,111', // thousands separators: groups of 3
      '4,111,111,111,111,111',
      '4111, 1111, 1111, 1111.50',
      '4111111111111111,50',
      '1,4111111111111111',
      '2023-2024-2025-2026', // Luhn-valid, but no card number starts 2023
      '2023, 2024, 2025, 2026',
      '2023\n2024\n2025\n2026',
      '2024-06-30 \u2013 2024-07-01',
      '1234, 5678, 9012, 3456',
      'ids 4111, 1111, 111, 11111', // not a card layout
      'release 2023.2024.2025.2026',
      '4111,  -1111,  -1111,  -1111', // runs longer than 3
    ]);
  });

  it('finds cards with mixed separators, with |, :, +, *, ~ or parentheses, and one digit per group', () => {
    expectFinds('payment_card', [
      ['4111 1111-1111 1111', '4111 1111-1111 1111'],
      ['card: 4111-1111 1111-1111.', '4111-1111 1111-1111'],
      ['4111.1111 1111-1111', '4111.1111 1111-1111'],
      ['4111 - 1111 1111-1111', '4111 - 1111 1111-1111'],
      ['amex 3782-822463 10005', '3782-822463 10005'],
      ['4111|1111|1111|1111', '4111|1111|1111|1111'],
      ['| 4111 | 1111 | 1111 | 1111 |', '4111 | 1111 | 1111 | 1111'],
      ['4111:1111:1111:1111', '4111:1111:1111:1111'],
      ['4111+1111+1111+1111', '4111+1111+1111+1111'],
      ['4111*1111*1111*1111', '4111*1111*1111*1111'],
      ['4111~1111~1111~1111', '4111~1111~1111~1111'],
      ['(4111) 1111 1111 1111', '(4111) 1111 1111 1111'],
      ['card (4111)-1111-1111-1111 on file', '(4111)-1111-1111-1111'],
      ['4111 (1111) 1111 1111', '4111 (1111) 1111 1111'],
      ['4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1', '4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1'],
      ['card 4-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1 exp 12/30', '4-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1'],
      ['4.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1', '4.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1'],
      ['4\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01', '4\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01\u00a01'],
    ]);
    expect(found('4111 1111-1111 1111, 5555|5555|5555|4444', 'payment_card')).toEqual(['4111 1111-1111 1111', '5555|5555|5555|4444']);
  });

  it('ignores dates, times, phone numbers, ids, versions, addresses and lists written with mixed or the new separators', () => {
    expectIgnores('payment_card', [
      '2026-12-02 10:54:14',
      'at 2026-12-02 10:54:14.123456+00:00',
      '2026-12-02 | 10:54:14 | 2026-12-03 | 11:00:00',
      '12/31/2024 - 01/01/2025 - 03/31/2025',
      'call 415 555 0101 or 415-555-0102',
      '+1 (415) 555-2671 / +44 (0)20 7946-0958',
      'ORD-1234-5678 9012',
      'release v1.2.3 (build 4.5.6:7)',
      '192.168.1.10:8080 10.0.4.17:443',
      'scores 5:4 3:2 1:0 2:2 4:1 3:3 5:0 1:1',
      '4111 1111-1111 1111.50', // an amount: the "." joins it to a number its groups do not use
      '4111|1111|1111|1111,50',
      '4111:1111:1111:1112', // Luhn-invalid
      '4111 1111-1111 111', // 15 digits, not a card layout
      '4111 1111 \n\n 1111 1111', // a run longer than 3 ends the run
      '4111 1111\t\t\t1111 1111', // three blanks mixed with one: two table columns
      '1 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1', // one digit per group: only a whole run of 13–19 is a card
      '4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 2',
      '4 1-1 1-1 1-1 1-1 1-1 1-1 1-1 1-1', // one digit per group needs one separator throughout
      '4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1', // a list
      'x 1.4.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1',
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
      '123-45/6789', // "/" is not mixed with another separator
      '2024-06-30',
      '1234567890',
    ]);
  });

  it('finds SSNs in other decimal digits and with other separators', () => {
    expectFinds('us_ssn', [
      ['ssn \u0660\u0667\u0668-\u0660\u0665-\u0661\u0661\u0662\u0660', '\u0660\u0667\u0668-\u0660\u0665-\u0661\u0661\u0662\u0660'],
      ['\uff10\uff17\uff18\uff10\uff15\uff11\uff11\uff12\uff10', '\uff10\uff17\uff18\uff10\uff15\uff11\uff11\uff12\uff10'],
      ['078/05/1120', '078/05/1120'],
      ['078_05_1120', '078_05_1120'],
      ['078\u201105\u20111120', '078\u201105\u20111120'],
      ['078\u201205\u20121120', '078\u201205\u20121120'],
      ['078\u221205\u22121120', '078\u221205\u22121120'],
      ['ssn 078  05  1120 on file', '078  05  1120'],
      ['078\u00a0\u00a005\u00a0\u00a01120', '078\u00a0\u00a005\u00a0\u00a01120'],
    ]);
  });

  it('ignores paths, dates and mixed or longer separators in the new forms', () => {
    expectIgnores('us_ssn', [
      'files/078/05/1120',
      '078/05-1120',
      '078   05   1120',
      '2024/06/30',
      '12/31/2024',
      '666/12/3456',
      '\u0660\u0660\u0660-12-3456',
    ]);
  });

  it('finds mixed separators, ":", spaced hyphens, a parenthesised area, and bare nine digits after "social"', () => {
    expectFinds('us_ssn', [
      ['078-05 1120', '078-05 1120'],
      ['ssn 078 05-1120 on file', '078 05-1120'],
      ['123-45 6789', '123-45 6789'],
      ['078:05:1120', '078:05:1120'],
      ['078:05-1120', '078:05-1120'],
      ['078 - 05 - 1120', '078 - 05 - 1120'],
      ['078 -05- 1120', '078 -05- 1120'],
      ['078\u00a0\u2013\u00a005\u00a0\u2013\u00a01120', '078\u00a0\u2013\u00a005\u00a0\u2013\u00a01120'],
      ['(078) 05-1120', '(078) 05-1120'],
      ['SSN (078)05-1120.', '(078)05-1120'],
      ['(078)-05-1120', '(078)-05-1120'],
      ['(078) 05 1120', '(078) 05 1120'],
      ['my social is 078051120', '078051120'],
      ['Social: 078051120', '078051120'],
    ]);
  });

  it('ignores phone numbers, dates, zip+4, amounts and invalid SSNs in the mixed and parenthesised forms', () => {
    expectIgnores('us_ssn', [
      '415 555 0101',
      'call 415-555 0101',
      '(415) 555-0101',
      '(415) 55-50101',
      'zip 94105-1234',
      'CA 94105 1234',
      '2024-06 30',
      '12-31 2024',
      '10:54:14',
      '2026-12-02 10:54:14',
      '123.45 6789', // an amount and a count: ".", "/" and "_" are not mixed
      '078_05 1120',
      '078 05.1120',
      '078 - 05 - 11200',
      '078  -  05  -  1120',
      '(666) 05-1120',
      '(900) 12-3456',
      '(078) 00-1120',
      '078-05 0000',
      '000:12:3456',
      '1(078) 05-1120',
      'antisocial ticket 078051120',
      'socialize order 078051120',
      'my social is 000051120',
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

  it('finds a number with an extension glued on (the extension may stay)', () => {
    expectFinds('phone', [
      ['415-555-2671x12', '415-555-2671'],
      ['415-555-2671ext5', '415-555-2671'],
      ['call 415-555-2671 ext. 5', '415-555-2671'],
      ['(415) 555-2671X3', '(415) 555-2671'],
      ['+1 415 555 2671x9', '+1 415 555 2671'],
      ['+44 20 7946 0958ext.12', '+44 20 7946 0958'],
    ]);
    expectIgnores('phone', ['415-555-2671xyz', '415-555-2671ext', 'ORD-415-555-2671x1']);
  });

  it('finds numbers with en dashes, no-break spaces, slashes and a 00 international prefix', () => {
    expectFinds('phone', [
      ['415\u2013555\u20132671', '415\u2013555\u20132671'],
      ['415\u00a0555\u00a02671', '415\u00a0555\u00a02671'],
      ['tel 415/555/2671.', '415/555/2671'],
      ['\uff14\uff11\uff15-\uff15\uff15\uff15-\uff12\uff16\uff17\uff11', '\uff14\uff11\uff15-\uff15\uff15\uff15-\uff12\uff16\uff17\uff11'],
      ['call 0044 20 7946 0958', '0044 20 7946 0958'],
      ['0049-151-1234-5678', '0049-151-1234-5678'],
      ['+44\u00a020\u00a07946\u00a00958', '+44\u00a020\u00a07946\u00a00958'],
    ]);
    expectIgnores('phone', [
      'api/415/555/2671',
      '12/31/2024',
      'id 0012345678901',
      '00:12:34',
      '0044',
      'ORD-0044 20 7946 0958',
      '00 0044 20',
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

  it('finds IBANs grouped by dashes, no-break spaces or double spaces', () => {
    expectFinds('iban', [
      ['iban DE89-3704-0044-0532-0130-00.', 'DE89-3704-0044-0532-0130-00'],
      ['DE89\u00a03704\u00a00044\u00a00532\u00a00130\u00a000', 'DE89\u00a03704\u00a00044\u00a00532\u00a00130\u00a000'],
      ['DE89  3704  0044  0532  0130  00', 'DE89  3704  0044  0532  0130  00'],
      ['GB82\u2013WEST\u20131234\u20135698\u20137654\u201332', 'GB82\u2013WEST\u20131234\u20135698\u20137654\u201332'],
    ]);
    expectIgnores('iban', ['DE89-3704-0044-0532-0130-01', 'DE89    3704 0044 0532 0130 00', 'DE893-704-0044-0532-0130-00']);
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

  it('finds a token glued on by "_", "-" or ".", and headers with whitespace in their JSON', () => {
    const spaced = (json: string) => `${Buffer.from(json).toString('base64url')}.eyJzdWIiOiIxIn0.c2ln`;
    const space = spaced('{ "alg": "HS256" }');
    const newline = spaced('{\n  "alg": "RS256"\n}');
    const tab = spaced('{\t"alg":"HS256"}');
    const crlf = spaced('{\r\n"alg":"HS256"}');
    expect([space, newline, tab, crlf].map((t) => t.slice(0, 4))).toEqual(['eyAi', 'ewog', 'ewki', 'ew0K']);
    expectFinds('jwt', [
      [`session_${token}`, token],
      [`sid-${token}`, token],
      [`v1.${token}`, token],
      [`x ${space} y`, space],
      [newline, newline],
      [`Bearer ${tab}`, tab],
      [`"${crlf}"`, crlf],
    ]);
  });

  it('ignores whitespace-led headers that are not an object with "alg"', () => {
    const spaced = (json: string) => `${Buffer.from(json).toString('base64url')}.eyJzdWIiOiIxIn0.c2ln`;
    expectIgnores('jwt', [
      spaced('{ "typ": "JWT" }'),
      spaced('{ "alg": 1 }'),
      spaced('{\n "alg" "HS256"\n}'),
      `x${spaced('{ "alg": "HS256" }')}`,
      'they eyAiYWxnIjogIkhTMjU2IiB9 are',
      'ewok.ewok.ewok',
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
      `---- BEGIN SSH2 PUBLIC KEY ----\n${body}---- END SSH2 PUBLIC KEY ----`,
      `-----begin public key-----\n${body}-----end public key-----`,
    ]);
  });

  it('finds BEGIN lines with four or more dashes, spaces inside them, lower case, and SSH2 keys', () => {
    for (const [begin, end] of [
      ['----BEGIN RSA PRIVATE KEY----', '----END RSA PRIVATE KEY----'],
      ['--------BEGIN PRIVATE KEY--------', '--------END PRIVATE KEY--------'],
      ['-----begin rsa private key-----', '-----end rsa private key-----'],
      ['-----BEGIN private key-----', '-----END private key-----'],
      ['----- BEGIN EC PRIVATE KEY -----', '----- END EC PRIVATE KEY -----'],
      ['---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----', '---- END SSH2 ENCRYPTED PRIVATE KEY ----'],
    ]) {
      const pem = `${begin}\n${body}${end}`;
      expectFinds('private_key', [[`key:\n${pem}\nrest`, pem]]);
    }
    // The END line of another label does not end the block: it runs on to its own.
    const nested = `-----BEGIN RSA PRIVATE KEY-----\n${body}-----END EC PRIVATE KEY-----\n${body}-----END RSA PRIVATE KEY-----`;
    expectFinds('private_key', [[`${nested} tail`, nested]]);
  });

  it('finds PuTTY private key files from the header through the MAC', () => {
    const ppk = (version: number) => [
      `PuTTY-User-Key-File-${version}: ssh-ed25519`,
      'Encryption: none',
      'Comment: ada@laptop',
      'Public-Lines: 2',
      'AAAAC3NzaC1lZDI1NTE5AAAAIOxF0M7',
      'QmVz',
      'Private-Lines: 1',
      'AAAAIFX1C5H3+5TbGQ0lGfcGcPFhvA',
      'Private-MAC: 5a8e06ed2f9b6ffa0c41ec4a1c4e2c11a2f4b6d8',
    ].join('\n');
    expectFinds('private_key', [
      [`file:\n${ppk(2)}\nend`, ppk(2)],
      [ppk(3), ppk(3)],
      [`{"ppk":"${ppk(3).replaceAll('\n', '\\n')}"}`, ppk(3).replaceAll('\n', '\\n')],
    ]);
    const cut = ppk(2).slice(0, ppk(2).indexOf('Private-MAC'));
    expectFinds('private_key', [[`log ${cut}`, cut]]);
    expectIgnores('private_key', [
      'a .ppk file starts with PuTTY-User-Key-File-3: and then the algorithm',
      ppk(2).slice(0, ppk(2).indexOf('Private-Lines')), // the public half only
      `PuTTY-User-Key-File-2: ssh-rsa is the header; ${'x'.repeat(9000)} Private-Lines: is another's`,
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

  it('reports spans in the original text when look-alike characters were read through, from every entry point', () => {
    const arabic = '\u0664' + '\u0661'.repeat(15);
    const bold = '\u{1d7d2}' + '\u{1d7cf}'.repeat(15); // 32 UTF-16 units
    const email = 'a\u00ad@exa\u200bmple.com';
    const text = `\u200b\u200bx ${arabic} y ${bold} z ${email}`;
    const at = (part: string, detector: DetectorName): Span => ({ start: text.indexOf(part), end: text.indexOf(part) + part.length, detector });
    const expected = [at(arabic, 'payment_card'), at(bold, 'payment_card'), at(email, 'email')];
    expect(expected.map((s) => s.start)).toEqual([4, 23, 58]);
    expect(findSpans(text, ['payment_card', 'email'])).toEqual(expected);
    const out: Span[] = [];
    DETECTORS.email.find(text, out);
    DETECTORS.payment_card.find(text, out);
    expect(out).toEqual([expected[2], expected[0], expected[1]]);
  });

  it('finds nothing in plain text with every detector on', () => {
    expect(findSpans('The quick brown fox jumps over the lazy dog on 2024-06-30 at 10:30, order #123456.', DETECTOR_NAMES)).toEqual([]);
    expect(findSpans('', DETECTOR_NAMES)).toEqual([]);
  });
});
