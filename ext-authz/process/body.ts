/**
 * One buffered HTTP body through a mask plan: decode its content-encoding,
 * decide whether it is JSON, mask it, and say what to send on and what to
 * record.
 *
 *   JSON (json-body.ts says which bodies, and how they are written back):
 *   parsed, masked by field, re-serialised.
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
 * holding it, or text holding it behind escapes that cannot be rewritten,
 * is refused. A body that nothing changed is left alone, byte for byte,
 * unless it came compressed: then it goes out decoded, since the decoder
 * skips parts of the compressed bytes that a client can still read.
 *
 * Numbers are re-serialised by JSON.stringify: an integer beyond 2^53 in a
 * body that was rewritten loses precision (Node 20 has no JSON.rawJSON).
 */
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import type { FieldMasks, JsonValue } from '../../engine/masking/json-fields.js';
import type { RecordedBody } from '../../engine/recording/types.js';
import { BodyRefused } from './body-refused.js';
import { parseLeniently, readJsonBody, refuseJsonInOtherEncodings, refuseMaskedMembersInText } from './json-body.js';

export { BodyRefused } from './body-refused.js';


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
  // Compressed bytes hold more than the decoded body (a gzip header's file name and comment): what was read goes
  // out decoded, never as the bytes that came.
  const decodedOnly = decoded !== raw && (reads || secrets.length > 0);
  if (sent === null) {
    if (secrets.some((s) => decoded.includes(s))) throw new BodyRefused('the binary body holds the target\'s credential');
    return { replacement: decodedOnly ? decoded : null, recorded: recordedAs(mime, decoded.length, null) };
  }
  const clean = withoutSecrets(sent, secrets);
  if (clean === text && !decodedOnly) return { replacement: null, recorded: recordedAs(mime, decoded.length, text) };
  const replacement = Buffer.from(clean, 'utf8');
  return { replacement, recorded: { mime_type: mime, size: replacement.length, text: clean } };
}

/** The body's text under the plan, or null when the plan leaves it as it is. */
function maskedText(text: string | null, mime: string, masks: FieldMasks): string | null {
  const json = readJsonBody(text, mime, masks.hasFieldRules);
  if (json) {
    let changed = false;
    const documents = json.documents.map((document) => {
      const masked = masks.maskDocument(document);
      changed ||= masked.changed;
      return masked.value;
    });
    // What is not plain strict JSON is sent as the JSON that was masked: a client's parser could read it otherwise.
    return changed || json.mustRewrite() ? json.write(documents) : null;
  }
  if (text !== null && masks.hasFieldRules) refuseMaskedMembersInText(text, masks.memberNames);
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
  if (secrets.length === 0) return out;
  // JSON (and JSON5, and the string literals of other languages) can spell it with escapes (\u0077, \x77, \/).
  if (out.includes('\\') && secrets.some((s) => unescaped(out).includes(s))) {
    const document = /^\s*[[{"]/.test(out) ? parseLeniently(out) : undefined;
    if (document === undefined) throw new BodyRefused('the body holds the target\'s credential written with escapes the gateway cannot take out');
    const { value, changed } = scrubStrings(document as JsonValue, secrets);
    if (changed) out = JSON.stringify(value);
    if (secrets.some((s) => unescaped(out).includes(s))) throw new BodyRefused('the body holds the target\'s credential written with escapes the gateway cannot take out');
  }
  // Written so that no spelling matches the text as it is: wrapped or spaced, percent- or quoted-printable-encoded.
  if (encodedViews(out).some((view) => secrets.some((s) => view.includes(s)))) {
    throw new BodyRefused('the body holds the target\'s credential in an encoding the gateway cannot take out');
  }
  return out;
}

/** Text with its backslash escapes read as JSON, JSON5 and most languages read them (a backslash-newline continues the line). */
function unescaped(text: string): string {
  return text.replace(/\\(?:\r?\n|u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2})|(.))/gs, (whole: string, u: string | undefined, x: string | undefined, c: string | undefined) =>
    u !== undefined || x !== undefined ? String.fromCharCode(parseInt(u ?? x!, 16)) : c ?? '');
}

/**
 * The text as an echo may have encoded it around the credential: base64
 * wrapped at 76 columns and hex bytes with separators (whitespace and
 * colons dropped), every byte percent-encoded, quoted-printable. Only the
 * views the text could need are made.
 */
function encodedViews(text: string): string[] {
  const views = [text.replace(/[\s:]+/g, '')];
  if (text.includes('%')) views.push(text.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))));
  if (text.includes('=')) views.push(text.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))));
  return views;
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

function recordedAs(mime: string, size: number, text: string | null): RecordedBody {
  return text === null ? { mime_type: mime, size } : { mime_type: mime, size, text };
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
