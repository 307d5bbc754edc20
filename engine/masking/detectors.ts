/**
 * Content detectors: find personal data and secrets in free text, so a mask
 * rule can replace only what matched ("mask emails in notes") instead of the
 * whole value.
 *
 * Each detector finds candidates cheaply (indexOf, a small regex, a char
 * loop) and then validates them the way the format defines them: Luhn for
 * cards, the SSA's rules for SSNs, mod-97 and the country's length for IBANs,
 * a JSON header with "alg" for JWTs. Validation is what keeps an order id, a
 * date or a hash from being masked as a card or a phone number; the
 * candidate search is what keeps a row fast.
 *
 * Boundaries: a number-shaped match must not be part of a longer token. The
 * character before it must not be a letter, digit or "_", nor a "-", "." or
 * "/" that joins it to one ("ORD-415-555-2671", "v2.123-45-6789"); the same
 * after it ("4111111111111111.00" is an amount, not a card).
 *
 * Spans are UTF-16 indices into the string, [start, end). Spans from several
 * detectors that overlap are merged into one (see `scanSpans`), so masking
 * never leaves part of something a detector flagged in the clear.
 *
 * Look-alike characters: before any detector runs, a text holding some is
 * read through a normalised copy (see `normalise`): every Unicode decimal
 * digit (\p{Nd}: fullwidth, Arabic-Indic, Devanagari, mathematical, …) as
 * its ASCII digit, format characters (\p{Cf}: zero-width space, soft hyphen,
 * joiners, bidi marks) dropped, Unicode spaces as " ", line and paragraph
 * separators as "\n", the Unicode hyphens, dashes and minus as "-",
 * ideographic, fullwidth and small full stops as ".", and fullwidth ASCII as
 * ASCII. Detectors see ASCII shapes only; their spans are mapped back to the
 * original text, so what is replaced is what the reader saw, look-alikes and
 * invisible characters inside a match included. A text of plain ASCII
 * costs one native length count; one with only letters outside ASCII
 * (names, IDN addresses) a pass over the characters, and no copy.
 */
import { UnknownDetectorError } from './errors.js';

export const DETECTOR_NAMES = [
  'email', 'payment_card', 'us_ssn', 'phone', 'iban', 'jwt', 'aws_access_key', 'aws_secret_key', 'private_key',
] as const;
export type DetectorName = (typeof DETECTOR_NAMES)[number];

export interface Span {
  start: number;
  end: number;
  detector: DetectorName;
}

export interface Detector {
  readonly name: DetectorName;
  /** Appends the validated matches in `text` to `out`, in any order; they may overlap other detectors' spans. */
  find(text: string, out: Span[]): void;
}

// ── Character classes (ASCII tables; non-ASCII is handled per detector) ──

const DIGIT = 1, ALPHA = 2, WORD = 4, EMAIL_LOCAL = 8, DOMAIN = 16, B64URL = 32, B64 = 64;
const CLASS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  let f = 0;
  if (c >= 48 && c <= 57) f |= DIGIT | WORD | EMAIL_LOCAL | DOMAIN | B64URL | B64;
  if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122)) f |= ALPHA | WORD | EMAIL_LOCAL | DOMAIN | B64URL | B64;
  if (c === 95) f |= WORD | EMAIL_LOCAL | B64URL;
  if (c === 45) f |= EMAIL_LOCAL | DOMAIN | B64URL;
  if (".!#$%&'*+/=?^`{|}~".includes(ch)) f |= EMAIL_LOCAL;
  if (c === 46) f |= DOMAIN;
  if (c === 43 || c === 47) f |= B64;
  CLASS[c] = f;
}
const has = (c: number, flag: number) => c < 128 && (CLASS[c]! & flag) !== 0;
const isDigit = (c: number) => c >= 48 && c <= 57;
const isAlnum = (c: number) => c < 128 && (CLASS[c]! & (DIGIT | ALPHA)) !== 0;

/**
 * Letters, marks and digits outside ASCII, for internationalised email
 * addresses ("josé@exemple.fr" must not leave "jos" in the clear). Looked up
 * once per code unit and cached; surrogate halves count as letters, so an
 * astral-plane letter does not split an address.
 */
const NON_ASCII = new Uint8Array(65536); // 0 unknown, 1 letter-like, 2 not
const LETTER_LIKE = /^[\p{L}\p{M}\p{N}]$/u;
function isLetterLike(c: number): boolean {
  let v = NON_ASCII[c]!;
  if (v === 0) {
    v = (c >= 0xd800 && c <= 0xdfff) || LETTER_LIKE.test(String.fromCharCode(c)) ? 1 : 2;
    NON_ASCII[c] = v;
  }
  return v === 1;
}

/** "-", "." and "/" join a number to a neighbouring token ("ORD-…", "…-88", "1.5"). */
const isJoiner = (c: number) => c === 45 || c === 46 || c === 47;

/** `lettersToo` false: only a digit (or a joiner after a letter or digit) makes a match part of a longer token. */
function boundaryBefore(text: string, i: number, lettersToo = true): boolean {
  if (i === 0) return true;
  const c = text.charCodeAt(i - 1);
  if (lettersToo ? has(c, WORD) : isDigit(c)) return false;
  return !isJoiner(c) || i < 2 || !isAlnum(text.charCodeAt(i - 2));
}

function boundaryAfter(text: string, j: number, lettersToo = true): boolean {
  if (j >= text.length) return true;
  const c = text.charCodeAt(j);
  if (lettersToo ? has(c, WORD) : isDigit(c)) return false;
  return !isJoiner(c) || j + 1 >= text.length || !isAlnum(text.charCodeAt(j + 1));
}

// ── Normalisation ─────────────────────────────────────────────────────────

const KEEP = -1, DROP = -2;
/** Per BMP code unit: 0 not yet known, KEEP, DROP, or the ASCII code it reads as. */
const BMP_READS_AS = new Int16Array(65536);
const ASTRAL_READS_AS = new Map<number, number>();
const DECIMAL_DIGIT = /^\p{Nd}$/u;
const FORMAT = /^\p{Cf}$/u;
const SPACE = /^\p{Zs}$/u;

/** What a non-ASCII code point reads as for the detectors (see the header). */
function readsAs(cp: number): number {
  const ch = String.fromCodePoint(cp);
  if (DECIMAL_DIGIT.test(ch)) return 48 + digitValue(cp);
  if (FORMAT.test(ch)) return DROP;
  if (SPACE.test(ch)) return 32;
  if (cp === 0x85 || cp === 0x2028 || cp === 0x2029) return 10;
  if (cp >= 0xff01 && cp <= 0xff5e) return cp - 0xfee0; // fullwidth ASCII
  if ((cp >= 0x2010 && cp <= 0x2015) || cp === 0x2212 || cp === 0xfe58 || cp === 0xfe63) return 45;
  if (cp === 0x3002 || cp === 0xff61 || cp === 0xfe52) return 46;
  return KEEP;
}

/**
 * Unicode encodes every decimal digit set as ten consecutive code points,
 * 0 to 9, and sets that touch (the mathematical digits) start at a zero:
 * the value is the distance from the start of the run, mod 10.
 */
function digitValue(cp: number): number {
  let zero = cp;
  while (DECIMAL_DIGIT.test(String.fromCodePoint(zero - 1))) zero--;
  return (cp - zero) % 10;
}

/** KEEP, DROP or an ASCII code for the character at `i` (c its code unit, not ASCII); cached. */
function readAt(text: string, i: number, c: number): number {
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
    const d = text.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) {
      const cp = (c - 0xd800) * 0x400 + d - 0xdc00 + 0x10000;
      let v = ASTRAL_READS_AS.get(cp);
      if (v === undefined) ASTRAL_READS_AS.set(cp, v = readsAs(cp));
      return v;
    }
  }
  if (c >= 0xd800 && c <= 0xdfff) return KEEP; // a lone surrogate
  let v = BMP_READS_AS[c]!;
  if (v === 0) BMP_READS_AS[c] = v = readsAs(c);
  return v;
}

interface Normalised {
  text: string;
  /** Per UTF-16 unit of `text`: where its character starts in the original, and where it ends. */
  starts: Int32Array;
  ends: Int32Array;
}

/** The first character outside ASCII (a native scan, about twice as fast as a charCodeAt loop). */
const NON_ASCII_CHAR = /[\u0080-\uffff]/;

/** The text as the detectors read it, with the map back; null when it reads as itself (the common case). */
function normalise(text: string): Normalised | null {
  const n = text.length;
  if (Buffer.byteLength(text, 'utf8') === n) return null; // ASCII only: the cheapest test there is, half the regex's cost
  let i = text.search(NON_ASCII_CHAR);
  if (i === -1) return null;
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 128) continue;
    const v = readAt(text, i, c);
    if (v !== KEEP) break;
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) i++;
  }
  if (i === n) return null;
  const codes = new Uint16Array(n);
  const starts = new Int32Array(n);
  const ends = new Int32Array(n);
  let m = 0;
  for (let k = 0; k < n; k++) {
    const c = text.charCodeAt(k);
    const v = k < i || c < 128 ? KEEP : readAt(text, k, c);
    const width = c >= 0xd800 && c <= 0xdbff && k + 1 < n && (text.charCodeAt(k + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
    if (v === DROP) {
      k += width - 1;
    } else if (v === KEEP) {
      codes[m] = c;
      starts[m] = k;
      ends[m++] = k + 1;
    } else {
      codes[m] = v;
      starts[m] = k;
      ends[m++] = k + width;
      k += width - 1;
    }
  }
  let out = '';
  for (let k = 0; k < m; k += 4096) out += String.fromCharCode(...codes.subarray(k, Math.min(m, k + 4096)));
  return { text: out, starts, ends };
}

type Finder = (text: string, out: Span[]) => void;

/** The registry's detectors also carry their finder proper, which reads the normalised text. */
interface Scanner extends Detector {
  readonly scan: Finder;
}

/** A registry detector's finder; another Detector's `find` (normalising again is a no-op on normalised text). */
const finderOf = (d: Detector): Finder => (d as Partial<Scanner>).scan ?? d.find;

/** Runs the detectors over `text` as they read it, appending spans in the original's indices. */
function findAll(text: string, detectors: readonly Detector[], out: Span[]): void {
  const norm = normalise(text);
  if (norm === null) {
    for (const d of detectors) finderOf(d)(text, out);
    return;
  }
  const from = out.length;
  for (const d of detectors) finderOf(d)(norm.text, out);
  for (let k = from; k < out.length; k++) {
    const s = out[k]!;
    s.end = norm.ends[s.end - 1]!;
    s.start = norm.starts[s.start]!;
  }
}

// ── email ─────────────────────────────────────────────────────────────────

const MAX_LOCAL = 64;
const MAX_DOMAIN = 253;

/**
 * "@" as text that a reader or a browser turns into one: URL-encoded (mailto:ada%40example.com), or an HTML
 * character reference. A fullwidth "\uff20" reads as "@" (see the header). Escapes a client reads back when
 * it parses the value (`\u0040`, `&commat;`) are read by the masker before the detectors run (masker.ts).
 */
const AT_SIGN = /@|%40|&#0*64;|&#x0*40;/gi;

/**
 * The local part ends at the "@": dot-atom characters (and non-ASCII
 * letters), or a quoted string ("ada lovelace"@…). A run of such characters
 * longer than RFC 5321's 64 (a URL's query before "&email=ada@…") is not
 * skipped: its last 64 characters are taken, so what stands next to the "@"
 * is masked either way. The domain is a host name ending at its last valid
 * label, or an address literal ([192.0.2.1], [IPv6:2001:db8::1]).
 */
function findEmails(text: string, out: Span[]): void {
  AT_SIGN.lastIndex = 0;
  for (let sign = AT_SIGN.exec(text); sign; sign = AT_SIGN.exec(text)) {
    const at = sign.index;
    const width = sign[0].length;
    let next = at + width;
    const s = localStart(text, at);
    if (s !== -1) {
      const e = text.charCodeAt(at + width) === 91 ? addressLiteralEnd(text, at + width) : domainEnd(text, at + width);
      if (e !== -1) {
        out.push({ start: s, end: e, detector: 'email' });
        next = e;
      }
    }
    AT_SIGN.lastIndex = next;
  }
}

/** Where the local part before `at` starts, or -1. */
function localStart(text: string, at: number): number {
  if (at > 0 && text.charCodeAt(at - 1) === 34) return quotedLocalStart(text, at);
  let s = at;
  while (s > 0 && at - s < MAX_LOCAL) {
    const c = text.charCodeAt(s - 1);
    if (!(has(c, EMAIL_LOCAL) || (c >= 128 && isLetterLike(c)))) break;
    s--;
  }
  while (s < at && text.charCodeAt(s) === 46) s++; // "…see.jane@x.com" is fine, ".jane" is not a local part
  return s < at && text.charCodeAt(at - 1) !== 46 ? s : -1;
}

/** `"…"@`: the opening quote of a quoted local part of 1–62 characters on one line, `\"` and `\\` escaped; or -1. */
function quotedLocalStart(text: string, at: number): number {
  const close = at - 1;
  for (let k = close - 1; k >= 0 && close - k < MAX_LOCAL; k--) {
    const c = text.charCodeAt(k);
    if (c < 32 || c === 127) return -1;
    if (c !== 34) continue;
    let slashes = 0;
    while (k - slashes - 1 >= 0 && text.charCodeAt(k - slashes - 1) === 92) slashes++;
    if (slashes % 2 === 1) continue; // an escaped quote inside
    return k < close - 1 ? k : -1;
  }
  return -1;
}

const IPV4_LITERAL = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const IPV6_LITERAL = /^IPv6:(?=[0-9a-f:.]*:[0-9a-f:.]*:)[0-9a-f:.]{2,45}$/i;

/** `[` at `start`: the end of an IPv4 or IPv6 address literal (after the "]"), or -1. */
function addressLiteralEnd(text: string, start: number): number {
  let close = start + 1;
  const limit = Math.min(text.length, start + 53); // "IPv6:" and 45 characters, looked at no further
  while (close < limit && text.charCodeAt(close) !== 93) close++;
  if (close >= limit) return -1;
  const inner = text.slice(start + 1, close);
  return IPV4_LITERAL.test(inner) || IPV6_LITERAL.test(inner) ? close + 1 : -1;
}

const isLabelChar = (c: number) => (c < 128 ? c !== 46 && has(c, DOMAIN) : isLetterLike(c));
const isLabelLetter = (c: number) => (c < 128 ? has(c, ALPHA) : isLetterLike(c));

/**
 * The end of the longest host name starting at `start`, or -1: two or more
 * labels of 1–63 characters, none starting or ending with "-", and an
 * alphabetic (or IDN "xn--") top-level label of 2 or more. What follows the
 * last valid label is not part of it: a sentence's ".", "...then",
 * "-2024" after the top-level label (which ends at the "-").
 */
function domainEnd(text: string, start: number): number {
  const n = text.length;
  const limit = Math.min(n, start + MAX_DOMAIN);
  let best = -1;
  let labels = 0;
  let i = start;
  for (;;) {
    const label = i;
    let letters = i; // the end of the label's leading run of letters
    while (i < limit && isLabelChar(text.charCodeAt(i))) {
      if (letters === i && isLabelLetter(text.charCodeAt(i))) letters++;
      i++;
    }
    const len = i - label;
    if (len === 0 || len > 63 || text.charCodeAt(label) === 45) break;
    if (i === limit && i < n && isLabelChar(text.charCodeAt(i))) break; // runs on past the longest domain
    const hyphenEnd = text.charCodeAt(i - 1) === 45;
    if (labels > 0) {
      if (!hyphenEnd && len >= 2 && (letters === i || text.startsWith('xn--', label))) best = i;
      else if (letters - label >= 2 && text.charCodeAt(letters) === 45) best = letters;
    }
    labels++;
    if (hyphenEnd || i >= limit - 1 || text.charCodeAt(i) !== 46) break;
    i++;
  }
  return best;
}

// ── payment_card ──────────────────────────────────────────────────────────

function luhn(digits: string, from: number, to: number): boolean {
  let sum = 0;
  let double = false;
  for (let i = to - 1; i >= from; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/**
 * 13–19 digits, written together or in groups separated by separators,
 * passing Luhn, and starting with a major industry identifier 2–6
 * (Mastercard 2-series and Mir, Amex/Diners/JCB, Visa, Mastercard,
 * Discover/UnionPay/Maestro). The MII check drops Luhn-valid millisecond
 * timestamps and ids (1…), at the cost of rare cards (UATP 1…, some
 * national schemes 8…/9…); a card starting 2 must be in the ranges issued
 * (2200–2204, 2221–2720), which drops runs of years ("2023-2024-…").
 *
 * A separator is a run of one to three of space, tab, line breaks, "-",
 * ".", "/", "_", ",", "|", ":", "+", "*", "~" and parentheses (Unicode
 * spaces and dashes read as these, see the header). The groups a card may
 * be written in:
 *
 *   - One narrow separator throughout (one or two of the same space, tab,
 *     "-", ".", "/" or "_"): groups of 3+ digits in any layout
 *     ("3782 822463 10005", "4111.1111.1111.1111").
 *   - Any other separator, or separators that differ from group to group
 *     ("4111, 1111", "4111 - 1111", "4111\n1111", "4111|1111",
 *     "4111 1111-1111 1111", "(4111) 1111 …"): the groups must have a
 *     card's layout, 4-4-4-4, 4-4-4-4-3 or Amex/Diners' 4-6-5, 4-6-4,
 *     because that is how lists, amounts, dates, times and phone numbers
 *     are not written. Mixed, no separator may be three blanks: that is a
 *     gap between a table's columns ("4111 1111   1111 1111").
 *   - One digit per group ("4 1 1 1 …", "4-1-1-1-…"): only when the whole
 *     run is those 13–19 digits with one narrow separator throughout (a
 *     longer run of single digits is a list, and windows inside it would
 *     find Luhn-valid numbers by chance).
 *
 * A lone "," (thousands) is only ever the wider kind.
 *
 * Luhn, the length and the MII are check enough that a card glued to a
 * word is still one ("card-4111…", "ref_4111…", "4111…x"): only digits
 * around it, or a number continuing it ("4111….50"), make it part of
 * something longer. A leaked card costs more than a masked order id.
 *
 * A card may follow other digit groups in the same run ("qty 12 4111 1111
 * 1111 1111"), so every window of whole groups in a run is tried, longest
 * first.
 */
function findCards(text: string, out: Span[]): void {
  const n = text.length;
  const gStart: number[] = [];
  const gEnd: number[] = [];
  const gSep: number[] = []; // separator after group g: 0 when none, else its characters' code * 2 + 1 when wide
  let i = 0;
  while (i < n) {
    if (!isDigit(text.charCodeAt(i))) {
      i++;
      continue;
    }
    // A run: digit groups joined by separators. The arrays are reused, not emptied (setting their length is a runtime call).
    let groups = 0;
    let j = i;
    for (;;) {
      const s = j;
      while (j < n && isDigit(text.charCodeAt(j))) j++;
      gStart[groups] = s;
      gEnd[groups] = j;
      let k = j;
      let code = 0;
      while (k < n && k - j < 3 && has(text.charCodeAt(k), CARD_SEP)) code = code * 128 + text.charCodeAt(k++);
      const sep = k < n && k > j && isDigit(text.charCodeAt(k)) ? cardSeparator(code, k - j) : 0;
      gSep[groups++] = sep;
      if (sep === 0) break;
      j = k;
    }
    const before = cardBoundaryBefore(text, i);
    const after = cardBoundaryAfter(text, j);
    if (groups >= 13 && gEnd[0]! - i === 1) cardDigits(text, groups, gStart, gEnd, gSep, before, after, out);
    cardWindows(text, groups, gStart, gEnd, gSep, before, after, out);
    i = j;
  }
}

/** The characters separator runs are made of (after normalisation). */
const CARD_SEP = 128;
for (const c of ' \t\n\r,-./_|:+*~()') CLASS[c.charCodeAt(0)]! |= CARD_SEP;
const isNarrowSeparator = (c: number) => c === 32 || c === 9 || c === 45 || c === 46 || c === 47 || c === 95;
const isBlank = (c: number) => c === 32 || c === 9 || c === 10 || c === 13;

/** 0 when the run (`width` characters, `code` base 128) separates nothing; else code * 2, + 1 for the wide kind. */
function cardSeparator(code: number, width: number): number {
  if (width === 1 && isNarrowSeparator(code)) return code * 2;
  if (width === 2 && code % 128 === Math.floor(code / 128) && isNarrowSeparator(code % 128)) return code * 2;
  return code * 2 + 1;
}

/** Three blanks: the gap between two columns of a table, not a separator inside one value. */
function columnGap(sep: number): boolean {
  const code = (sep - 1) / 2;
  return sep % 2 === 1 && code >= 128 * 128 && isBlank(code % 128) && isBlank(Math.floor(code / 128) % 128) && isBlank(Math.floor(code / 16384));
}

/** Not right after a digit, nor after a number continued by "-", ".", "," or "/" ("12-4111…"). */
function cardBoundaryBefore(text: string, i: number): boolean {
  if (i === 0) return true;
  const c = text.charCodeAt(i - 1);
  if (isDigit(c)) return false;
  return !(c === 45 || c === 46 || c === 44 || c === 47) || i < 2 || !isDigit(text.charCodeAt(i - 2));
}

/** Not right before a digit, nor a number continued by "-", ".", "," or "/" ("4111….50"). */
function cardBoundaryAfter(text: string, j: number): boolean {
  if (j >= text.length) return true;
  const c = text.charCodeAt(j);
  if (isDigit(c)) return false;
  return !(c === 45 || c === 46 || c === 44 || c === 47) || j + 1 >= text.length || !isDigit(text.charCodeAt(j + 1));
}

/** The issuer ranges this detector counts as cards (see findCards). */
function cardPrefix(digits: string): boolean {
  const first = digits.charCodeAt(0);
  if (first < 50 || first > 54) return false;
  if (first !== 50) return true;
  const p = num(digits, 0, 4);
  return (p >= 2200 && p <= 2204) || (p >= 2221 && p <= 2720);
}

const CARD_LAYOUTS = ['4,4,4,4', '4,4,4,4,3', '4,6,5', '4,6,4'];

function cardLayout(gStart: number[], gEnd: number[], from: number, to: number): boolean {
  if (to - from < 2 || to - from > 4 || gEnd[from]! - gStart[from]! !== 4) return false;
  let layout = '';
  for (let g = from; g <= to; g++) layout += (g > from ? ',' : '') + (gEnd[g]! - gStart[g]!);
  return CARD_LAYOUTS.includes(layout);
}

/** A run of single digits (the first group is one): a card when the whole run is one, with one narrow separator. */
function cardDigits(text: string, groups: number, gStart: number[], gEnd: number[], gSep: number[], before: boolean, after: boolean, out: Span[]): void {
  if (!before || !after || groups > 19 || gSep[0]! % 2 !== 0) return;
  let digits = '';
  for (let g = 0; g < groups; g++) {
    if (gEnd[g]! - gStart[g]! !== 1 || (g < groups - 1 && gSep[g] !== gSep[0])) return;
    digits += text[gStart[g]!];
  }
  if (cardPrefix(digits) && luhn(digits, 0, groups)) out.push({ start: gStart[0]!, end: gEnd[groups - 1]!, detector: 'payment_card' });
}

const DOT = 46 * 2, DOTS = (46 * 128 + 46) * 2, COMMA = 44 * 2 + 1;

/**
 * Every window of whole groups in one run that is a card, longest first.
 * The run's own edges must be bounded (`before`, `after`); windows inside
 * it are bounded by its separators.
 */
function cardWindows(text: string, groups: number, gStart: number[], gEnd: number[], gSep: number[], before: boolean, after: boolean, out: Span[]): void {
  let g = before ? 0 : 1;
  while (g < groups) {
    let found = -1;
    let digits = '';
    let uniform = true; // every separator in the window is the first one
    let gap = false;
    for (let e = g; e < groups; e++) {
      if (gEnd[e]! - gStart[e]! < 3) break;
      if (e > g) {
        const sep = gSep[e - 1]!;
        if (sep !== gSep[g]) uniform = false;
        if (columnGap(sep)) gap = true;
        if (gap && !uniform) break;
      }
      digits += text.slice(gStart[e], gEnd[e]);
      if (digits.length > 19) break;
      if (digits.length >= 13 && (e < groups - 1 || after) && cardPrefix(digits) && luhn(digits, 0, digits.length)
        && (e === g || (uniform && gSep[g]! % 2 === 0) || cardLayout(gStart, gEnd, g, e))) found = e;
    }
    if (found === -1) {
      g++;
      continue;
    }
    // A "." or lone "," the card's own groups do not use joins it to a number: 4111….50 and 4111…,50 are amounts.
    const decimal = (sep: number | undefined) => {
      if (sep !== DOT && sep !== DOTS && sep !== COMMA) return false;
      for (let k = g; k < found; k++) if (gSep[k] === sep) return false;
      return true;
    };
    if (!decimal(gSep[found]) && !decimal(g > 0 ? gSep[g - 1] : undefined)) {
      // "(4111) 1111 …": the parenthesis around the first group goes with it.
      const open = gStart[g]! > 0 && text.charCodeAt(gStart[g]! - 1) === 40 && text.charCodeAt(gEnd[g]!) === 41 && found > g;
      out.push({ start: gStart[g]! - (open ? 1 : 0), end: gEnd[found]!, detector: 'payment_card' });
    }
    g = found + 1;
  }
}

// ── us_ssn ────────────────────────────────────────────────────────────────

/** The SSA never issues area 000, 666 or 900–999, group 00 or serial 0000. */
function validSsn(area: number, group: number, serial: number): boolean {
  return area !== 0 && area !== 666 && area < 900 && group !== 0 && serial !== 0;
}

/**
 * AAA-GG-SSSS. A separator is a hyphen (any Unicode dash or minus reads as one), spaced or not, one
 * or two spaces (any Unicode space), ":", ".", "/" or "_". The area may be in parentheses, followed by
 * spaces or a hyphen or nothing: "(078) 05-1120". Each alternative is a fixed shape of at most 17
 * characters, so the search is linear.
 */
const SSN_SEPARATED = /(?:\(\d{3}\)( {0,2}| ?- ?)|\d{3}( {1,2}| ?- ?|[.:/_]))\d{2}( {1,2}| ?- ?|[.:/_])\d{4}/g;
/** ".", "/" and "_" are not mixed with another separator: "078/05-1120" is a path, "123.45 6789" an amount and a number. */
const SSN_UNMIXED = /[./_]/;
const SSN_BARE = /\d{9}/g;
/** Bare nine-digit numbers are everywhere (ids, amounts in cents); only with this nearby do they count. */
const SSN_CONTEXT = /\bssns?\b|\bss#|\bsocial\b|social[\s_-]*security|\bsoc\.?\s*sec\b|\btin\b|taxpayer/i;
const SSN_CONTEXT_WINDOW = 40;

/**
 * AAA-GG-SSSS under the SSA's rules, separated as SSN_SEPARATED says, the two separators alike or
 * mixed ("078-05 1120", "078 - 05 - 1120", "078:05-1120"). The unseparated form counts only when it
 * is the whole value, or when "SSN", "social security", "social", "TIN", … appears in the 40
 * characters before it.
 */
function findSsns(text: string, out: Span[]): void {
  SSN_SEPARATED.lastIndex = 0;
  for (let m = SSN_SEPARATED.exec(text); m; m = SSN_SEPARATED.exec(text)) {
    const s = m.index;
    const e = s + m[0].length;
    const paren = m[1] !== undefined;
    const first = paren ? m[1]! : m[2]!;
    const second = m[3]!;
    const area = paren ? s + 1 : s;
    const group = s + (paren ? 5 : 3) + first.length;
    const separators = first === second || !(SSN_UNMIXED.test(first) || SSN_UNMIXED.test(second));
    // Separated, the shape is telling enough that letters may touch it ("SSN078-05-1120x"); digits may not.
    if (separators && boundaryBefore(text, s, false) && boundaryAfter(text, e, false)
      && validSsn(num(text, area, area + 3), num(text, group, group + 2), num(text, e - 4, e))) {
      out.push({ start: s, end: e, detector: 'us_ssn' });
    } else {
      SSN_SEPARATED.lastIndex = s + 1;
    }
  }
  SSN_BARE.lastIndex = 0;
  for (let m = SSN_BARE.exec(text); m; m = SSN_BARE.exec(text)) {
    const s = m.index;
    const e = s + 9;
    if (!boundaryBefore(text, s) || !boundaryAfter(text, e)) continue;
    if (!validSsn(num(text, s, s + 3), num(text, s + 3, s + 5), num(text, s + 5, e))) continue;
    const whole = text.trim().length === 9;
    if (whole || SSN_CONTEXT.test(text.slice(Math.max(0, s - SSN_CONTEXT_WINDOW), s))) {
      out.push({ start: s, end: e, detector: 'us_ssn' });
    }
  }
}

function num(text: string, from: number, to: number): number {
  let v = 0;
  for (let i = from; i < to; i++) v = v * 10 + text.charCodeAt(i) - 48;
  return v;
}

// ── phone ─────────────────────────────────────────────────────────────────

/**
 * NANP with separators: (415) 555-2671, 415-555-2671, 415.555.2671,
 * 415 555 2671, 415/555/2671 (Unicode dashes and spaces read as "-" and
 * " "), optionally after +1 / 1-. Area code and exchange start with 2–9.
 * Ten bare digits are not matched: they are as often an id. An extension
 * glued on ("x12", "ext5", "ext. 5") does not make the number part of a
 * longer token; the number is masked, the extension left.
 */
const NANP = /(?:\+?1[ .-]?)?(?:\([2-9]\d\d\) ?|[2-9]\d\d([ ./-]))[2-9]\d\d([ ./-])\d{4}/g;
const EXTENSION = /(?:x|ext|extn|extension)\.? ?\d{1,6}(?![\p{L}\p{N}_])/iuy;

/** A phone number may end at `j`: nothing continues it, or an extension does. */
function phoneEnds(text: string, j: number): boolean {
  if (boundaryAfter(text, j)) return true;
  const c = text.charCodeAt(j) | 0x20;
  if (c !== 120 && c !== 101) return false; // "x", "e"
  EXTENSION.lastIndex = j;
  return EXTENSION.test(text);
}

function findPhones(text: string, out: Span[]): void {
  if (text.indexOf('+') !== -1 || text.indexOf('00') !== -1) findE164(text, out);
  NANP.lastIndex = 0;
  for (let m = NANP.exec(text); m; m = NANP.exec(text)) {
    const s = m.index;
    const e = s + m[0].length;
    const first = text.charCodeAt(s);
    const before = first === 43 || first === 40 ? s === 0 || !has(text.charCodeAt(s - 1), WORD) : boundaryBefore(text, s);
    // "415-555.2671" mixes separators: more likely two numbers than one phone.
    const consistent = m[1] === undefined || m[1] === m[2];
    if (before && consistent && phoneEnds(text, e)) out.push({ start: s, end: e, detector: 'phone' });
    else NANP.lastIndex = s + 1; // a shorter match may start inside ("21 415-555-2671")
  }
}

/**
 * E.164 as people write it: "+" (or the international prefix "00"), a
 * country code starting 1–9, 8–15 digits in all, single spaces, dashes or
 * dots between groups, parentheses around one ("+44 (0)20 7946 0958").
 * When the digits run on past 15, the longest prefix of whole groups that
 * fits is the number. After "00" the number must be written in groups
 * ("0044 20 7946 0958"): zero-padded ids are written together.
 */
function findE164(text: string, out: Span[]): void {
  let p = text.indexOf('+');
  while (p !== -1) {
    const c1 = p + 1 < text.length ? text.charCodeAt(p + 1) : 0;
    const end = c1 >= 49 && c1 <= 57 && (p === 0 || !has(text.charCodeAt(p - 1), WORD)) ? e164End(text, p + 1, false) : -1;
    if (end !== -1) out.push({ start: p, end, detector: 'phone' });
    p = text.indexOf('+', end === -1 ? p + 1 : end);
  }
  p = text.indexOf('00');
  while (p !== -1) {
    const c2 = p + 2 < text.length ? text.charCodeAt(p + 2) : 0;
    const end = c2 >= 49 && c2 <= 57 && boundaryBefore(text, p) ? e164End(text, p + 2, true) : -1;
    if (end !== -1) out.push({ start: p, end, detector: 'phone' });
    p = text.indexOf('00', end === -1 ? p + 1 : end);
  }
}

/** The end of the E.164 number whose country code starts at `start`, or -1. */
function e164End(text: string, start: number, grouped: boolean): number {
  const n = text.length;
  let j = start;
  let digits = 0;
  let groups = 1;
  let best = -1;
  while (j < n) {
    const c = text.charCodeAt(j);
    if (isDigit(c)) {
      digits++;
      j++;
      const after = j < n ? text.charCodeAt(j) : 0;
      if (!isDigit(after)) {
        let end = j;
        if (after === 41) end++; // "(0)"
        if (digits >= 8 && digits <= 15 && (!grouped || groups > 1) && phoneEnds(text, end)) best = end;
        if (digits > 15) break;
        if (after === 41) j++;
      }
    } else if ((c === 32 || c === 45 || c === 46) && j + 1 < n && (isDigit(text.charCodeAt(j + 1)) || text.charCodeAt(j + 1) === 40)) {
      j++;
      groups++;
    } else if (c === 40 && j + 1 < n && isDigit(text.charCodeAt(j + 1))) {
      j++;
      groups++;
    } else {
      break;
    }
  }
  return best;
}

// ── iban ──────────────────────────────────────────────────────────────────

/** IBAN lengths from the SWIFT IBAN registry. Other country codes get the generic 15–34. */
const IBAN_LENGTHS: Record<string, number> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, BY: 28, CH: 21, CR: 22,
  CY: 28, CZ: 24, DE: 22, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22, GE: 22,
  GI: 23, GL: 18, GR: 27, GT: 28, HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30,
  KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MD: 24, ME: 22, MK: 19, MR: 27, MT: 31,
  MU: 30, NL: 18, NO: 15, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, SA: 24, SC: 31, SE: 24,
  SI: 19, SK: 24, SM: 27, ST: 25, SV: 28, TL: 23, TN: 24, TR: 26, UA: 29, VA: 22, VG: 24, XK: 20,
};
const IBAN_START = /[A-Za-z]{2}\d{2}/g;

/** ISO 13616: move the first four characters to the end, letters to 10–35, and the number mod 97 is 1. */
function ibanChecksum(compact: string): boolean {
  let r = 0;
  for (let k = 0; k < compact.length; k++) {
    const c = compact.charCodeAt((k + 4) % compact.length);
    if (isDigit(c)) r = (r * 10 + c - 48) % 97;
    else r = (r * 100 + (c | 0x20) - 87) % 97; // a→10 … z→35
  }
  return r === 1;
}

/**
 * Country code, two check digits, then the account, either compact or in
 * the paper format's groups of four separated by one to three spaces or
 * dashes (Unicode spaces and dashes read as these). Length per country (or
 * 15–34), mod-97 == 1. Case-insensitive.
 */
function findIbans(text: string, out: Span[]): void {
  const n = text.length;
  IBAN_START.lastIndex = 0;
  const ends: number[] = []; // string index after the k-th compact character
  for (let m = IBAN_START.exec(text); m; m = IBAN_START.exec(text)) {
    const s = m.index;
    IBAN_START.lastIndex = s + 1;
    if (s > 0 && has(text.charCodeAt(s - 1), WORD)) continue;
    const check = num(text, s + 2, s + 4);
    if (check < 2 || check > 98) continue;
    let compact = '';
    ends.length = 0;
    let j = s;
    while (j < n && compact.length < 34) {
      const c = text.charCodeAt(j);
      if (isAlnum(c)) {
        compact += text[j];
        ends.push(++j);
      } else if ((c === 32 || c === 45) && compact.length % 4 === 0) {
        let k = j + 1;
        while (k < n && k - j < 3 && (text.charCodeAt(k) === 32 || text.charCodeAt(k) === 45)) k++;
        if (k >= n || !isAlnum(text.charCodeAt(k))) break;
        j = k;
      } else {
        break;
      }
    }
    const expected = IBAN_LENGTHS[compact.slice(0, 2).toUpperCase()];
    const lengths = expected !== undefined ? [expected] : lengthsDescending(compact.length);
    for (const len of lengths) {
      if (len > compact.length) continue;
      const end = ends[len - 1]!;
      if (end < n && isAlnum(text.charCodeAt(end))) continue; // ends inside a group
      if (ibanChecksum(compact.slice(0, len))) {
        out.push({ start: s, end, detector: 'iban' });
        IBAN_START.lastIndex = end;
        break;
      }
    }
  }
}

function lengthsDescending(max: number): number[] {
  const out: number[] = [];
  for (let len = Math.min(34, max); len >= 15; len--) out.push(len);
  return out;
}

// ── jwt ───────────────────────────────────────────────────────────────────

/**
 * A compact JWS (three base64url segments, the last may be empty for
 * alg "none") or JWE (five), whose header decodes to a JSON object with a
 * string "alg". A JSON object header starts `{"` ("eyJ"), or `{` and
 * whitespace: "eyA" (a space), "ewo" (a newline), "ewk" (a tab), "ew0" (a
 * carriage return). Glued to a word by "_", "-" or "." ("session_eyJ…") it
 * is still a token; after a letter or digit it is part of something else.
 */
const JWT_START = /e(?:yJ|yA|w[ok0])/g;

function findJwts(text: string, out: Span[]): void {
  const n = text.length;
  JWT_START.lastIndex = 0;
  for (let m = JWT_START.exec(text); m; m = JWT_START.exec(text)) {
    const p = m.index;
    if (p > 0 && isAlnum(text.charCodeAt(p - 1))) continue;
    const dots: number[] = [];
    let j = p;
    for (;;) {
      while (j < n && has(text.charCodeAt(j), B64URL)) j++;
      if (dots.length < 4 && j < n && text.charCodeAt(j) === 46 && (dots.length < 2 || (j + 1 < n && has(text.charCodeAt(j + 1), B64URL)))) {
        dots.push(j++);
      } else {
        break;
      }
    }
    const segments = dots.length + 1;
    const after = j < n ? text.charCodeAt(j) : 0;
    const bounded = j >= n || !(has(after, B64URL) || after === 61); // "=" would make it plain base64
    if ((segments === 3 || segments === 5) && bounded && dots[1]! > dots[0]! + 1 && jwtHeader(text.slice(p, dots[0]))) {
      out.push({ start: p, end: j, detector: 'jwt' });
      JWT_START.lastIndex = j;
    }
  }
}

function jwtHeader(segment: string): boolean {
  if (segment.length < 8) return false;
  try {
    const header: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof header === 'object' && header !== null && !Array.isArray(header) && typeof (header as { alg?: unknown }).alg === 'string';
  } catch {
    return false;
  }
}

// ── aws_access_key / aws_secret_key ──────────────────────────────────────

const AWS_ACCESS_KEY = /(?:AKIA|ASIA)[A-Z0-9]{16}/g;

/** AKIA (long-term) or ASIA (temporary) and 16 more, not inside a longer token. */
function findAwsAccessKeys(text: string, out: Span[]): void {
  if (text.indexOf('AKIA') === -1 && text.indexOf('ASIA') === -1) return;
  AWS_ACCESS_KEY.lastIndex = 0;
  for (let m = AWS_ACCESS_KEY.exec(text); m; m = AWS_ACCESS_KEY.exec(text)) {
    const s = m.index;
    const e = s + 20;
    if ((s === 0 || !isAlnum(text.charCodeAt(s - 1))) && (e >= text.length || !isAlnum(text.charCodeAt(e)))) {
      out.push({ start: s, end: e, detector: 'aws_access_key' });
    } else {
      AWS_ACCESS_KEY.lastIndex = s + 1;
    }
  }
}

const AWS_CONTEXT = /aws|secret|AKIA|ASIA/i;
const AWS_SECRET_CONTEXT_WINDOW = 80;

/**
 * A secret access key is 40 base64 characters with nothing in its shape to
 * tell it from any other 40 such characters, so it needs context: "aws",
 * "secret" or an access key id within the 80 characters before it. It must
 * also mix upper case, lower case and digits, which a random 40-character
 * key does all but always and a hex digest (a git commit id next to the
 * word "secret") never does.
 */
function findAwsSecretKeys(text: string, out: Span[]): void {
  if (!AWS_CONTEXT.test(text)) return;
  const n = text.length;
  let i = 0;
  while (i < n) {
    if (!has(text.charCodeAt(i), B64)) {
      i++;
      continue;
    }
    const s = i;
    let flags = 0;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (!has(c, B64)) break;
      flags |= isDigit(c) ? 1 : c >= 65 && c <= 90 ? 2 : c >= 97 ? 4 : 0;
      i++;
    }
    if (i - s !== 40 || flags !== 7) continue;
    if (i < n && text.charCodeAt(i) === 61) continue; // padded: plain base64 data, not a key
    if (AWS_CONTEXT.test(text.slice(Math.max(0, s - AWS_SECRET_CONTEXT_WINDOW), s))) {
      out.push({ start: s, end: i, detector: 'aws_secret_key' });
    }
  }
}

// ── private_key ──────────────────────────────────────────────────────────

/**
 * A BEGIN or END line's dashes are a run of four or more; what follows the
 * run is read from its end, so a long run of dashes costs one pass.
 */
const PEM_BEGIN = /[ \t]*BEGIN[ \t]+([A-Z0-9 ]{0,60}?PRIVATE[ \t]+KEY(?:[ \t]+BLOCK)?)[ \t]*----/iy;
const PEM_END = /[ \t]*END[ \t]+([A-Z0-9 ]{0,60}?PRIVATE[ \t]+KEY(?:[ \t]+BLOCK)?)[ \t]*----/iy;
const PUTTY_HEADER = /PuTTY-User-Key-File-\d+:[ \t]*[A-Za-z0-9@.-]+/gi;
const PUTTY_PRIVATE = /Private-Lines:/gi;
const PUTTY_MAC = /Private-(?:MAC|Hash):[ \t]*[0-9a-f]*/gi;
/** Header to "Private-Lines:": the public lines of an RSA-16384 key are some 3,000 characters. */
const PUTTY_PUBLIC_MAX = 8192;

/**
 * A private key, from its first line through its last:
 *
 *   - PEM (PKCS#1/#8, EC, OpenSSH, encrypted, PGP) and SSH2 (RFC 4716's
 *     "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----"): a BEGIN line of four or
 *     more dashes, any case, spaces allowed inside the dashes, through the
 *     END line of the same label.
 *   - PuTTY (.ppk, versions 1–3): the "PuTTY-User-Key-File-N:" header
 *     through the "Private-MAC:" line, when a "Private-Lines:" block
 *     follows the header (the public half alone is no secret).
 *
 * A block with no end (a truncated log line) runs to the end of the text:
 * half a key is still a secret.
 */
function findPrivateKeys(text: string, out: Span[]): void {
  if (text.indexOf('----') !== -1) findPemKeys(text, out);
  if (text.indexOf('ile-') === -1) return; // no "Key-File-" as PuTTY writes it (or in lower case)
  PUTTY_HEADER.lastIndex = 0;
  for (let m = PUTTY_HEADER.exec(text); m; m = PUTTY_HEADER.exec(text)) {
    PUTTY_PRIVATE.lastIndex = m.index + m[0].length;
    const lines = PUTTY_PRIVATE.exec(text);
    if (lines === null) break;
    if (lines.index - m.index > PUTTY_PUBLIC_MAX) {
      PUTTY_HEADER.lastIndex = lines.index - PUTTY_PUBLIC_MAX; // headers before that are as far from it: skip them
      continue;
    }
    PUTTY_MAC.lastIndex = lines.index;
    const mac = PUTTY_MAC.exec(text);
    const stop = mac === null ? text.length : mac.index + mac[0].length;
    out.push({ start: m.index, end: stop, detector: 'private_key' });
    PUTTY_HEADER.lastIndex = stop;
  }
}

/** The end of the run of 4+ dashes at `i`, or -1. */
function dashRunEnd(text: string, i: number): number {
  let j = i;
  while (j < text.length && text.charCodeAt(j) === 45) j++;
  return j - i >= 4 ? j : -1;
}

const pemLabel = (label: string) => label.toUpperCase().replace(/[ \t]+/g, ' ').trim();

function findPemKeys(text: string, out: Span[]): void {
  let p = text.indexOf('----');
  while (p !== -1) {
    const run = dashRunEnd(text, p);
    let next = run === -1 ? p + 4 : run;
    PEM_BEGIN.lastIndex = run;
    const begin = run === -1 ? null : PEM_BEGIN.exec(text);
    if (begin !== null) {
      const label = pemLabel(begin[1]!);
      let stop = text.length;
      for (let q = text.indexOf('----', PEM_BEGIN.lastIndex); q !== -1;) {
        const endRun = dashRunEnd(text, q);
        if (endRun === -1) {
          q = text.indexOf('----', q + 4);
          continue;
        }
        PEM_END.lastIndex = endRun;
        const end = PEM_END.exec(text);
        if (end !== null && pemLabel(end[1]!) === label) {
          stop = dashRunEnd(text, PEM_END.lastIndex - 4);
          break;
        }
        q = text.indexOf('----', endRun);
      }
      out.push({ start: p, end: stop, detector: 'private_key' });
      next = stop;
    }
    p = text.indexOf('----', next);
  }
}

// ── Registry ──────────────────────────────────────────────────────────────

/** `scan` reads the normalised text (ASCII shapes); `find` normalises, scans and maps the spans back. */
function detector(name: DetectorName, scan: Finder): Scanner {
  const self: Scanner = { name, scan, find: (text, out) => findAll(text, [self], out) };
  return self;
}

export const DETECTORS: Readonly<Record<DetectorName, Detector>> = Object.freeze({
  email: detector('email', findEmails),
  payment_card: detector('payment_card', findCards),
  us_ssn: detector('us_ssn', findSsns),
  phone: detector('phone', findPhones),
  iban: detector('iban', findIbans),
  jwt: detector('jwt', findJwts),
  aws_access_key: detector('aws_access_key', findAwsAccessKeys),
  aws_secret_key: detector('aws_secret_key', findAwsSecretKeys),
  private_key: detector('private_key', findPrivateKeys),
});

export function isDetectorName(name: string): name is DetectorName {
  return Object.hasOwn(DETECTORS, name);
}

/**
 * The detectors a rule names, de-duplicated, in the order named. Throws
 * UnknownDetectorError naming every unknown one: a rule that asks for a
 * detector the gateway lacks cannot be enforced, and the caller denies.
 */
export function resolveDetectors(names: readonly string[]): Detector[] {
  const unknown = names.filter((n) => !isDetectorName(n));
  if (unknown.length > 0) throw new UnknownDetectorError([...new Set(unknown)], DETECTOR_NAMES);
  return [...new Set(names as readonly DetectorName[])].map((n) => DETECTORS[n]);
}

/**
 * Every match of the given detectors in `text`, sorted, non-overlapping.
 * Overlapping matches (a card number inside a JWT-looking token, a key in a
 * PEM block) are merged into one span covering both, labelled with the
 * detector of the longest one (the first listed on a tie), so nothing any
 * detector flagged is left in the clear.
 */
export function scanSpans(text: string, detectors: readonly Detector[]): Span[] {
  const found: Span[] = [];
  findAll(text, detectors, found); // one normalisation for all of them
  if (found.length < 2) return found;
  const order = (d: DetectorName) => detectors.findIndex((x) => x.name === d);
  found.sort((a, b) => a.start - b.start || b.end - a.end || order(a.detector) - order(b.detector));
  const merged: Span[] = [];
  let cur = found[0]!;
  let longest = cur.end - cur.start;
  for (let k = 1; k < found.length; k++) {
    const s = found[k]!;
    if (s.start < cur.end) {
      if (s.end - s.start > longest) {
        longest = s.end - s.start;
        cur.detector = s.detector;
      }
      if (s.end > cur.end) cur.end = s.end;
    } else {
      merged.push(cur);
      cur = s;
      longest = s.end - s.start;
    }
  }
  merged.push(cur);
  return merged;
}

/** `scanSpans` by detector names; throws UnknownDetectorError for names it does not know. */
export function findSpans(text: string, names: readonly string[]): Span[] {
  return scanSpans(text, resolveDetectors(names));
}
