/**
 * Which response bodies a mask plan reads as JSON, and how a masked one is
 * written back. A field rule is only as good as the gateway's reading of
 * the body matches the client's, so whatever a client would read as JSON is
 * read as JSON here too:
 *
 *   - a body whose type says JSON (media-type.ts) must be one JSON value,
 *     after an anti-XSSI prefix (`)]}',`, `while(1);`) that clients strip;
 *     anything else is refused;
 *   - under field rules, a body of another type that starts like JSON is
 *     read as strict JSON, then as what lenient readers accept (JSON5:
 *     NaN, comments, trailing commas), then as a sequence of values
 *     (NDJSON lines, RFC 7464 records); one that is none of these is
 *     refused, since a streaming client would still read its first value;
 *   - under field rules, values one per line are read as a sequence
 *     whatever the first one is, and text the gateway cannot read as JSON
 *     but that holds a member the rules name is refused
 *     (refuseMaskedMembersInText);
 *   - under any rule (field or `$`), a body declared in any charset but
 *     UTF-8 is refused (clients decode by it, whatever the type); under
 *     field rules, so is JSON in UTF-16, UTF-32 or a single-byte charset:
 *     the rules read UTF-8 (refuseJsonInOtherEncodings).
 */
import JSON5 from 'json5';
import type { JsonValue } from '../../engine/masking/json-fields.js';
import { parseJsonExactly, stringifyJson } from '../../engine/masking/json-numbers.js';
import { decoderFor, isJsonType } from '../media-type.js';
import { BodyRefused } from './body-refused.js';
import { hasDuplicateKeys, JsonTooDeep, MAX_JSON_DEPTH, nestsDeeperThan } from '../../engine/masking/json-text.js';

export interface JsonBody {
  documents: JsonValue[];
  /**
   * The body must be sent as write() gives it even when no rule changed
   * anything: it is not plain strict JSON, or a key is in it twice (the
   * parse kept the last; the raw text would show the others unmasked).
   */
  mustRewrite(): boolean;
  write(documents: readonly JsonValue[]): string;
}

/** Prefixes an API puts before JSON so that a <script> tag cannot run it; clients strip them before parsing. */
const XSSI_PREFIX = /^(?:\)\]\}',?[ \t]*\r?\n?|while\s*\(1\);|for\s*\(;;\);)/;

/**
 * An object or array after a BOM, whitespace and JSON5 comments. Skipped
 * by hand: a pattern with lazy comments inside a repeated group backtracks
 * through every way of pairing "/*" with a later "*\/", exponentially: forty
 * empty comments before a letter held the process for good.
 */
export function looksLikeJson(text: string): boolean {
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (;;) {
    WHITESPACE.lastIndex = i;
    WHITESPACE.test(text);
    i = WHITESPACE.lastIndex;
    const comment = text.startsWith('/*', i) ? '*/' : text.startsWith('//', i) ? '\n' : null;
    if (comment === null) return text[i] === '[' || text[i] === '{';
    const end = text.indexOf(comment, i + 2);
    if (end === -1) return false;
    i = end + comment.length;
  }
}

const WHITESPACE = /\s*/y;

/** RFC 7464's record separator. */
const RS = '\u001e';

/**
 * Charsets under which the text the rules read is the text a client
 * decodes. "binary" (PHP's finfo on downloads) names no text encoding:
 * such a body is read as bytes, as one that declares none is.
 */
const UTF8_READABLE = new Set(['utf-8', 'utf8', 'us-ascii', 'ascii', 'binary']);

/** The declared charsets under which a client reads other text than the gateway's UTF-8 reading. */
export function otherCharsets(declared: readonly string[]): string[] {
  return declared.filter((charset) => !UTF8_READABLE.has(charset));
}

/**
 * The body as JSON, or null when the plan reads it as text. Throws BodyRefused for JSON it cannot be sure it reads
 * as a client would, and for any body declared in a charset that reads its bytes otherwise than UTF-8 does
 * (`foreignCharsets`, from body.ts). Called only when some rule reads the body.
 */
export function readJsonBody(text: string | null, contentType: string, fieldRules: boolean, foreignCharsets: readonly string[]): JsonBody | null {
  // Text that is UTF-8 can still be declared as UTF-7 (`+AGU-mail` is "email", `ada+AEA-example.com` an address to the
  // client), UTF-16, HZ, EBCDIC, …, and clients such as requests' r.json() decode a body in its declared charset
  // whatever its type: neither field rules nor `$` detectors would see what the client reads.
  const [unreadable] = foreignCharsets;
  if (unreadable !== undefined) throw new BodyRefused(`the body is declared in charset ${unreadable.slice(0, 40)}, which does not read it as UTF-8 does (or which the gateway cannot decode): the policy masks this response, and the gateway reads bodies only as UTF-8`);
  const declared = isJsonType(contentType);
  if (declared && text === null) throw new BodyRefused('the body is declared as JSON but is not UTF-8 text');
  if (text === null) return null;
  const prefix = XSSI_PREFIX.exec(text)?.[0] ?? '';
  const body = stripBom(text.slice(prefix.length));
  if (!declared) {
    if (!fieldRules) return null;
    // Values of any kind, one per line: NDJSON whose first line is `0` is still read by an NDJSON client.
    if (!looksLikeJson(body) && !body.trimStart().startsWith(RS)) return readSequence(body, prefix);
  }

  const single = (document: unknown, lenient: boolean): JsonBody => ({
    documents: [document as JsonValue],
    mustRewrite: () => lenient || prefix !== '' || hasDuplicateKeys(body),
    write: ([masked]) => prefix + stringifyJson(masked),
  });
  const strict = tryParse(() => parseJsonExactly(body));
  if (strict.ok) return single(strict.value, false);
  // Never pass a parser's message on: it quotes the body.
  if (declared) throw new BodyRefused('the body is declared as JSON but is not valid JSON');
  const lenient = tryParse(() => parseJson5(body));
  if (lenient.ok && typeof lenient.value === 'object' && lenient.value !== null) return single(lenient.value, true);
  const sequence = readSequence(body, prefix);
  if (sequence) return sequence;
  throw new BodyRefused('the body starts like JSON but is not JSON the gateway can read whole, and the policy masks fields in it');
}

/** NDJSON (a value per line) or RFC 7464 (each value after a record separator); null when not every part parses. */
function readSequence(body: string, prefix: string): JsonBody | null {
  const records = body.trimStart().startsWith(RS);
  const parts = (records ? body.split(RS) : body.split('\n')).map((part) => part.trim()).filter((part) => part !== '');
  if (parts.length < 2) return null;
  const documents: JsonValue[] = [];
  for (const part of parts) {
    const parsed = tryParse(() => parseJsonExactly(part));
    if (!parsed.ok) return null;
    documents.push(parsed.value as JsonValue);
  }
  return {
    documents,
    mustRewrite: () => parts.some((part) => hasDuplicateKeys(part)),
    write: (masked) => prefix + masked.map((d) => (records ? `${RS}${stringifyJson(d)}\n` : `${stringifyJson(d)}\n`)).join(''),
  };
}

/**
 * A body that is not UTF-8 but reads as a JSON object or array in UTF-16,
 * UTF-32 or its declared (or a single-byte) charset, under a plan with field
 * rules: its fields would pass unmasked to any client that decodes it so.
 * So would a member the rules name in UTF-16 or UTF-32 text that is not
 * JSON (ASCII in them is the Latin-1 reading with the NULs taken out).
 */
export function refuseJsonInOtherEncodings(bytes: Buffer, declared: readonly string[], memberNames: ReadonlySet<string>): void {
  // Whitespace before the value can be as long as it likes: the window starts where it ends, 4-byte aligned.
  const start = contentStart(bytes);
  const window = bytes.subarray(start, start + 64);
  for (const encoding of [...declared, 'utf-16le', 'utf-16be', 'utf-32le', 'utf-32be', 'latin1']) {
    if (encoding === undefined) continue;
    const text = decodeAs(window, encoding);
    if (text !== null && looksLikeJson(text.replace(/^\0+/, ''))) {
      throw new BodyRefused(`the body reads as JSON in ${encoding}, not UTF-8: the gateway masks JSON only as UTF-8`);
    }
  }
  if (bytes.includes(0)) refuseMaskedMembersInText(bytes.toString('latin1').replaceAll('\0', ''), memberNames);
}

/** NUL, tab, line feed, carriage return, space, and the bytes of the UTF-8, UTF-16 and UTF-32 BOMs. */
const LEADING_BYTES = new Set([0x00, 0x09, 0x0a, 0x0d, 0x20, 0xef, 0xbb, 0xbf, 0xfe, 0xff]);

function contentStart(bytes: Buffer): number {
  let i = 0;
  while (i < bytes.length && LEADING_BYTES.has(bytes[i]!)) i++;
  return i - (i % 4);
}

function decodeAs(window: Buffer, encoding: string): string | null {
  if (encoding.startsWith('utf-32')) {
    // TextDecoder has no UTF-32: ASCII in it is every fourth byte.
    const at = encoding === 'utf-32le' ? 0 : 3;
    return window.length % 4 === 0 || window.length === 64 ? String.fromCharCode(...window.filter((_, i) => i % 4 === at)) : null;
  }
  return decoderFor(encoding)?.decode(window) ?? null;
}

/** What a lenient reader (JSON5, Python's json) takes for JSON: the body parsed (long numbers tagged, as parseJsonExactly), or undefined. */
export function parseLeniently(text: string): unknown {
  const strict = tryParse(() => parseJsonExactly(text));
  if (strict.ok) return strict.value;
  const lenient = tryParse(() => parseJson5(text));
  return lenient.ok ? lenient.value : undefined;
}

/** JSON5.parse, and JsonTooDeep as parseJsonExactly throws it. */
function parseJson5(text: string): unknown {
  const parsed = JSON5.parse<unknown>(text);
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) throw new JsonTooDeep();
  return parsed;
}

/** What `parse` read, or not ok when it is not JSON; JSON too deep to read is refused. */
function tryParse(parse: () => unknown): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: parse() };
  } catch (err) {
    if (err instanceof JsonTooDeep) throw new BodyRefused(`the body holds ${err.message}`);
    return { ok: false };
  }
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * Under field rules, text the gateway could not read as JSON that still
 * holds a member a rule names (`"email":`, perhaps escaped): a lenient or
 * streaming client reads JSON the gateway did not (`0 {"email": …}`, a
 * last line cut short), so it is refused rather than passed unmasked.
 */
export function refuseMaskedMembersInText(text: string, memberNames: ReadonlySet<string>): void {
  if (memberNames.size === 0 || !text.includes(':')) return;
  // An event stream's client joins an event's data lines before it parses them: a member can be split across them.
  if (SSE_DATA_LINE.test(text)) refuseMembersInKeys(eventStreamData(text), memberNames);
  refuseMembersInKeys(text, memberNames);
}

/** A line that is an event stream's `data` field (with its value, or empty). */
const SSE_DATA_LINE = /^data(?::|\r?$)/m;

/** Each event's data as an EventSource client reads it (the HTML standard's "data" buffer), one event per line block. */
function eventStreamData(text: string): string {
  const events: string[] = [];
  let data: string[] = [];
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === '') {
      if (data.length > 0) events.push(data.join('\n'));
      data = [];
    } else if (line === 'data') {
      data.push('');
    } else if (line.startsWith('data:')) {
      data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
    }
  }
  if (data.length > 0) events.push(data.join('\n'));
  return events.join('\n\n');
}

function refuseMembersInKeys(text: string, memberNames: ReadonlySet<string>): void {
  refuseKeys(text, memberNames);
  // Comments between a key and its colon (JSON5, JavaScript) are taken out first, in one pass: a pattern that
  // skipped them at each key would scan to the end of the text for every unclosed "/*", and a body repeating
  // `"k"/*` would hold the main thread, and every other request, for seconds per megabyte.
  if (text.includes('/*') || text.includes('//')) refuseKeys(withoutComments(text), memberNames);
}

function refuseKeys(text: string, memberNames: ReadonlySet<string>): void {
  const patterns = keyPatterns(memberNames);
  // A key in double or single quotes, then the colon.
  for (const match of text.matchAll(patterns.quoted)) refuseMember(unescapeKey(match[2]!), memberNames);
  // A key without quotes, as JavaScript and JSON5 read one: after "{" or "," (not "email:" in prose).
  for (const match of text.matchAll(patterns.bare)) refuseMember(match[1]!, memberNames);
}

/**
 * The key patterns, as long as the longest masked name can be spelled
 * (each character a six-character \u escape): every quote in the text
 * starts a try that reads up to that far, so the bound is the cost per
 * character of text.
 */
function keyPatterns(memberNames: ReadonlySet<string>): { quoted: RegExp; bare: RegExp } {
  let longest = 1;
  for (const name of memberNames) longest = Math.max(longest, name.length);
  const max = Math.min(6 * longest, 1000);
  let patterns = KEY_PATTERNS.get(max);
  if (!patterns) {
    patterns = {
      quoted: new RegExp(`(["'])((?:(?!\\1)[^\\\\\\n]|\\\\.){1,${max}})\\1\\s*:`, 'g'),
      bare: new RegExp(`[{,]\\s*([A-Za-z_$][\\w$]{0,${max - 1}})\\s*:`, 'g'),
    };
    KEY_PATTERNS.set(max, patterns);
  }
  return patterns;
}

const KEY_PATTERNS = new Map<number, { quoted: RegExp; bare: RegExp }>();

/**
 * The text with each comment a JavaScript or JSON5 parser would skip made
 * one space; quoted strings (which end at their quote or the line's end, as
 * JavaScript's do) are kept whole, so `"http://x"` is no comment. An unclosed
 * block comment runs to the end. Linear: each comment's end is found once.
 */
export function withoutComments(text: string): string {
  const parts: string[] = [];
  let from = 0;
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === QUOTE || c === APOSTROPHE) {
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === BACKSLASH) i++;
        else if (d === c || d === NEWLINE) break;
      }
      i++;
      continue;
    }
    const next = c === SLASH ? text.charCodeAt(i + 1) : 0;
    if (next !== STAR && next !== SLASH) {
      i++;
      continue;
    }
    const close = next === STAR ? text.indexOf('*/', i + 2) : text.indexOf('\n', i + 2);
    parts.push(text.slice(from, i), ' ');
    i = from = close === -1 ? text.length : next === STAR ? close + 2 : close;
  }
  parts.push(text.slice(from));
  return parts.join('');
}

const QUOTE = 0x22;
const APOSTROPHE = 0x27;
const BACKSLASH = 0x5c;
const NEWLINE = 0x0a;
const SLASH = 0x2f;
const STAR = 0x2a;

function refuseMember(key: string, memberNames: ReadonlySet<string>): void {
  if (memberNames.has(key)) throw new BodyRefused(`the body holds member "${key.slice(0, 40)}", which the policy masks, in JSON the gateway cannot read whole`);
}

/**
 * Under field rules, a string value that is itself JSON holding a member
 * the rules mask (`{"data": "{\"email\": …}"}`, common in event APIs): a
 * client parses the string and reads the member, which no rule reached, so
 * the body is refused. So is JSON in base64 or base64url (Pub/Sub's
 * `message.data`, a JWT's claims), and each encoding inside another, up to
 * four deep. Run on the masked documents: a masked value is no longer JSON.
 * `nesting` counts the containers a value is in, across the encodings: the
 * walk goes no deeper than MAX_JSON_DEPTH in all, and refuses what would.
 */
export function refuseMaskedMembersInStrings(documents: readonly JsonValue[], memberNames: ReadonlySet<string>): void {
  if (memberNames.size === 0) return;
  const visit = (value: JsonValue, depth: number, nesting: number): void => {
    if (typeof value === 'string') {
      if (NESTED_JSON.test(value)) refuseMaskedMembersInText(value, memberNames);
      if (depth >= MAX_ENCODINGS) return;
      // Encoded again (a JSON string of JSON, an array of them): a client parses as often as it takes.
      if (MAY_BE_JSON.test(value)) {
        const inner = tryParse(() => parseJsonExactly(value));
        if (inner.ok) {
          if (nestsDeeperThan(value, MAX_JSON_DEPTH - nesting)) throw new BodyRefused(`the body holds JSON in JSON strings nested more than ${MAX_JSON_DEPTH} levels deep in all`);
          visit(inner.value as JsonValue, depth + 1, nesting);
        }
      }
      for (const decoded of base64Texts(value)) visit(decoded, depth + 1, nesting);
    } else if (Array.isArray(value)) {
      for (const item of value) visit(item, depth, nesting + 1);
    } else if (value !== null && typeof value === 'object') {
      for (const key in value) visit(value[key]!, depth, nesting + 1);
    }
  };
  for (const document of documents) visit(document, 0, 0);
}

/** Base64 or base64url, padded or not; a JWT is three of them joined by dots. */
const BASE64_SEGMENT = /^[A-Za-z0-9+/_-]{8,}={0,2}$/;

/** The text a client gets by decoding the string (or each dot-separated part of it) from base64, where that is UTF-8. */
function base64Texts(value: string): string[] {
  if (value.length < 8) return [];
  const texts: string[] = [];
  for (const segment of value.split('.', 8)) {
    if (!BASE64_SEGMENT.test(segment)) continue;
    // Node reads both alphabets, with or without padding.
    const text = utf8Text(Buffer.from(segment, 'base64'));
    if (text !== null) texts.push(text);
  }
  return texts;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function utf8Text(bytes: Buffer): string | null {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}

const NESTED_JSON = /^\s*[[{]/;
const MAY_BE_JSON = /^\s*["[{]/;
const MAX_ENCODINGS = 4;

/** A key's \u (four hex digits) and \x (two) escapes read. */
function unescapeKey(key: string): string {
  return key.includes('\\') ? key.replace(/\\(?:u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2}))/g, (_, u?: string, x?: string) => String.fromCharCode(parseInt(u ?? x!, 16))) : key;
}
