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

// ── email ─────────────────────────────────────────────────────────────────

const MAX_LOCAL = 64;
const MAX_DOMAIN = 253;

/**
 * "@" as text that a reader or a browser turns into one: fullwidth, URL-encoded (mailto:ada%40example.com),
 * or an HTML character reference.
 */
const AT_SIGN = /@|\uff20|%40|&#0*64;|&#x0*40;/gi;

function findEmails(text: string, out: Span[]): void {
  AT_SIGN.lastIndex = 0;
  for (let sign = AT_SIGN.exec(text); sign; sign = AT_SIGN.exec(text)) {
    const at = sign.index;
    const width = sign[0].length;
    let next = at + width;
    // Local part: walk left from the "@". Longer than RFC 5321 allows is not an address.
    let s = at;
    while (s > 0 && at - s <= MAX_LOCAL) {
      const c = text.charCodeAt(s - 1);
      if (!(has(c, EMAIL_LOCAL) || (c >= 128 && isLetterLike(c)))) break;
      s--;
    }
    while (s < at && text.charCodeAt(s) === 46) s++; // "…see.jane@x.com" is fine, ".jane" is not a local part
    const localOk = s < at && at - s <= MAX_LOCAL && text.charCodeAt(at - 1) !== 46;
    if (localOk) {
      // Domain: walk right, then drop a sentence's final "." or "-".
      const domain = at + width;
      let e = domain;
      while (e < text.length && e - domain < MAX_DOMAIN) {
        const c = text.charCodeAt(e);
        if (!(has(c, DOMAIN) || (c >= 128 && isLetterLike(c)))) break;
        e++;
      }
      while (e > domain && (text.charCodeAt(e - 1) === 46 || text.charCodeAt(e - 1) === 45)) e--;
      if (e - domain <= MAX_DOMAIN && validDomain(text, domain, e)) {
        out.push({ start: s, end: e, detector: 'email' });
        next = e;
      }
    }
    AT_SIGN.lastIndex = next;
  }
}

/** Two or more labels of 1–63 characters, no leading or trailing "-", and an alphabetic (or IDN "xn--") top-level label. */
function validDomain(text: string, start: number, end: number): boolean {
  let labels = 0;
  let labelStart = start;
  for (let i = start; i <= end; i++) {
    if (i < end && text.charCodeAt(i) !== 46) continue;
    const len = i - labelStart;
    if (len < 1 || len > 63) return false;
    if (text.charCodeAt(labelStart) === 45 || text.charCodeAt(i - 1) === 45) return false;
    labels++;
    if (i === end) {
      if (labels < 2 || len < 2) return false;
      if (text.startsWith('xn--', labelStart)) return true;
      for (let k = labelStart; k < end; k++) {
        const c = text.charCodeAt(k);
        if (!(has(c, ALPHA) || (c >= 128 && isLetterLike(c)))) return false;
      }
      return true;
    }
    labelStart = i + 1;
  }
  return false;
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
 * 13–19 digits, written together or in groups of 3+ digits separated by
 * one kind of separator (one or two spaces, tabs, no-break or thin spaces,
 * "-", ".", "/" or "_"), passing Luhn, and starting with a major industry identifier 2–6
 * (Mastercard 2-series, Amex/Diners/JCB, Visa, Mastercard,
 * Discover/UnionPay/Maestro). The MII check drops Luhn-valid millisecond
 * timestamps and ids (1…), at the cost of rare cards (UATP 1…, some
 * national schemes 8…/9…).
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
  const gSep: number[] = []; // separator after group g (0 when none)
  let i = 0;
  while (i < n) {
    if (!isDigit(text.charCodeAt(i))) {
      i++;
      continue;
    }
    // A run: digit groups joined by separators of one kind.
    gStart.length = gEnd.length = gSep.length = 0;
    let j = i;
    for (;;) {
      const s = j;
      while (j < n && isDigit(text.charCodeAt(j))) j++;
      gStart.push(s);
      gEnd.push(j);
      const c = j < n ? text.charCodeAt(j) : 0;
      const width = CARD_SEPARATORS.has(c) ? (text.charCodeAt(j + 1) === c ? 2 : 1) : 0;
      if (width > 0 && j + width < n && isDigit(text.charCodeAt(j + width))) {
        gSep.push(c * 4 + width);
        j += width;
      } else {
        gSep.push(0);
        break;
      }
    }
    if (cardBoundaryBefore(text, i) && cardBoundaryAfter(text, j)) cardWindows(text, gStart, gEnd, gSep, out);
    i = j;
  }
}

/** Space, tab, no-break space, figure space, narrow no-break space, "-", ".". */
const CARD_SEPARATORS = new Set([32, 9, 0xa0, 0x2007, 0x2009, 0x202f, 45, 46, 47, 95]);

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

function cardWindows(text: string, gStart: number[], gEnd: number[], gSep: number[], out: Span[]): void {
  const groups = gStart.length;
  let g = 0;
  while (g < groups) {
    let found = -1;
    let digits = '';
    for (let e = g; e < groups; e++) {
      const len = gEnd[e]! - gStart[e]!;
      if (e > g && (gSep[e - 1] !== gSep[g] || len < 3 || (e === g + 1 && gEnd[g]! - gStart[g]! < 3))) break;
      digits += text.slice(gStart[e], gEnd[e]);
      if (digits.length > 19) break;
      const first = digits.charCodeAt(0);
      if (digits.length >= 13 && first >= 50 && first <= 54 && luhn(digits, 0, digits.length)) found = e;
    }
    if (found === -1) {
      g++;
      continue;
    }
    // A "." the card's own groups do not use joins it to a number: 4111….50 is an amount.
    const inner = found > g ? gSep[g]! : 0;
    const decimal = (sep: number | undefined) => sep !== undefined && sep !== 0 && sep !== inner && Math.floor(sep / 4) === 46;
    if (!decimal(gSep[found]) && !decimal(g > 0 ? gSep[g - 1] : undefined)) {
      out.push({ start: gStart[g]!, end: gEnd[found]!, detector: 'payment_card' });
    }
    g = found + 1;
  }
}

// ── us_ssn ────────────────────────────────────────────────────────────────

/** The SSA never issues area 000, 666 or 900–999, group 00 or serial 0000. */
function validSsn(area: number, group: number, serial: number): boolean {
  return area !== 0 && area !== 666 && area < 900 && group !== 0 && serial !== 0;
}

/** One kind of separator: hyphen, space, dot, en or em dash, thin or no-break space. */
const SSN_SEPARATED = /\d{3}([- .\u2013\u2014\u2009\u00a0])\d{2}\1\d{4}/g;
const SSN_BARE = /\d{9}/g;
/** Bare nine-digit numbers are everywhere (ids, amounts in cents); only with this nearby do they count. */
const SSN_CONTEXT = /\bssns?\b|\bss#|social[\s_-]*security|\bsoc\.?\s*sec\b|\btin\b|taxpayer/i;
const SSN_CONTEXT_WINDOW = 40;

/**
 * AAA-GG-SSSS (or with spaces, dots, dashes) under the SSA's rules. The unseparated form
 * counts only when it is the whole value, or when "SSN", "social security",
 * "TIN", … appears in the 40 characters before it.
 */
function findSsns(text: string, out: Span[]): void {
  SSN_SEPARATED.lastIndex = 0;
  for (let m = SSN_SEPARATED.exec(text); m; m = SSN_SEPARATED.exec(text)) {
    const s = m.index;
    const e = s + 11;
    // Separated, the shape is telling enough that letters may touch it ("SSN078-05-1120x"); digits may not.
    if (boundaryBefore(text, s, false) && boundaryAfter(text, e, false) && validSsn(num(text, s, s + 3), num(text, s + 4, s + 6), num(text, s + 7, e))) {
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
 * 415 555 2671, optionally after +1 / 1-. Area code and exchange start with
 * 2–9. Ten bare digits are not matched: they are as often an id.
 */
const NANP = /(?:\+?1[ .-]?)?(?:\([2-9]\d\d\) ?|[2-9]\d\d([ .-]))[2-9]\d\d([ .-])\d{4}/g;

function findPhones(text: string, out: Span[]): void {
  if (text.indexOf('+') !== -1) findE164(text, out);
  NANP.lastIndex = 0;
  for (let m = NANP.exec(text); m; m = NANP.exec(text)) {
    const s = m.index;
    const e = s + m[0].length;
    const first = text.charCodeAt(s);
    const before = first === 43 || first === 40 ? s === 0 || !has(text.charCodeAt(s - 1), WORD) : boundaryBefore(text, s);
    // "415-555.2671" mixes separators: more likely two numbers than one phone.
    const consistent = m[1] === undefined || m[1] === m[2];
    if (before && consistent && boundaryAfter(text, e)) out.push({ start: s, end: e, detector: 'phone' });
    else NANP.lastIndex = s + 1; // a shorter match may start inside ("21 415-555-2671")
  }
}

/**
 * E.164 as people write it: "+", a country code starting 1–9, 8–15 digits
 * in all, single spaces, dashes or dots between groups, parentheses around
 * one ("+44 (0)20 7946 0958"). When the digits run on past 15, the longest
 * prefix of whole groups that fits is the number.
 */
function findE164(text: string, out: Span[]): void {
  const n = text.length;
  let p = text.indexOf('+');
  while (p !== -1) {
    let next = p + 1;
    const c1 = p + 1 < n ? text.charCodeAt(p + 1) : 0;
    if (c1 >= 49 && c1 <= 57 && (p === 0 || !has(text.charCodeAt(p - 1), WORD))) {
      let j = p + 1;
      let digits = 0;
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
            if (digits >= 8 && digits <= 15 && boundaryAfter(text, end)) best = end;
            if (digits > 15) break;
            if (after === 41) j++;
          }
        } else if ((c === 32 || c === 45 || c === 46) && j + 1 < n && (isDigit(text.charCodeAt(j + 1)) || text.charCodeAt(j + 1) === 40)) {
          j++;
        } else if (c === 40 && j + 1 < n && isDigit(text.charCodeAt(j + 1))) {
          j++;
        } else {
          break;
        }
      }
      if (best !== -1) {
        out.push({ start: p, end: best, detector: 'phone' });
        next = best;
      }
    }
    p = text.indexOf('+', next);
  }
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
 * the paper format's groups of four separated by single spaces. Length per
 * country (or 15–34), mod-97 == 1. Case-insensitive.
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
      } else if (c === 32 && compact.length % 4 === 0 && j + 1 < n && isAlnum(text.charCodeAt(j + 1))) {
        j++;
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
 * string "alg". Every JSON object header starts `{"`, which is "eyJ".
 */
function findJwts(text: string, out: Span[]): void {
  const n = text.length;
  let p = text.indexOf('eyJ');
  while (p !== -1) {
    let next = p + 3;
    const prev = p > 0 ? text.charCodeAt(p - 1) : 0;
    if (p === 0 || !(has(prev, B64URL) || prev === 46)) {
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
        next = j;
      }
    }
    p = text.indexOf('eyJ', next);
  }
}

function jwtHeader(segment: string): boolean {
  if (segment.length < 8) return false;
  try {
    const header: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof header === 'object' && header !== null && typeof (header as { alg?: unknown }).alg === 'string';
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

const PEM_LABEL = /^[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?$/;

/**
 * A PEM private key (PKCS#1/#8, EC, OpenSSH, encrypted, PGP) from its BEGIN
 * line through the END line with the same label. A block with no END (a
 * truncated log line) runs to the end of the text: half a key is still a
 * secret.
 */
function findPrivateKeys(text: string, out: Span[]): void {
  let p = text.indexOf('-----BEGIN ');
  while (p !== -1) {
    let next = p + 11;
    const close = text.indexOf('-----', p + 11);
    if (close !== -1 && close - p < 80) {
      const label = text.slice(p + 11, close);
      if (PEM_LABEL.test(label)) {
        const endLine = `-----END ${label}-----`;
        const end = text.indexOf(endLine, close + 5);
        const stop = end === -1 ? text.length : end + endLine.length;
        out.push({ start: p, end: stop, detector: 'private_key' });
        next = stop;
      }
    }
    p = text.indexOf('-----BEGIN ', next);
  }
}

// ── Registry ──────────────────────────────────────────────────────────────

const detector = (name: DetectorName, find: (text: string, out: Span[]) => void): Detector => ({ name, find });

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
  for (const d of detectors) d.find(text, found);
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
