/**
 * What Envoy's HTTP connection manager makes of an HTTP/1.1 request before
 * any filter runs: the header map with its pseudo-headers, the headers the
 * manager adds, and the body buffered for ext_authz's with_request_body.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { fromRawHeaders, stripHopByHop, type HeaderMap } from './header-map.js';

/**
 * The request headers as Envoy's filters see them:
 * - HTTP/1.1's Host becomes `:authority`; `:method`, `:path` (with the query)
 *   and `:scheme` are added, first, as the HTTP/1 codec and the connection
 *   manager put them;
 * - connection-level headers are gone;
 * - `x-forwarded-for` gets the peer's address appended and
 *   `x-forwarded-proto` is set, as with `use_remote_address: true` (the
 *   stand-in is the edge: the agent connects to it directly);
 * - the client is external (envoy.yaml's `internal_address_config` names
 *   no client): the `x-envoy-*` headers it sent are dropped, and its
 *   `x-request-id` is replaced with a UUID v4 (`generate_request_id`,
 *   `preserve_external_request_id: false`).
 */
export function requestHeaders(req: IncomingMessage): HeaderMap {
  const received = fromRawHeaders(req.rawHeaders);
  stripHopByHop(received);
  const headers = fromRawHeaders([]);
  headers.add(':authority', received.get('host') ?? '');
  headers.add(':path', req.url ?? '/');
  headers.add(':method', req.method ?? 'GET');
  headers.add(':scheme', 'http');
  for (const [name, value] of received) if (name !== 'host' && !name.startsWith('x-envoy-')) headers.add(name, value);

  const peer = unmapped(req.socket.remoteAddress ?? '');
  const forwarded = headers.getAll('x-forwarded-for').join(', ');
  headers.set('x-forwarded-for', forwarded ? `${forwarded}, ${peer}` : peer);
  headers.set('x-forwarded-proto', 'http');
  headers.set('x-request-id', randomUUID());
  return headers;
}

/** Dot segments as Envoy's URL canonicaliser reads them, percent-encoded dots included. */
const DOT = /^(\.|%2e)$/i;
const DOT_DOT = /^(\.|%2e){2}$/i;
/** A dot segment with path parameters ("..;", "..;x=1"): Servlet containers (Tomcat, Jetty) resolve it as "..". */
const DOT_WITH_PARAMETERS = /^(\.|%2e){1,2}(;|%3b)/i;

/**
 * A request path as Envoy's connection manager leaves it under envoy.yaml's
 * normalize_path, merge_slashes and path_with_escaped_slashes_action
 * REJECT_REQUEST: backslashes read as slashes, "." and ".." segments
 * resolved (RFC 3986 §5.2.4), repeated slashes merged; null for an escaped
 * slash or backslash (%2F, %5C), which Envoy refuses, and for a dot segment
 * with path parameters ("/people/..;/admin"), which Envoy passes as it is
 * and a Servlet upstream resolves (envoy/README.md says how to refuse it). A fragment is cut
 * off, as Envoy's connection manager does by default: no client sends one,
 * and servers that kept "#&id=8" in the query would read what Check and an
 * approval never saw. The query is left as it is. Filters and the upstream
 * see the same path, so a policy on `parsed_path` cannot be walked around
 * with `/people/../admin`.
 */
export function normalizedPath(requestTarget: string): string | null {
  if (!requestTarget.startsWith('/')) return requestTarget; // absolute-form or "*": no route takes it
  const fragment = requestTarget.indexOf('#');
  const target = fragment === -1 ? requestTarget : requestTarget.slice(0, fragment);
  const q = target.indexOf('?');
  const path = (q === -1 ? target : target.slice(0, q)).replaceAll('\\', '/');
  if (/%(2f|5c)/i.test(path)) return null;
  if (path.split('/').some((segment) => DOT_WITH_PARAMETERS.test(segment))) return null;
  const segments: string[] = [];
  const parts = path.split('/').slice(1);
  parts.forEach((segment, i) => {
    const last = i === parts.length - 1;
    if (DOT_DOT.test(segment)) segments.pop();
    if (DOT.test(segment) || DOT_DOT.test(segment)) {
      if (last) segments.push('');
      return;
    }
    if (segment !== '' || last) segments.push(segment);
  });
  return `/${segments.join('/')}${q === -1 ? '' : target.slice(q)}`;
}

/** "::ffff:127.0.0.1" (an IPv4 peer on a dual-stack socket) is reported as Envoy reports it: 127.0.0.1. */
export function unmapped(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export interface BufferedBody {
  /** Everything read so far (Envoy may hold a little more than max_request_bytes: reads come in chunks). */
  bytes: Buffer;
  /** The client has sent the whole body. */
  ended: boolean;
}

/** Whether an HTTP/1.1 request carries a body at all (RFC 9112 §6.3). */
export function hasBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && length !== '0';
}

/**
 * ext_authz's with_request_body with allow_partial_message: buffer until the
 * body ends or `max` bytes have arrived, whichever is first, then pause the
 * client; the rest flows on to the upstream once the request is allowed.
 */
export function bufferBody(req: IncomingMessage, max: number): Promise<BufferedBody> {
  if (!hasBody(req)) return Promise.resolve({ bytes: Buffer.alloc(0), ended: true });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (ended: boolean): void => {
      req.off('data', onData).off('end', onEnd).off('error', onError);
      if (!ended) req.pause();
      resolve({ bytes: Buffer.concat(chunks, size), ended });
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= max) done(false);
    };
    const onEnd = (): void => done(true);
    const onError = (err: Error): void => {
      req.off('data', onData).off('end', onEnd);
      reject(err);
    };
    if (max === 0) {
      resolve({ bytes: Buffer.alloc(0), ended: false });
      return;
    }
    req.on('data', onData).on('end', onEnd).on('error', onError);
  });
}
