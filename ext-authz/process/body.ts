/**
 * One buffered HTTP body through a mask plan: decode its content-encoding,
 * decide whether it is JSON, mask it, and say what to send on and what to
 * record.
 *
 *   JSON (json-body.ts says which bodies, and how they are written back):
 *   parsed, masked by field, re-serialised.
 *   Other text: masked only by the plan's `$` rules; without one it passes
 *   through unchanged, as the policy decided.
 *   Archives and compressed data (packed.ts): refused when the plan masks
 *   anything, since a client unpacks what the rules never saw.
 *
 * Whatever the plan cannot be sure it masked is refused (BodyRefused), and
 * the caller answers in the upstream's place: a body that claims JSON and
 * does not parse, an encoding it cannot decode, a decoded body over the size
 * limit, binary data or UTF-16 or UTF-32 text under a `$` rule, a body
 * declared in a charset but UTF-8 under any rule (by Content-Type, or by
 * the body itself: in-body-charsets.ts). A JSON body with a key
 * twice in one object is re-serialised (JSON.parse kept the last; the raw
 * text would show the others unmasked).
 *
 * The target's credential, which Check injected into the request, is taken
 * out of whatever the upstream sends back (an echo of the request headers,
 * an error quoting the token): a text body has it replaced, a binary body
 * holding it, or text holding it behind escapes that cannot be rewritten,
 * is refused, and so is a body declared in another charset that holds it
 * when read in that charset, or in a charset the gateway cannot decode. A
 * body that nothing changed is left alone, byte for byte, unless it came
 * compressed: then it goes out decoded, since the decoder skips parts of
 * the compressed bytes that a client can still read.
 *
 * A rewritten JSON body keeps its long numbers (64-bit ids, 19-digit cards)
 * as they came: they are read as their text (json-numbers.ts).
 */
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import type { FieldMasks } from '../../engine/masking/json-fields.js';
import type { RecordedBody } from '../../engine/recording/types.js';
import { declaredCharsets, decoderFor } from '../media-type.js';
import { BodyRefused } from './body-refused.js';
import { holdsSecret, withoutSecrets } from './credential-echo.js';
import { charsetsDeclaredInBody } from './in-body-charsets.js';
import { otherCharsets, readJsonBody, refuseJsonInOtherEncodings, refuseMaskedMembersInStrings, refuseMaskedMembersInText } from './json-body.js';
import { isZlibHeader, packedFormat } from './packed.js';

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

export { CREDENTIAL_REPLACEMENT, credentialSecrets } from './credential-echo.js';

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
  // What Content-Type says, and what the body says of itself (a UTF-7 signature, an XML or HTML declaration): read
  // by the rules and the credential scan only, so a body decoded just to be recorded is not scanned for it.
  const declared = reads || secrets.length > 0 ? [...declaredCharsets(mime), ...charsetsDeclaredInBody(decoded)] : [];
  if (await holdsSecretUnreadably(decoded, secrets)) throw new BodyRefused('the body holds the target\'s credential in a form the gateway cannot take out');
  const packed = reads ? await packedFormat(decoded) : null;
  if (packed !== null) throw new BodyRefused(`the body is ${packed}, which the gateway does not unpack, and the policy masks this response`);
  const text = utf8(decoded);
  // UTF-16 and UTF-32 of ASCII text are valid UTF-8, with NULs between the characters.
  if (reads && masks.hasFieldRules && (text === null || text.includes('\0'))) refuseJsonInOtherEncodings(decoded, declared, masks.memberNames);
  // One byte that is not UTF-8 makes the rest no less readable to a client that decodes Latin-1: it is read so too.
  const memberNames = reads && masks.hasFieldRules ? masks.memberNames : null;
  if (text === null && (memberNames !== null || secrets.length > 0)) refuseReadableAsLatin1(decoded, memberNames, secrets);
  const masked = reads ? maskedText(text, mime, masks, foreignCharsets(declared, decoded, text)) : null;
  const sent = masked ?? text;
  // Compressed bytes hold more than the decoded body (a gzip header's file name and comment): what was read goes
  // out decoded, never as the bytes that came.
  const decodedOnly = decoded !== raw && (reads || secrets.length > 0);
  const outcome = sentBody(sent, text, decoded, decodedOnly, mime, secrets);
  // What was scanned is the UTF-8 reading; a client reads the bytes it gets in the charset the body declares.
  if (secrets.length > 0) {
    // The UTF-8 reading of what is sent, which withoutSecrets (or, binary, the Latin-1 scan) has looked through already.
    const scanned = outcome.replacement ? outcome.recorded?.text ?? null : text;
    refuseSecretInDeclaredCharsets(outcome.replacement ?? decoded, otherCharsets(declared), scanned, secrets);
  }
  return outcome;
}

/** The outcome for the text to send (masked, or as read; null when not text): the credential taken out of it. */
function sentBody(sent: string | null, text: string | null, decoded: Buffer, decodedOnly: boolean, mime: string, secrets: readonly string[]): BodyOutcome {
  if (sent === null) return { replacement: decodedOnly ? decoded : null, recorded: recordedAs(mime, decoded.length, null) };
  const clean = withoutSecrets(sent, secrets);
  if (clean === text && !decodedOnly) return { replacement: null, recorded: recordedAs(mime, decoded.length, text) };
  const replacement = Buffer.from(clean, 'utf8');
  return { replacement, recorded: { mime_type: mime, size: replacement.length, text: clean } };
}

/**
 * The bytes a client gets, decoded in each charset the body declares that
 * is not read as UTF-8 (otherCharsets): refused if that text holds the
 * credential in any spelling, since the gateway cannot re-encode a
 * replacement in it. A charset TextDecoder does not know (UTF-7, EBCDIC,
 * UTF-32, a misspelling) could hold it in any form the gateway cannot
 * look for, so a body in it is refused whatever it holds; an empty one
 * holds nothing in any charset. A reading that is the text already scanned
 * (`scanned`: an all-ASCII body labelled ISO-8859-1) is not scanned again.
 */
function refuseSecretInDeclaredCharsets(bytes: Buffer, charsets: readonly string[], scanned: string | null, secrets: readonly string[]): void {
  if (bytes.length === 0) return;
  for (const charset of charsets) {
    const name = charset.slice(0, 40);
    const decoder = decoderFor(charset);
    if (!decoder) throw new BodyRefused(`the body is declared in charset ${name}, which the gateway cannot decode to look for the target's credential`);
    // A UTF-16 body is read in the order its BOM gives, or without one big-endian (RFC 2781, Java), whatever the label.
    const readings = decoder.encoding.startsWith('utf-16') ? [new TextDecoder('utf-16le'), new TextDecoder('utf-16be')] : [decoder];
    for (const reading of readings) {
      const read = reading.decode(bytes);
      if (read !== scanned && holdsSecret(read, secrets)) throw new BodyRefused(`the body holds the target's credential when read in its declared charset ${name}`);
    }
  }
}

/**
 * The charsets the body declares that read its bytes otherwise than UTF-8
 * does, or that the gateway cannot decode. ASCII reads the same in most
 * (Latin-1, windows-1252, Shift_JIS: a servlet container's default label on
 * an all-ASCII JSON body), and is read as it is.
 */
function foreignCharsets(declared: readonly string[], bytes: Buffer, text: string | null): string[] {
  const other = otherCharsets(declared);
  if (other.length === 0) return other;
  return other.filter((charset) => text === null || decoderFor(charset)?.decode(bytes) !== text);
}

/** The body's text under the plan, or null when the plan leaves it as it is. */
function maskedText(text: string | null, mime: string, masks: FieldMasks, foreign: readonly string[]): string | null {
  const json = readJsonBody(text, mime, masks.hasFieldRules, foreign);
  if (json) {
    let changed = false;
    const documents = json.documents.map((document) => {
      const masked = masks.maskDocument(document);
      changed ||= masked.changed;
      return masked.value;
    });
    refuseMaskedMembersInStrings(documents, masks.memberNames);
    // What is not plain strict JSON is sent as the JSON that was masked: a client's parser could read it otherwise.
    return changed || json.mustRewrite() ? json.write(documents) : null;
  }
  if (text !== null && masks.hasFieldRules) refuseMaskedMembersInText(text, masks.memberNames);
  if (!masks.coversText) {
    // Field rules read JSON only, and the caller picks the representation (Accept: text/csv, ?format=xml): the same
    // records in any other shape would carry what the rules mask, unread. Only a `$` rule reads such a body.
    if (masks.hasFieldRules && (text === null || text.trim() !== '')) {
      throw new BodyRefused(`the policy masks fields of JSON responses and this body is not JSON (${mime.slice(0, 60) || 'no content-type'}), so it could hold them unmasked; a "$" rule would scan its text`);
    }
    return null;
  }
  // UTF-16 and UTF-32 of ASCII text are valid UTF-8 with NULs between the characters, where no detector finds anything.
  if (text === null || text.includes('\0')) throw new BodyRefused('the body is binary (or UTF-16 or UTF-32 text) and the policy masks the whole body');
  const { value, changed } = masks.maskText(text);
  return changed ? (value ?? '') : null;
}

/**
 * A body that is not UTF-8, read as Latin-1 (every byte a character, as a
 * client falling back would): refused if it holds the credential in any
 * spelling, or, under field rules, JSON or a member the rules mask. No
 * replacement is made in bytes the gateway cannot re-encode.
 */
function refuseReadableAsLatin1(bytes: Buffer, memberNames: ReadonlySet<string> | null, secrets: readonly string[]): void {
  const latin1 = bytes.toString('latin1');
  if (holdsSecret(latin1, secrets)) throw new BodyRefused('the binary body holds the target\'s credential');
  if (memberNames === null) return;
  if (/^\s*[[{]/.test(latin1)) throw new BodyRefused('the body reads as JSON in Latin-1, not UTF-8: the gateway masks JSON only as UTF-8');
  refuseMaskedMembersInText(latin1, memberNames);
}

/**
 * The credential in bytes no text replacement reaches: UTF-16 text, or a
 * gzip or zlib stream inside the body (compressed twice, or compressed with
 * no Content-Encoding saying so), a few levels deep. ASCII in UTF-16 or
 * UTF-32 is also found as text: holdsSecret reads it with the NULs dropped.
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
