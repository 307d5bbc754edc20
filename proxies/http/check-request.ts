/**
 * The CheckRequest Envoy's ext_authz HTTP filter sends
 * (source/extensions/filters/common/ext_authz/check_request_utils.cc),
 * field for field, for the stand-in's one configuration: no TLS, no
 * metadata_context_namespaces, per-route context_extensions {target},
 * with_request_body {max_request_bytes, allow_partial_message: true,
 * pack_as_bytes: false}.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { HeaderMap } from './header-map.js';
import { unmapped, type BufferedBody } from './downstream.js';

/** The header Envoy adds to the Check's headers when it sends a body; a client's own is dropped. */
export const PARTIAL_BODY_HEADER = 'x-envoy-auth-partial-body';

export interface CheckRequestInput {
  req: IncomingMessage;
  headers: HeaderMap;
  body: BufferedBody | null;
  maxRequestBytes: number;
  target: string;
  startedAt: Date;
  /** Envoy's stream id: AttributeContext.HttpRequest.id. */
  streamId: string;
}

/**
 * Envoy's stream id, a random uint64 in decimal. HttpRequest.id is this, not
 * x-request-id: the request id travels in the headers.
 */
export function newStreamId(): string {
  return randomBytes(8).readBigUInt64BE().toString();
}

export function buildCheckRequest(input: CheckRequestInput): Record<string, unknown> {
  const { req, headers, body } = input;
  const http: Record<string, unknown> = {
    id: input.streamId,
    method: headers.get(':method'),
    headers: checkHeaders(headers, body, input.maxRequestBytes),
    path: headers.get(':path'),
    host: headers.get(':authority'),
    scheme: headers.get(':scheme'),
    // StreamInfo::bytesReceived() when the filter calls out: the body bytes buffered so far.
    size: String(body?.bytes.length ?? 0),
    protocol: 'HTTP/1.1',
    ...bodyFields(body, input.maxRequestBytes),
  };
  const millis = input.startedAt.getTime();
  return {
    attributes: {
      source: { address: socketAddress(req.socket.remoteAddress, req.socket.remotePort) },
      destination: { address: socketAddress(req.socket.localAddress, req.socket.localPort) },
      request: {
        time: { seconds: String(Math.floor(millis / 1000)), nanos: (millis % 1000) * 1_000_000 },
        http,
      },
      context_extensions: { target: input.target },
    },
  };
}

function socketAddress(address: string | undefined, port: number | undefined): Record<string, unknown> {
  return { socket_address: { address: unmapped(address ?? ''), port_value: port ?? 0 } };
}

/**
 * Every header of the map, pseudo-headers included, one value per name
 * (repeats joined with ","), lower-case; a client's x-envoy-auth-partial-body
 * is skipped and Envoy's own is added when a body is sent.
 */
function checkHeaders(headers: HeaderMap, body: BufferedBody | null, max: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers.merged())) {
    // Header bytes travel in a proto string: node holds them as latin1, Envoy sends them as they came.
    if (name !== PARTIAL_BODY_HEADER) out[name] = Buffer.from(value, 'latin1').toString('utf8');
  }
  if (sendsBody(body, max)) out[PARTIAL_BODY_HEADER] = body.bytes.length > max ? 'true' : 'false';
  return out;
}

/** Envoy sends a body only when buffering is on and the request has one. */
function sendsBody(body: BufferedBody | null, max: number): body is BufferedBody {
  return max > 0 && body !== null && (body.bytes.length > 0 || !body.ended);
}

/**
 * pack_as_bytes: false puts the body in `body`, a proto string. Bytes that
 * are not UTF-8 go in `raw_body` instead (a deviation: Envoy would put them
 * in the string field, where Node's protobuf decoder turns them into U+FFFD
 * and the policy reads something else than was sent). A partial body cut
 * inside a character loses that character's first bytes: it is partial anyway.
 */
function bodyFields(body: BufferedBody | null, max: number): Record<string, unknown> {
  if (!sendsBody(body, max)) return {};
  const bytes = body.bytes.subarray(0, max);
  const partial = body.bytes.length > max;
  try {
    // ignoreBOM: a BOM is part of what the upstream gets; policy and approvals must see it too.
    return { body: new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes, { stream: partial }) };
  } catch {
    return { raw_body: Buffer.from(bytes) };
  }
}
