/**
 * The request's URL for a recording, from Envoy's pseudo-headers: no
 * userinfo in the authority (a token before "@"), the values of query
 * parameters that usually carry credentials replaced, and, when the
 * exchange's rules have `$` detector rules, every query name and value
 * scanned by them as the request body is: a recording must not hold a token
 * or a masked value because a client put it in the URL. The path itself is
 * kept (but for JWTs): it is what replay matches to the decision's audit event.
 */
import { authorityWithoutCredentials, withoutUrlCredentials } from '../../engine/masking/url-credentials.js';
import { header, type HeaderList } from './headers.js';

/** Masks a piece of text the agent sent; null when a "null" rule removes it. */
export type TextScan = (text: string) => string | null;

export function recordedUrl(headers: HeaderList, scan?: TextScan): string {
  const scheme = header(headers, ':scheme') || 'http';
  const authority = authorityWithoutCredentials(header(headers, ':authority') || header(headers, 'host'));
  const path = withoutUrlCredentials(header(headers, ':path') || '/');
  return `${scheme}://${authority}${scan ? withQueryScanned(path, scan) : path}`;
}

/** The path without its query, for one-line summaries. */
export function pathOnly(headers: HeaderList): string {
  const path = header(headers, ':path') || '/';
  const q = path.search(/[?#]/);
  return q === -1 ? path : path.slice(0, q);
}

/** A path (without a fragment) with each query name and value scanned, decoded as a server reads it; the rest byte for byte. */
function withQueryScanned(path: string, scan: TextScan): string {
  const q = path.indexOf('?');
  if (q === -1) return path;
  const query = path.slice(q + 1).split(/([&;])/).map((pair, i) => {
    if (i % 2 === 1 || pair === '') return pair;
    const eq = pair.indexOf('=');
    return eq === -1 ? scannedPart(pair, scan) : `${scannedPart(pair.slice(0, eq), scan)}=${scannedPart(pair.slice(eq + 1), scan)}`;
  });
  return `${path.slice(0, q)}?${query.join('')}`;
}

function scannedPart(raw: string, scan: TextScan): string {
  const text = decoded(raw);
  const masked = scan(text);
  if (masked === text) return raw;
  return masked === null ? '' : encodeURIComponent(masked).replace(/%(?:40|5B|5D|3A|2C)/g, decodeURIComponent);
}

function decoded(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}
