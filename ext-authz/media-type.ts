/**
 * Content-Type, read as the clients behind the gateway read it. A header
 * sent twice reaches the gateway joined with ","; each value counts.
 * Parameters are read leniently, as `requests` or a browser would:
 * spaces around "=" and quotes around the value do not matter, case does
 * not, and every `charset` given is one a client may use. So is one
 * written as RFC 2231 says (`charset*=''utf-7`, `charset*0=utf;
 * charset*1=-7`), which Python's email.message (httpx, urllib) reads.
 */
interface MediaType {
  /** type/subtype, lowercase. */
  type: string;
  /** Every charset parameter, lowercase, unquoted. */
  charsets: string[];
}

function mediaTypes(contentType: string): MediaType[] {
  return contentType.split(',').map((value) => {
    const [type = '', ...parameters] = value.split(';');
    const charsets: string[] = [];
    /** RFC 2231 continuations (`charset*0`, `charset*1*`, …) by their number. */
    const pieces: Array<[number, string]> = [];
    for (const parameter of parameters) {
      const eq = parameter.indexOf('=');
      if (eq === -1) continue;
      const name = parameter.slice(0, eq).trim().toLowerCase();
      const raw = parameter.slice(eq + 1).trim().replace(/^"|"$/g, '');
      const extended = RFC_2231_NAME.exec(name);
      if (name === 'charset') charsets.push(raw);
      else if (extended && extended[1] === undefined) charsets.push(extendedValue(raw, true));
      else if (extended) pieces.push([Number(extended[1]), extendedValue(raw, extended[1] === '0')]);
    }
    if (pieces.length > 0) charsets.push(pieces.sort(([a], [b]) => a - b).map(([, piece]) => piece).join(''));
    return { type: type.trim().toLowerCase(), charsets: charsets.map((charset) => charset.trim().toLowerCase()) };
  });
}

/** `charset*` (group 1 undefined), or a piece of one, `charset*N` or `charset*N*` (group 1 the number). */
const RFC_2231_NAME = /^charset\*(?:(\d{1,3})\*?)?$/;

/**
 * A value as RFC 2231 writes it: percent-encoded, and, where it starts,
 * after `charset'language'`, which says how to read it, not what it is.
 * Read leniently: every piece is percent-decoded, encoded or not.
 */
function extendedValue(raw: string, first: boolean): string {
  const value = first ? raw.replace(/^[^']*'[^']*'/, '') : raw;
  return value.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/**
 * Whether a Content-Type says JSON: application/json, text/json, and the
 * +json types (problem+json, merge-patch+json, vnd.api+json). What
 * upstream frameworks parse as JSON, so what Check's parsed_body and
 * ext_proc's masking must read as JSON too.
 */
export function isJsonType(contentType: string): boolean {
  return mediaTypes(contentType).some(({ type }) =>
    type === 'application/json' || type === 'text/json' || ((type.startsWith('application/') || type.startsWith('text/')) && type.endsWith('+json')));
}

/** Every charset a Content-Type names, in whichever of its values. */
export function declaredCharsets(contentType: string): string[] {
  return mediaTypes(contentType).flatMap(({ charsets }) => charsets);
}

/** What of a TextDecoder the checks use: its canonical encoding name, and decoding. */
export interface Decoder {
  readonly encoding: string;
  decode(bytes: Uint8Array): string;
}

/** A decoder for a declared charset, by the labels TextDecoder (WHATWG) knows; null for one it does not (UTF-7, EBCDIC, UTF-32). */
export function decoderFor(charset: string): Decoder | null {
  try {
    return new TextDecoder(charset);
  } catch {
    return null;
  }
}
