/**
 * Envoy's router for the stand-in: sends the (mutated) request to the
 * route's upstream and reads the whole response, as ext_proc's BUFFERED
 * response body mode makes Envoy do. Failures become Envoy's local replies.
 * The upstream's trailers (HTTP/1.1 chunked) are not kept: Envoy has
 * ext_proc screen them (response_trailer_mode SEND), the stand-in drops
 * them, so none reaches the client unscreened.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import type { BufferedBody } from './downstream.js';
import { fromRawHeaders, stripHopByHop, type HeaderMap } from './header-map.js';
import { localReply, type HttpResponse } from './http-response.js';

/** Envoy's default route timeout. */
const ROUTE_TIMEOUT_MS = 15_000;

export interface UpstreamRequest {
  upstream: URL;
  headers: HeaderMap;
  /** The body as ext_authz buffered it, and the rest still in the client's stream. */
  body: { buffered: BufferedBody; rest: Readable } | { replaced: Buffer };
}

export class Router {
  private readonly http = new HttpAgent({ keepAlive: true });
  private readonly https = new HttpsAgent({ keepAlive: true });

  /** `maxResponseBytes`: Envoy's buffer limit (per_connection_buffer_limit_bytes, 1 MiB by default). */
  constructor(private readonly maxResponseBytes: number) {}

  forward(request: UpstreamRequest): Promise<HttpResponse> {
    const { upstream, headers } = request;
    const secure = upstream.protocol === 'https:';
    const outgoing = headers.toNodeHeaders();
    // auto_host_rewrite: the upstream is addressed by its own name (an API behind TLS or a virtual host needs it).
    outgoing['host'] = upstream.host;
    frame(outgoing, request.body);
    const base = upstream.pathname.replace(/\/$/, '');
    return new Promise((resolve) => {
      let settled = false;
      const settle = (response: HttpResponse): void => {
        if (settled) return;
        settled = true;
        resolve(response);
      };
      const req = (secure ? httpsRequest : httpRequest)({
        protocol: upstream.protocol,
        hostname: upstream.hostname.replace(/^\[|\]$/g, ''),
        port: upstream.port || (secure ? 443 : 80),
        method: headers.get(':method'),
        path: base + (headers.get(':path') ?? '/'),
        headers: outgoing,
        agent: secure ? this.https : this.http,
        timeout: ROUTE_TIMEOUT_MS,
      });
      req.on('timeout', () => {
        req.destroy();
        settle(localReply(504, 'upstream request timeout', 'upstream_response_timeout'));
      });
      req.on('error', () => settle(localReply(503, 'upstream connect error or disconnect/reset before headers. reset reason: connection failure', 'upstream_reset_before_response_started{connection_failure}')));
      req.on('response', (res) => void this.read(res).then(settle, () => settle(localReply(503, 'upstream connect error or disconnect/reset before headers. reset reason: connection termination', 'upstream_reset_after_response_started'))));
      // The stand-in relays no upgraded connection (a 101): without this, Node drops the socket and nothing answers.
      req.on('upgrade', (_res, socket) => {
        socket.destroy();
        settle(localReply(502, 'upstream answered with a protocol upgrade the stand-in does not relay', 'upstream_upgrade_refused'));
      });

      if ('replaced' in request.body) {
        req.end(request.body.replaced);
      } else if (request.body.buffered.ended) {
        req.end(request.body.buffered.bytes);
      } else {
        req.write(request.body.buffered.bytes);
        request.body.rest.pipe(req);
      }
    });
  }

  private async read(res: IncomingMessage): Promise<HttpResponse> {
    const headers = fromRawHeaders(res.rawHeaders);
    stripHopByHop(headers);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > this.maxResponseBytes) {
        res.destroy();
        // A buffered response over the limit, before any header went out: Envoy's 500 (rs_too_large).
        return localReply(500, 'Internal Server Error', 'response_payload_too_large');
      }
      chunks.push(chunk);
    }
    return { status: res.statusCode ?? 502, headers, body: Buffer.concat(chunks, size), details: 'via_upstream' };
  }

  close(): void {
    this.http.destroy();
    this.https.destroy();
  }
}

/**
 * Says how long the body is, always, as Envoy does: the client's own
 * framing headers are hop-by-hop and gone (a `Connection: content-length`
 * takes Content-Length with them), and Node frames no body of a GET,
 * OPTIONS or DELETE unless told, so its bytes would reach the upstream as
 * the start of another request, sent with the gateway's credential.
 */
function frame(outgoing: OutgoingHttpHeaders, body: UpstreamRequest['body']): void {
  delete outgoing['transfer-encoding'];
  // Request trailers are not forwarded, so none is announced (Node refuses a Trailer header on a sized body).
  delete outgoing.trailer;
  if ('replaced' in body || body.buffered.ended) {
    const length = 'replaced' in body ? body.replaced.length : body.buffered.bytes.length;
    if (length > 0 || outgoing['content-length'] !== undefined) outgoing['content-length'] = String(length);
    return;
  }
  delete outgoing['content-length'];
  outgoing['transfer-encoding'] = 'chunked';
}
