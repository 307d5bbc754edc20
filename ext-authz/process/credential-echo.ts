/**
 * The target's credential in what an upstream sends back. Check injected
 * it into the request; an upstream that echoes the request (an
 * httpbin-style endpoint, an error quoting the token, a debug header) would
 * hand it to the agent. `credentialSecrets` lists the spellings an echo
 * uses; `withoutSecrets` replaces them in text, and refuses (BodyRefused)
 * text where the credential is only found through an encoding it cannot
 * rewrite in place; `holdsSecret` says whether a header or other bytes
 * hold it in any spelling or encoding looked for.
 *
 * Besides its spellings, each view of the text is also compared with only
 * its letters and digits kept, case-folded, against the credential's
 * spellings reduced the same way (`lettersAndDigits`): the credential with
 * anything between its characters (dots, dashes, commas, spaces, invisible
 * characters, markup tags), or with its own dashes left out, is found too.
 * Its reversed and rot13 forms are spellings like the others.
 *
 * Every view is made in time linear in the text (bodies of several MiB):
 * no pattern here rescans the text from each position.
 *
 * Not looked for: base32, compression inside base64, other ciphers and
 * anagrams, and anything the agent must reassemble from pieces in
 * different places.
 */
import type { JsonValue } from '../../engine/masking/json-fields.js';
import { stringifyJson, taggedNumber } from '../../engine/masking/json-numbers.js';
import { normalizeStreamSafe } from '../../engine/unicode.js';
import { BodyRefused } from './body-refused.js';
import { hasEscapes, withoutEscapeSequences } from '../../engine/masking/escape-sequences.js';
import { parseLeniently } from './json-body.js';

export const CREDENTIAL_REPLACEMENT = '[REDACTED:credential]';

/**
 * Spellings shorter than this (in characters, or in letters and digits for
 * the separator-free comparison) are left out: they would match ordinary
 * text by chance.
 */
const MIN_SECRET_LENGTH = 8;

/**
 * The strings of an injected credential header's value that must not come
 * back: the value, the token after its scheme (`Bearer <token>`), and for
 * Basic the decoded `user:password` and the password. Short parts (under 8
 * characters) are left out: they would match ordinary text.
 */
export function credentialSecrets(value: string): string[] {
  const parts = new Set<string>([value.trim()]);
  const [scheme, token] = value.trim().split(/\s+/, 2);
  if (token) {
    parts.add(token);
    if (scheme!.toLowerCase() === 'basic') {
      const decoded = Buffer.from(token, 'base64').toString('utf8');
      parts.add(decoded);
      parts.add(decoded.slice(decoded.indexOf(':') + 1));
    }
  }
  // The spellings an upstream echoing it would use: URL-encoded, base64 (at any offset in what it encodes), hex,
  // upper- or lower-cased, JSON with "\/", reversed, rot13. withoutSecrets also looks through wrapping, separators
  // and byte encodings.
  const spellings = new Set<string>();
  for (const part of parts) {
    for (const spelling of [part, encodeURIComponent(part), part.replaceAll('/', '\\/'), part.toUpperCase(), part.toLowerCase(), reversed(part), rot13(part)]) spellings.add(spelling);
    for (const bytes of ECHOED_BYTES.map((encode) => encode(part))) {
      for (const hex of [bytes.toString('hex'), bytes.toString('hex').toUpperCase()]) spellings.add(hex);
      for (const encoding of ['base64', 'base64url'] as const) for (const text of base64Inside(bytes, encoding)) spellings.add(text);
    }
  }
  return [...spellings].filter((p) => p.length >= MIN_SECRET_LENGTH);
}

/**
 * The credential's bytes as an echo may hold them (before hex or base64):
 * UTF-8, and UTF-16 in either order, since a .NET string is little-endian
 * and Java's getBytes("UTF-16") big-endian.
 */
const ECHOED_BYTES: readonly ((text: string) => Buffer)[] = [
  (text) => Buffer.from(text, 'utf8'),
  (text) => Buffer.from(text, 'utf16le'),
  (text) => Buffer.from(text, 'utf16le').swap16(),
];

const reversed = (text: string): string => [...text].reverse().join('');

const rot13 = (text: string): string => text.replace(/[A-Za-z]/g, (c) => {
  const base = c <= 'Z' ? 65 : 97;
  return String.fromCharCode(base + ((c.charCodeAt(0) - base + 13) % 26));
});

/**
 * The base64 characters that spell `bytes` wherever they sit in a longer
 * encoded text: at each of the three offsets a 3-byte group can start at,
 * without the characters the neighbouring bytes share. An upstream that
 * base64-encodes the headers it echoes puts the credential at any offset,
 * and the caller chooses it with a header of its own.
 */
function base64Inside(bytes: Buffer, encoding: 'base64' | 'base64url'): string[] {
  const spellings: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const text = Buffer.concat([Buffer.alloc(offset), bytes]).toString(encoding).replace(/=+$/, '');
    // Characters with bits of the padding before, or of whatever follows the credential, are not its own.
    const head = Math.ceil((offset * 8) / 6);
    const tail = ((offset + bytes.length) * 8) % 6 === 0 ? 0 : 1;
    spellings.push(text.slice(head, text.length - tail));
  }
  return spellings;
}

function holdsLiteral(text: string, secrets: readonly string[]): boolean {
  return secrets.some((s) => text.includes(s));
}

function replaceLiterals(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (out.includes(secret)) out = out.replaceAll(secret, CREDENTIAL_REPLACEMENT);
  return out;
}

export function withoutSecrets(text: string, secrets: readonly string[]): string {
  let out = replaceLiterals(text, secrets);
  if (secrets.length === 0) return out;
  // JSON (and JSON5, and the string literals of other languages) can spell it with escapes (\u0077, \x77, \/).
  if (out.includes('\\') && holdsLiteral(unescaped(out), secrets)) {
    const document = /^\s*[[{"]/.test(out) ? parseLeniently(out) : undefined;
    if (document === undefined) throw new BodyRefused('the body holds the target\'s credential written with escapes the gateway cannot take out');
    const { value, changed } = scrubStrings(document as JsonValue, secrets);
    if (changed) out = stringifyJson(value);
  }
  // Still there behind escapes, or written so that no spelling matches the text as it is: wrapped or spaced, byte by
  // byte encoded, re-cased.
  if (holdsSecret(out, secrets)) throw new BodyRefused('the body holds the target\'s credential in an encoding the gateway cannot take out');
  return out;
}

/** Whether text (a header, a body read as Latin-1) holds the credential in any spelling or encoding looked for. */
export function holdsSecret(text: string, secrets: readonly string[]): boolean {
  if (secrets.length === 0) return false;
  const { lowered, bare } = needles(secrets);
  // One view at a time: a body of several MiB makes each a copy.
  for (const { view, separators } of views(text)) {
    const lower = view.toLowerCase();
    if (lowered.some((s) => lower.includes(s))) return true;
    if (!separators) continue;
    const letters = lettersAndDigits(lower);
    if (bare.some((s) => letters.includes(s))) return true;
  }
  return false;
}

interface Needles {
  /** Every spelling, lower-cased. */
  lowered: string[];
  /** Every spelling with only its letters and digits, lower-cased, when that leaves MIN_SECRET_LENGTH of them. */
  bare: string[];
}

/** Per secrets list (one per exchange, asked for each header and the body). */
const NEEDLES = new WeakMap<readonly string[], Needles>();

function needles(secrets: readonly string[]): Needles {
  let found = NEEDLES.get(secrets);
  if (!found) {
    const lowered = [...new Set(secrets.map((s) => s.toLowerCase()))];
    const bare = [...new Set(lowered.map(lettersAndDigits))].filter((s) => s.length >= MIN_SECRET_LENGTH);
    found = { lowered, bare };
    NEEDLES.set(secrets, found);
  }
  return found;
}

/**
 * Only the ASCII letters and digits of lower-cased text, the same for the
 * text and for the credential's spellings. Whatever stands between the
 * credential's characters, and its own separators, drop out of both sides
 * of the comparison: `c.r.m.-.u.p…`, `c,r,m,…`, `crm_upstream`,
 * `crmupstream…` all read as the credential's letters and digits.
 * Compatibility forms and accented letters are folded first (NFKD), so
 * fullwidth letters count as the ASCII ones they stand for.
 */
function lettersAndDigits(lower: string): string {
  return (NOT_ASCII.test(lower) ? normalizeStreamSafe(lower, 'NFKD') : lower).replace(/[^0-9a-z]+/g, '');
}

/**
 * Text with its backslash escapes read as JSON, JSON5 and most languages
 * read them: \u with four hex digits or in braces, \x with two, octal,
 * and a backslash-newline that continues the line.
 */
function unescaped(text: string): string {
  if (!text.includes('\\')) return text;
  return text.replace(/\\(?:\r?\n|u\{([0-9a-fA-F]{1,6})\}|u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2})|([0-7]{1,3})|(.))/gs,
    (_whole: string, braced?: string, u?: string, x?: string, octal?: string, c?: string) => {
      const hex = braced ?? u ?? x;
      if (hex !== undefined) return String.fromCodePoint(parseInt(hex, 16));
      if (octal !== undefined) return String.fromCharCode(parseInt(octal, 8));
      return c ?? '';
    });
}

const byte = (_: string, hex: string) => String.fromCharCode(parseInt(hex, 16));

/** A view of the text, and whether it is also compared with only its letters and digits (see lettersAndDigits). */
interface View {
  view: string;
  separators: boolean;
}

/**
 * The text as an echo may have encoded it around the credential, made one
 * at a time and only as the text could need: as it is, and with its
 * escapes read (`unescaped`); base64 wrapped at 76 columns, with
 * zero-width spaces, soft hyphens, combining marks or NULs between its
 * characters (INVISIBLE dropped); in fullwidth or other compatibility
 * letters (NFKC); without markup tags and named character references
 * (`crm-upstre<b></b>am`, `&shy;`); every byte percent-encoded (also %u
 * and four hex digits; and encoded twice or three times); quoted-printable;
 * HTML character references; decimal byte arrays (Node's Buffer.toJSON, or
 * codes with any separator); hex byte literals (`0x63, 0x72`); and one
 * character per array element. Hex bytes with separators, and the
 * credential with anything between its characters, are found by the
 * separator-free comparison of these views. Markup is taken out of each
 * decoded view too (`\u003cem\u003e`, `&lt;em&gt;`, `%3Cb%3E` are tags once
 * read).
 */
function* views(text: string): Generator<View> {
  for (const decoded of decodedViews(text)) {
    yield decoded;
    if (decoded.separators && (decoded.view.includes('<') || decoded.view.includes('&'))) {
      const bare = decoded.view.replace(MARKUP, '');
      if (bare !== decoded.view) yield { view: bare, separators: true };
    }
  }
}

function* decodedViews(text: string): Generator<View> {
  yield { view: text, separators: true };
  const unescapedText = unescaped(text);
  if (unescapedText !== text) yield { view: unescapedText, separators: true };
  // Both found by the separator-free comparison of the text too, but only with MIN_SECRET_LENGTH letters and digits.
  yield { view: text.replace(INVISIBLE, ''), separators: false };
  // Fullwidth and other compatibility forms of ASCII letters and digits (ｃｒｍ, 𝐜𝐫𝐦) read as ASCII.
  if (NOT_ASCII.test(text)) yield { view: normalizeStreamSafe(text, 'NFKC').replace(INVISIBLE, ''), separators: false };
  if (text.includes('%')) yield { view: percentDecoded(text), separators: true };
  if (text.includes('=')) yield { view: text.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, byte), separators: true };
  if (text.includes('&')) {
    const view = text.replace(/&#[xX]0*([0-9a-fA-F]{1,6});?/g, byte).replace(/&#0*(\d{1,7});?/g, (_, n: string) => String.fromCodePoint(Number(n) % 0x110000))
      .replace(/&(lt|gt|amp|quot|apos);/g, (_, name: string) => NAMED_REFERENCES[name]!);
    if (view !== text) yield { view, separators: true };
  }
  if (text.includes('0x') || text.includes('0X')) yield { view: text.replace(/0[xX]([0-9a-fA-F]{2})(?![0-9a-fA-F])/g, byte), separators: true };
  // `up\x1b(Bstream`: an ISO-2022 decoder or a terminal shows no escape sequence, and the `B` is not the token's.
  if (hasEscapes(text)) yield { view: withoutEscapeSequences(text), separators: true };
  if (text.includes(',')) {
    yield { view: text.replace(/\d{1,3}(?:\s*,\s*\d{1,3}){7,4096}/g, (run) => fromCodes(run.split(','))), separators: true };
    yield { view: text.replace(/(["'])\s*,\s*\1/g, ''), separators: false };
  }
  // Character codes separated by anything but letters and digits ("99 114 109 …", one per line, "99;114;…").
  if (BYTE_RUN.test(text)) yield { view: text.replace(BYTE_RUNS, (run) => fromCodes(run.split(/[^\dA-Za-z]+/).filter(Boolean))), separators: true };
}

/** The named references that spell markup itself. */
const NAMED_REFERENCES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/**
 * Markup a reader of the rendered text does not see: tags and comments
 * without `<` or `>` inside, and named character references (`&shy;`,
 * `&zwj;`, `&nbsp;`). Linear: a tag's scan stops at the next `<`.
 */
const MARKUP = /<[^<>]*>|&[A-Za-z][A-Za-z0-9]{1,31};/g;

/**
 * Eight or more numbers in a row, each starting where no letter or digit
 * stands before it and separated by one to four characters that are
 * neither. No group can be read two ways and none ends on a condition, so a
 * failed match costs at most the eight groups after where it started
 * (a trailing `\b` made text like " 99_ 99_ …" quadratic). Runs, here and
 * in the comma and INVISIBLE patterns, are taken 4096 at a time: V8 keeps
 * a frame per repetition, and a body of a few MiB of them overflowed its
 * stack. The pieces are joined again by a separator, which the
 * letters-and-digits comparison reads through.
 */
const BYTE_RUN = /(?<![\dA-Za-z])\d+(?:[^\dA-Za-z]{1,4}\d+){7,4096}/;
const BYTE_RUNS = new RegExp(BYTE_RUN.source, 'g');

/** The characters of byte values (decimal text, taken mod 256), built in slices: a spread of a long run overflows the stack. */
function fromCodes(numbers: readonly string[]): string {
  let out = '';
  for (let i = 0; i < numbers.length; i += 4096) out += String.fromCharCode(...numbers.slice(i, i + 4096).map((n) => Number(n) & 0xff));
  return out;
}

/** Percent-decoded as long as that changes it, three times at most: a URL in another's query is encoded twice. */
function percentDecoded(text: string): string {
  let decoded = text;
  for (let round = 0; round < 3 && decoded.includes('%'); round++) {
    const next = decoded.replace(/%u([0-9a-fA-F]{4})/g, byte).replace(/%([0-9a-fA-F]{2})/g, byte);
    if (next === decoded) break;
    decoded = next;
  }
  return decoded;
}

/**
 * What a reader does not see between characters: whitespace, NUL, format
 * characters (zero-width spaces and joiners, soft hyphens, bidi marks, tag
 * characters, the BOM) and combining marks (the grapheme joiner, variation
 * selectors).
 */
const INVISIBLE = /[\s\0\p{Cf}\p{Mn}\p{Me}]{1,4096}/gu;
const NOT_ASCII = /[^\0-\x7f]/;

function scrubStrings(value: JsonValue, secrets: readonly string[]): { value: JsonValue; changed: boolean } {
  // A tagged number (parseJsonExactly) is written back as it came; a credential in one is refused after.
  if (typeof value === 'string' && taggedNumber(value) === null) {
    const clean = replaceLiterals(value, secrets);
    return { value: clean, changed: clean !== value };
  }
  if (Array.isArray(value)) {
    let changed = false;
    const items = value.map((item) => {
      const scrubbed = scrubStrings(item, secrets);
      changed ||= scrubbed.changed;
      return scrubbed.value;
    });
    return { value: items, changed };
  }
  if (value !== null && typeof value === 'object') {
    let changed = false;
    const entries = Object.entries(value).map(([key, item]) => {
      const scrubbed = scrubStrings(item, secrets);
      changed ||= scrubbed.changed;
      return [key, scrubbed.value] as const;
    });
    return { value: Object.fromEntries(entries) as JsonValue, changed };
  }
  return { value, changed: false };
}
