/**
 * A response as the stand-in holds it before sending: status, header map and
 * the whole body (ext_proc's BUFFERED mode buffers it anyway), plus Envoy's
 * "response code details" saying which stage produced it, for the access log.
 */
import type { ServerResponse } from 'node:http';
import { HeaderMap } from './header-map.js';

export interface HttpResponse {
  status: number;
  headers: HeaderMap;
  body: Buffer;
  /** Envoy's %RESPONSE_CODE_DETAILS%: via_upstream, ext_authz_denied, ext_proc_error_…, … */
  details: string;
}

/**
 * A reply Envoy makes itself (sendLocalReply): the body, if any, as
 * text/plain. The caller's headers are applied on top of these defaults.
 */
export function localReply(status: number, body: string | Buffer, details: string): HttpResponse {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  const headers = new HeaderMap();
  if (bytes.length > 0) headers.set('content-type', 'text/plain');
  return { status, headers, body: bytes, details };
}

/** Statuses whose responses never have a body (RFC 9110 §6.4.1). */
const BODYLESS = new Set([204, 304]);

/**
 * Writes the response with a content-length that matches the body sent: the
 * body may have been masked or replaced since the upstream framed it. A HEAD
 * answer keeps the upstream's length (it describes the GET's body) and sends
 * no body.
 */
export function writeResponse(res: ServerResponse, response: HttpResponse, method: string): number {
  const headers = response.headers.toNodeHeaders();
  delete headers['transfer-encoding'];
  // The body goes out whole with a content-length, so no trailers follow it (Node refuses the header then).
  delete headers.trailer;
  const noBody = method === 'HEAD' || BODYLESS.has(response.status);
  if (!noBody) headers['content-length'] = String(response.body.length);
  else if (BODYLESS.has(response.status)) delete headers['content-length'];
  res.writeHead(response.status, headers);
  res.end(noBody ? undefined : response.body);
  return noBody ? 0 : response.body.length;
}
