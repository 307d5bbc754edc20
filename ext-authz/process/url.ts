/**
 * The request's URL for a recording, from Envoy's pseudo-headers, with the
 * values of query parameters that usually carry credentials replaced: a
 * recording must not hold a token because a client put it in the URL.
 */
import { withoutUrlCredentials } from '../../engine/masking/url-credentials.js';
import { header, type HeaderList } from './headers.js';

export function recordedUrl(headers: HeaderList): string {
  const scheme = header(headers, ':scheme') || 'http';
  const authority = header(headers, ':authority') || header(headers, 'host');
  return `${scheme}://${authority}${withoutUrlCredentials(header(headers, ':path') || '/')}`;
}

/** The path without its query, for one-line summaries. */
export function pathOnly(headers: HeaderList): string {
  const path = header(headers, ':path') || '/';
  const q = path.search(/[?#]/);
  return q === -1 ? path : path.slice(0, q);
}
