/**
 * Charsets a body names for itself, which clients decode by as they do by
 * Content-Type's: a UTF-7 signature (`+/v8`), which Python requests'
 * `r.text` (charset_normalizer) decodes by when the header names no
 * charset; an XML declaration's `encoding`; and an HTML `<meta charset>` or
 * `<meta http-equiv=Content-Type content="…; charset=…">`, which
 * BeautifulSoup and lxml decode by. A body that names UTF-7 reads as plain
 * ASCII to the gateway (`ada+AEA-example.com`) and as `ada@example.com` to
 * such a client, so what it names counts as declared.
 *
 * Read leniently, as those readers are: the signature after whitespace,
 * the declaration after whitespace or a byte-order mark, and every meta
 * tag in the body, however long, not only the first in its first KB
 * (BeautifulSoup reads up to 5% of a long document). Linear in the body's
 * length.
 */

/** UTF-7's signature: `+/v` then 8, 9, + or / (RFC 2152). */
const UTF7_SIGNATURE = /^\s*\+\/v[89+/]/;
const XML_DECLARATION = /^(?:\uFEFF|\u00EF\u00BB\u00BF)?\s*<\?[^>]{0,1024}?encoding\s*=\s*["']?([^"'\s?>]{1,64})/i;
const META_TAG = /<meta/gi;
const META_CHARSET = /charset\s*=\s*["']?\s*([^\s"'/;>]{1,64})/i;

export function charsetsDeclaredInBody(bytes: Buffer): string[] {
  // Every byte a character: the markup that names a charset is ASCII in every charset that can name one so.
  const text = bytes.toString('latin1');
  const charsets: string[] = [];
  if (UTF7_SIGNATURE.test(text.slice(0, 1024))) charsets.push('utf-7');
  const xml = XML_DECLARATION.exec(text.slice(0, 2048));
  if (xml) charsets.push(xml[1]!);
  charsets.push(...metaCharsets(text));
  return charsets.map((charset) => charset.toLowerCase());
}

function metaCharsets(text: string): string[] {
  const found: string[] = [];
  const tags = new RegExp(META_TAG.source, META_TAG.flags);
  for (let tag = tags.exec(text); tag !== null; tag = tags.exec(text)) {
    const end = text.indexOf('>', tag.index);
    // No tag ends after here: no later meta tag can either.
    if (end === -1) break;
    const charset = META_CHARSET.exec(text.slice(tag.index, end));
    if (charset) found.push(charset[1]!);
    // On from the tag's end, not its start: `<meta<meta<meta…>` is read once, not once per `<meta`, and however
    // long a tag, its text is read once.
    tags.lastIndex = end;
  }
  return found;
}
