/**
 * One buffered HTTP body through a mask plan: decode its content-encoding,
 * decide whether it is JSON, mask it, and say what to send on and what to
 * record.
 *
 *   JSON (application/json, *+json, or a body that parses as a JSON object
 *   or array when the plan has field rules, whatever its type says, JSON5
 *   included): parsed, masked by field, re-serialised. JSON in another
 *   encoding than UTF-8 under such a plan is refused.
 *   Other text: masked only by the plan's `$` rules; without one it passes
 *   through unchanged, as the policy decided.
 *
 * Whatever the plan cannot be sure it masked is refused (BodyRefused), and
 * the caller answers in the upstream's place: a body that claims JSON and
 * does not parse, an encoding it cannot decode, a decoded body over the size
 * limit, binary data under a `$` rule. A JSON body with a key twice in one
 * object is re-serialised (JSON.parse kept the last; the raw text would
 * show the others unmasked).
 *
 * The target's credential, which Check injected into the request, is taken
 * out of whatever the upstream sends back (an echo of the request headers,
 * an error quoting the token): a text body has it replaced, a binary body
 * holding it is refused. A body that nothing changed is left alone, byte
 * for byte (still compressed, if it was).
 *
 * Numbers are re-serialised by JSON.stringify: an integer beyond 2^53 in a
 * body that was rewritten loses precision (Node 20 has no JSON.rawJSON).
 */
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import JSON5 from 'json5';
import type { FieldMasks, JsonValue } from '../../engine/masking/json-fields.js';
import type { RecordedBody } from '../../engine/recording/types.js';
import { isJsonType } from '../media-type.js';
import { hasDuplicateKeys } from './duplicate-keys.js';

/** Why a body cannot be passed on: one line, for the caller and the log, never a value. */
export class BodyRefused extends Error {
  override name = 'BodyRefused';
}

export interface BodyHeaders {
  /** The Content-Type header, or "". */
  contentType: string;
  /** The Content-Encoding header, or "". */
  contentEncoding: string;
}

export interface BodyOutcome {
  /** Bytes to send in place of the original, identity-encoded; null to leave the body as it was. */
  replacement: Buffer | null;
  /** The body the client gets, for the recording (text absent when binary or not decoded); null when not asked for. */
  recorded: RecordedBody | null;
}

export interface BodyOptions {
  /** The largest decoded body the plan will read; bigger is refused (a compressed body can expand a thousandfold). */
  maxBytes: number;
  /** Whether the caller records the body (then it is decoded even when nothing is masked). */
  record: boolean;
  /** Strings that must not leave: the injected credential (credentialSecrets). */
  secrets?: readonly string[];
}

export const CREDENTIAL_REPLACEMENT = '[REDACTED:credential]';

export async function processBody(raw: Buffer, headers: BodyHeaders, masks: FieldMasks | null, options: BodyOptions): Promise<BodyOutcome> {
  const reads = masks !== null && !masks.empty;
  const secrets = options.secrets ?? [];
  if (!reads && !options.record && secrets.length === 0) return { replacement: null, recorded: null };
  const mime = headers.contentType;

  let decoded: Buffer;
  try {
    decoded = await decodeContent(raw, headers.contentEncoding, options.maxBytes);
  } catch (err) {
    // Unread, it could hold the credential in any form.
    if (reads || secrets.length > 0) throw err;
    return { replacement: null, recorded: { mime_type: mime, size: raw.length } }; // recorded as binary
  }
  if (await holdsSecretUnreadably(decoded, secrets)) throw new BodyRefused('the body holds the target\'s credential in a form the gateway cannot take out');
  const text = utf8(decoded);
  // UTF-16 and UTF-32 of ASCII text are valid UTF-8, with NULs between the characters.
  if (reads && masks.hasFieldRules && (text === null || text.includes('\0'))) refuseJsonInOtherEncodings(decoded, mime);
  const masked = reads ? maskedText(text, mime, masks) : null;
  const sent = masked ?? text;
  if (sent === null) {
    if (secrets.some((s) => decoded.includes(s))) throw new BodyRefused('the binary body holds the target\'s credential');
    return { replacement: null, recorded: recordedAs(mime, decoded.length, null) };
  }
  const clean = withoutSecrets(sent, secrets);
  if (clean === text) return { replacement: null, recorded: recordedAs(mime, decoded.length, text) };
  const replacement = Buffer.from(clean, 'utf8');
  return { replacement, recorded: { mime_type: mime, size: replacement.length, text: clean } };
}

/** The body's text under the plan, or null when the plan leaves it as it is. */
function maskedText(text: string | null, mime: string, masks: FieldMasks): string | null {
  const found = jsonDocument(text, mime, masks);
  if (found !== NOT_JSON) {
    const { value, changed } = masks.maskDocument(found.document);
    // Text only a lenient parser reads is sent as the JSON that was masked: a client's parser could read it otherwise.
    return changed || found.lenient || hasDuplicateKeys(text!) ? JSON.stringify(value) : null;
  }
  if (!masks.coversText) return null;
  if (text === null) throw new BodyRefused('the body is binary and the policy masks the whole body');
  const { value, changed } = masks.maskText(text);
  return changed ? (value ?? '') : null;
}

function replaceLiterals(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (out.includes(secret)) out = out.replaceAll(secret, CREDENTIAL_REPLACEMENT);
  return out;
}

function withoutSecrets(text: string, secrets: readonly string[]): string {
  let out = replaceLiterals(text, secrets);
  // JSON can spell it with escapes (\u002B, \/): look in the parsed strings too.
  if (secrets.length > 0 && out.includes('\\') && /^\s*[[{"]/.test(out)) {
    try {
      const { value, changed } = scrubStrings(JSON.parse(out) as JsonValue, secrets);
      if (changed) out = JSON.stringify(value);
    } catch {
      // Not JSON: the literal replacement above is what applies.
    }
  }
  return out;
}

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

/**
 * The credential in bytes no text replacement reaches: UTF-16 text, or a
 * gzip or zlib stream inside the body (compressed twice, or compressed with
 * no Content-Encoding saying so), a few levels deep.
 */
async function holdsSecretUnreadably(bytes: Buffer, secrets: readonly string[], depth = 0): Promise<boolean> {
  if (secrets.length === 0) return false;
  for (const secret of secrets) {
    const wide = Buffer.from(secret, 'utf16le');
    if (bytes.includes(wide) || bytes.includes(Buffer.from(wide).swap16())) return true;
  }
  if (depth >= 3) return false;
  const limit = { maxOutputLength: 16 * 1024 * 1024 };
  const inner = bytes.subarray(0, 3).equals(GZIP_MAGIC) ? await gunzip(bytes, limit).catch(() => null)
    : isZlibHeader(bytes) ? await inflate(bytes, limit).catch(() => null) : null;
  if (inner === null) return false;
  return secrets.some((s) => inner.includes(s)) || holdsSecretUnreadably(inner, secrets, depth + 1);
}

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
  // upper- or lower-cased, JSON with "\/".
  const spellings = new Set<string>();
  for (const part of parts) {
    const bytes = Buffer.from(part);
    for (const spelling of [part, encodeURIComponent(part), part.replaceAll('/', '\\/'), part.toUpperCase(), part.toLowerCase()]) spellings.add(spelling);
    for (const hex of [bytes.toString('hex'), bytes.toString('hex').toUpperCase()]) spellings.add(hex);
    for (const encoding of ['base64', 'base64url'] as const) for (const text of base64Inside(bytes, encoding)) spellings.add(text);
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

function recordedAs(mime: string, size: number, text: string | null): RecordedBody {
  return text === null ? { mime_type: mime, size } : { mime_type: mime, size, text };
}

const NOT_JSON = Symbol('not JSON');

/**
 * The parsed document, or NOT_JSON. A declared JSON body that does not parse
 * is refused; an undeclared one is sniffed only when the plan has field
 * rules (a mislabelled JSON body must not slip past them). The sniff also
 * reads what lenient parsers take for JSON (JSON5: NaN, comments, trailing
 * commas, single quotes; Python's json reads NaN): `lenient` says so.
 */
function jsonDocument(text: string | null, mime: string, masks: FieldMasks): { document: JsonValue; lenient: boolean } | typeof NOT_JSON {
  if (isJsonType(mime)) {
    // Never pass JSON.parse's message on: it quotes the body.
    if (text === null) throw new BodyRefused('the body is declared as JSON but is not UTF-8 text');
    try {
      return { document: JSON.parse(stripBom(text)) as JsonValue, lenient: false };
    } catch {
      throw new BodyRefused('the body is declared as JSON but is not valid JSON');
    }
  }
  if (text === null || !masks.hasFieldRules || !LOOKS_LIKE_JSON.test(text)) return NOT_JSON;
  const body = stripBom(text);
  try {
    return { document: JSON.parse(body) as JsonValue, lenient: false };
  } catch {
    // Not strict JSON; perhaps what a lenient reader takes for it.
  }
  try {
    const document = JSON5.parse<unknown>(body);
    return typeof document === 'object' && document !== null ? { document: document as JsonValue, lenient: true } : NOT_JSON;
  } catch {
    return NOT_JSON;
  }
}

/** An object or array after optional whitespace, a BOM, or a JSON5 comment. */
const LOOKS_LIKE_JSON = /^\uFEFF?(?:\s|\/\/[^\n]*\n|\/\*[\s\S]*?\*\/)*[[{]/;

/**
 * A body that is not UTF-8 but reads as a JSON object or array in UTF-16,
 * UTF-32 or its declared (or a single-byte) charset, under a plan with field
 * rules: its fields would pass unmasked to any client that decodes it so.
 */
function refuseJsonInOtherEncodings(bytes: Buffer, mime: string): void {
  const declared = /;\s*charset="?([^";\s]+)/i.exec(mime)?.[1];
  for (const encoding of [declared, 'utf-16le', 'utf-16be', 'utf-32le', 'utf-32be', 'latin1']) {
    if (encoding === undefined) continue;
    const text = decodeAs(bytes, encoding);
    if (text !== null && LOOKS_LIKE_JSON.test(text.replace(/^\0+/, ''))) {
      throw new BodyRefused(`the body reads as JSON in ${encoding}, not UTF-8: the gateway masks JSON only as UTF-8`);
    }
  }
}

function decodeAs(bytes: Buffer, encoding: string): string | null {
  if (encoding.startsWith('utf-32')) {
    // TextDecoder has no UTF-32: ASCII in it is every fourth byte.
    const at = encoding === 'utf-32le' ? 0 : 3;
    const start = bytes.subarray(0, 64);
    return start.length % 4 === 0 || start.length === 64 ? String.fromCharCode(...start.filter((_, i) => i % 4 === at)) : null;
  }
  try {
    return new TextDecoder(encoding).decode(bytes.subarray(0, 64));
  } catch {
    return null; // a charset TextDecoder does not know
  }
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

function utf8(bytes: Buffer): string | null {
  try {
    return fatalUtf8.decode(bytes);
  } catch {
    return null;
  }
}

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const inflateRaw = promisify(zlib.inflateRaw);
const brotli = promisify(zlib.brotliDecompress);

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b, 0x08]);

/** A zlib stream's two header bytes (RFC 1950): deflate, a window size, and a check making them a multiple of 31. */
function isZlibHeader(bytes: Buffer): boolean {
  return bytes.length >= 2 && (bytes[0]! & 0x0f) === 8 && (bytes[0]! >> 4) <= 7 && ((bytes[0]! << 8) | bytes[1]!) % 31 === 0;
}

/**
 * Undoes Content-Encoding (a list, applied in order, so undone from the
 * last), off the event loop. A body that says nothing of its encoding but
 * starts as gzip does is gunzipped: a hop-by-hop rule (`Connection:
 * content-encoding`) can drop the header on the way, not the compression.
 */
export async function decodeContent(body: Buffer, contentEncoding: string, maxBytes: number): Promise<Buffer> {
  const codings = contentEncoding.split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '' && c !== 'identity');
  if (codings.length === 0 && body.subarray(0, 3).equals(GZIP_MAGIC)) codings.push('gzip');
  let out = body;
  for (const coding of codings.reverse()) {
    const limit = { maxOutputLength: maxBytes };
    try {
      switch (coding) {
        case 'gzip':
        case 'x-gzip':
          out = await gunzip(out, limit);
          break;
        case 'deflate':
          // "deflate" means zlib-wrapped, but some servers send it raw.
          out = await inflate(out, limit).catch((err: NodeJS.ErrnoException) => {
            if (err.code === 'Z_DATA_ERROR') return inflateRaw(out, limit);
            throw err;
          });
          break;
        case 'br':
          out = await brotli(out, limit);
          break;
        default:
          throw new BodyRefused(`the body's content-encoding "${coding.slice(0, 40)}" cannot be decoded`);
      }
    } catch (err) {
      if (err instanceof BodyRefused) throw err;
      const tooBig = err instanceof RangeError || (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
      throw new BodyRefused(tooBig ? `the decoded body is larger than ${maxBytes} bytes` : `the body is not valid ${coding}`);
    }
  }
  if (out.length > maxBytes) throw new BodyRefused(`the body is larger than ${maxBytes} bytes`);
  return out;
}
