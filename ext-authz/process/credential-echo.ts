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
 * Not looked for: base32, compression inside base64, HTML-entity text with
 * characters between entities, and anything the agent must reassemble from
 * pieces in different places.
 */
import type { JsonValue } from '../../engine/masking/json-fields.js';
import { BodyRefused } from './body-refused.js';
import { parseLeniently } from './json-body.js';

export const CREDENTIAL_REPLACEMENT = '[REDACTED:credential]';

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
  // upper- or lower-cased, JSON with "\/". withoutSecrets also looks through wrapping and byte encodings.
  const spellings = new Set<string>();
  for (const part of parts) {
    for (const spelling of [part, encodeURIComponent(part), part.replaceAll('/', '\\/'), part.toUpperCase(), part.toLowerCase()]) spellings.add(spelling);
    // Its bytes as UTF-8, and as UTF-16 (an echo of a Windows or Java string), in hex and base64.
    for (const bytes of [Buffer.from(part), Buffer.from(part, 'utf16le')]) {
      for (const hex of [bytes.toString('hex'), bytes.toString('hex').toUpperCase()]) spellings.add(hex);
      for (const encoding of ['base64', 'base64url'] as const) for (const text of base64Inside(bytes, encoding)) spellings.add(text);
    }
  }
  return [...spellings].filter((p) => p.length >= 8);
}

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
    if (changed) out = JSON.stringify(value);
  }
  // Still there behind escapes, or written so that no spelling matches the text as it is: wrapped or spaced, byte by
  // byte encoded, re-cased.
  if (holdsSecret(out, secrets)) throw new BodyRefused('the body holds the target\'s credential in an encoding the gateway cannot take out');
  return out;
}

/** Whether text (a header, a body read as Latin-1) holds the credential in any spelling or encoding looked for. */
export function holdsSecret(text: string, secrets: readonly string[]): boolean {
  if (secrets.length === 0) return false;
  const lowered = secrets.map((s) => s.toLowerCase());
  return [text, unescaped(text), ...encodedViews(text)].some((view) => {
    const lower = view.toLowerCase();
    return lowered.some((s) => lower.includes(s));
  });
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

/**
 * The text as an echo may have encoded it around the credential: base64
 * wrapped at 76 columns, with zero-width spaces, soft hyphens, combining
 * marks or NULs between its characters (INVISIBLE dropped), in fullwidth or
 * other compatibility letters (NFKC), hex bytes with separators
 * (whitespace, colons and dashes dropped), every byte
 * percent-encoded (also %u and four hex digits; and encoded twice or three
 * times), quoted-printable, HTML character
 * references, decimal byte arrays (Node's Buffer.toJSON, or codes with any separator), and one
 * character per array element. Only the views the text could need are made.
 */
function encodedViews(text: string): string[] {
  const views = [text.replace(INVISIBLE, ''), text.replace(/[\s:-]+/g, '')];
  // Fullwidth and other compatibility forms of ASCII letters and digits (ｃｒｍ, 𝐜𝐫𝐦) read as ASCII.
  if (NOT_ASCII.test(text)) views.push(text.normalize('NFKC').replace(INVISIBLE, ''));
  if (text.includes('%')) views.push(percentDecoded(text));
  if (text.includes('=')) views.push(text.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, byte));
  if (text.includes('&#')) views.push(text.replace(/&#x([0-9a-fA-F]{1,6});?/g, byte).replace(/&#(\d{1,7});?/g, (_, n: string) => String.fromCodePoint(Number(n) % 0x110000)));
  if (text.includes(',')) {
    views.push(text.replace(/\d{1,3}(?:\s*,\s*\d{1,3}){7,}/g, (run) => String.fromCharCode(...run.split(',').map((n) => Number(n) & 0xff))));
    views.push(text.replace(/(["'])\s*,\s*\1/g, ''));
  }
  // Character codes separated by anything but letters and digits ("99 114 109 …", one per line, "99;114;…").
  if (BYTE_RUN.test(text)) views.push(text.replace(BYTE_RUNS, (run) => String.fromCharCode(...run.split(/[^\dA-Za-z]+/).filter(Boolean).map((n) => Number(n) & 0xff))));
  return views;
}

const BYTE_RUN = /\b\d{2,3}(?:[^\dA-Za-z]{1,4}\d{2,3}){7,}\b/;
const BYTE_RUNS = new RegExp(BYTE_RUN.source, 'g');

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
const INVISIBLE = /[\s\0\p{Cf}\p{Mn}\p{Me}]+/gu;
const NOT_ASCII = /[^\0-\x7f]/;

function scrubStrings(value: JsonValue, secrets: readonly string[]): { value: JsonValue; changed: boolean } {
  if (typeof value === 'string') {
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
