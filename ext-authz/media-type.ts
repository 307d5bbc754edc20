/**
 * Content-Type, read as the clients behind the gateway read it. A header
 * sent twice reaches the gateway joined with ","; each value counts.
 * Parameters are read leniently, as `requests` or a browser would:
 * spaces around "=" and quotes around the value do not matter, case does
 * not, and every `charset` given is one a client may use.
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
    const charsets = parameters.flatMap((parameter) => {
      const eq = parameter.indexOf('=');
      if (eq === -1 || parameter.slice(0, eq).trim().toLowerCase() !== 'charset') return [];
      return [parameter.slice(eq + 1).trim().replace(/^"|"$/g, '').trim().toLowerCase()];
    });
    return { type: type.trim().toLowerCase(), charsets };
  });
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
