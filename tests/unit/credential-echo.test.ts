/**
 * The injected credential in what an upstream sends back, spelled so that
 * no literal spelling matches: characters separated, split by markup,
 * reversed, rot13. Either taken out where it stands or refused (BodyRefused).
 */
import { describe, expect, it } from 'vitest';
import { BodyRefused } from '../../ext-authz/process/body-refused.js';
import { CREDENTIAL_REPLACEMENT, credentialSecrets, holdsSecret, withoutSecrets } from '../../ext-authz/process/credential-echo.js';

const TOKEN = 'crm-upstream-secret-5d1e';
const secrets = credentialSecrets(`Bearer ${TOKEN}`);

const rot13 = (s: string) => s.replace(/[a-z]/gi, (c) => String.fromCharCode((c <= 'Z' ? 65 : 97) + ((c.toUpperCase().charCodeAt(0) - 65 + 13) % 26)));
const reversed = (s: string) => [...s].reverse().join('');

/** withoutSecrets' verdict: the credential replaced, the body refused, or passed as it came. */
function verdict(text: string): 'replaced' | 'refused' | 'passed' {
  try {
    const out = withoutSecrets(text, secrets);
    return out === text ? 'passed' : 'replaced';
  } catch (err) {
    if (err instanceof BodyRefused) return 'refused';
    throw err;
  }
}

describe('the credential spelled with something between its characters, or turned around', () => {
  const spellings: Record<string, string> = {
    dots: [...TOKEN].join('.'),
    dashes: [...TOKEN].join('-'),
    commas: [...TOKEN].join(','),
    'comma and space': [...TOKEN].join(', '),
    underscores: [...TOKEN].join('_'),
    slashes: [...TOKEN].join('/'),
    'dashes taken out': TOKEN.replaceAll('-', ''),
    'dashes as dots': TOKEN.replaceAll('-', '.'),
    'markup in HTML': `<p>crm-upstre<b></b>am-secret-5d1e</p>`,
    'a tag around each character': [...TOKEN].map((c) => `<span>${c}</span>`).join(''),
    'a comment in it': `crm-up<!-- x -->stream-secret-<i>5d1e</i>`,
    reversed: reversed(TOKEN),
    'reversed, dotted': [...reversed(TOKEN)].join('.'),
    rot13: rot13(TOKEN),
    'rot13, spaced': [...rot13(TOKEN)].join(' '),
    'upper case, dotted': [...TOKEN.toUpperCase()].join('.'),
    'fullwidth, dotted': [...TOKEN].map((c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0)).join('.'),
    'character references between': [...TOKEN].join('&shy;'),
    'numeric references between': [...TOKEN].join('&#8203;'),
    // Round 19: references as HTML also reads them, byte literals, markup behind another escaping.
    'upper-case hex references': [...TOKEN].map((c) => `&#X${c.charCodeAt(0).toString(16)};`).join(''),
    'hex references with leading zeros': [...TOKEN].map((c) => `&#x0000000${c.charCodeAt(0).toString(16)};`).join(''),
    'hex byte literals': `[]byte{${[...TOKEN].map((c) => `0x${c.charCodeAt(0).toString(16)}`).join(', ')}}`,
    'markup in JSON escapes': 'crm-upstre\\u003cem\\u003eam\\u003c/em\\u003e-secret-5d1e',
    'markup as references': 'crm-upstre&lt;em&gt;am&lt;/em&gt;-secret-5d1e',
    'markup percent-encoded': 'crm-upstre%3Cb%3Eam%3C/b%3E-secret-5d1e',
  };

  for (const [name, spelling] of Object.entries(spellings)) {
    it(`is found ${name}: ${spelling.slice(0, 60)}`, () => {
      expect(holdsSecret(`echo: ${spelling} (end)`, secrets)).toBe(true);
      expect(verdict(`echo: ${spelling} (end)`)).not.toBe('passed');
    });
  }

  it('replaces the reversed and rot13 credential where it stands, as any other spelling', () => {
    expect(withoutSecrets(`got ${reversed(TOKEN)}`, secrets)).toBe(`got ${CREDENTIAL_REPLACEMENT}`);
    expect(withoutSecrets(`got ${rot13(TOKEN)}`, secrets)).toBe(`got ${CREDENTIAL_REPLACEMENT}`);
  });

  it('finds it in a header name and value, as the processor reads them', () => {
    expect(holdsSecret(`x-debug\n${[...TOKEN].join('.')}`, secrets)).toBe(true);
    expect(holdsSecret(`x-${reversed(TOKEN)}\n1`, secrets)).toBe(true);
  });

  it('finds a credential without separators of its own spelled with them', () => {
    const plain = credentialSecrets('a1b2c3d4e5f6g7h8');
    expect(holdsSecret([...'a1b2c3d4e5f6g7h8'].join('.'), plain)).toBe(true);
    expect(holdsSecret('a1b2-c3d4-e5f6-g7h8', plain)).toBe(true);
  });

  it('leaves text that only shares pieces of it alone', () => {
    for (const text of [
      'crm upstream secret',
      'the crm-upstream is fine; 5d1e is a hash',
      [...TOKEN.slice(0, -1)].join('.'),
      '<p>crm-upstream</p><p>nothing else</p>',
      'e1d5 is not it',
    ]) {
      expect(holdsSecret(text, secrets), text).toBe(false);
      expect(verdict(text), text).toBe('passed');
    }
  });

  it('does not match a short credential by chance once separators are dropped', () => {
    // Under 8 letters and digits: left out of the separator-free comparison, as short spellings are left out.
    const short = credentialSecrets('ab-cd-ef-g');
    expect(holdsSecret('a.b.c.d.e.f.g', short)).toBe(false);
    expect(holdsSecret('ab-cd-ef-g', short)).toBe(true);
  });

  // Bodies that made a pattern rescan the text from each position: these ran for minutes before (past the test's
  // timeout), and take well under a second each now. No timing is asserted; the timeout is what fails.
  it('reads a body of a MiB whatever it is made of, without going back over it', () => {
    const size = 1024 * 1024;
    for (const filler of ['<', '<a', 'c.r.m.-.', 'a', '&#99;<b>', '9, ', ' 99_', '%2e', '\\x', 'é ']) {
      const text = filler.repeat(Math.ceil(size / filler.length)).slice(0, size);
      expect(holdsSecret(text, secrets), filler).toBe(false);
    }
  });

  it('reads long runs of combining marks without going back over them (normalising sorts each run)', () => {
    // Two marks of different classes, alternating: V8 puts a run in order in time quadratic in it (a MiB: minutes).
    expect(holdsSecret(`{"echo":"a${'\u0301\u0316'.repeat(512 * 1024)}"}`, secrets)).toBe(false);
    expect(holdsSecret(`${'\u0301\u0316'.repeat(64 * 1024)}${TOKEN}`, secrets)).toBe(true);
  });

  it('reads runs of several MiB of numbers or invisible characters without overflowing the stack', () => {
    for (const body of ['1,'.repeat(2 * 1024 * 1024), '137, '.repeat(1024 * 1024), '\u200b'.repeat(4 * 1024 * 1024)]) {
      expect(holdsSecret(body, secrets)).toBe(false);
    }
    // The credential as codes, in the middle of a long run, is still found across the pieces.
    const codes = [...`Bearer ${TOKEN}`].map((c) => c.charCodeAt(0));
    const run = [...Array.from({ length: 4090 }, () => 32), ...codes, ...Array.from({ length: 5000 }, () => 32)].join(',');
    expect(holdsSecret(run, secrets)).toBe(true);
  });

  it('reads runs of numbers whose ends could be read several ways without going back over them', () => {
    // " 99_ 99_ …": a run of character codes no end of which is a word boundary (quadratic before: 15 s for this).
    expect(holdsSecret(' 99_'.repeat(64 * 1024), secrets)).toBe(false);
  });
});

describe('a JSON body rewritten to take out an escaped echo', () => {
  it('keeps every other value as it was, numbers past a double included', () => {
    const escaped = [...TOKEN].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
    const body = `{"id": 12345678901234567890123, "amount": 1e400, "small": 0.1, "echo": "Bearer ${escaped}"}`;
    const out = withoutSecrets(body, secrets);
    expect(out).toBe(`{"id":12345678901234567890123,"amount":1e400,"small":0.1,"echo":"${CREDENTIAL_REPLACEMENT}"}`);
  });
});

describe('the credential as the bytes of a UTF-16 string, in hex or base64', () => {
  // Java's getBytes("UTF-16") is big-endian after a BOM; .NET's Encoding.Unicode is little-endian.
  const bigEndian = Buffer.from(TOKEN, 'utf16le').swap16();
  const java = Buffer.concat([Buffer.from([0xfe, 0xff]), bigEndian]);

  for (const [name, bytes] of [['little-endian', Buffer.from(TOKEN, 'utf16le')], ['big-endian', bigEndian], ['big-endian after a BOM', java]] as const) {
    for (const encoding of ['hex', 'base64', 'base64url'] as const) {
      it(`is replaced: ${name}, ${encoding}`, () => {
        expect(verdict(`dump: ${bytes.toString(encoding)} (end)`)).toBe('replaced');
      });
    }
  }
});
