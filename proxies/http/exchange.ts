/**
 * One request through the stand-in, as it goes through Envoy's filter chain:
 * ext_authz (Check) → ext_proc request headers → router → ext_proc response
 * headers and body → ext_authz's response_headers_to_add. Each stage either
 * passes the request on or ends it with a reply.
 */
import type { IncomingMessage } from 'node:http';
import { buildCheckRequest, newStreamId } from './check-request.js';
import { bufferBody, normalizedPath, requestHeaders } from './downstream.js';
import type { ExtAuthzClient } from './ext-authz-client.js';
import { applyCheckOutcome } from './ext-authz-filter.js';
import type { ExtProcClient } from './ext-proc-client.js';
import { ExtProcFilter } from './ext-proc-filter.js';
import type { HeaderMap } from './header-map.js';
import { applyHeaderOptions, EXT_AUTHZ_RULES } from './header-mutation.js';
import { localReply, type HttpResponse } from './http-response.js';
import type { Router } from './router.js';
import type { RouteTable } from './routes.js';

export interface Stages {
  routes: RouteTable;
  extAuthz: ExtAuthzClient;
  extProc: ExtProcClient;
  router: Router;
  maxRequestBytes: number;
}

export interface ExchangeResult {
  response: HttpResponse;
  /** The request as the stand-in saw it, for the access log (headers after the filters). */
  headers: HeaderMap;
  target: string | null;
  bytesReceived: number;
  checkMs: number | null;
  upstreamMs: number | null;
}

/** `downstreamGone` fires when the client disconnects before its answer: nothing more is done for it. */
export async function runExchange(req: IncomingMessage, stages: Stages, downstreamGone: AbortSignal): Promise<ExchangeResult> {
  const startedAt = new Date();
  const headers = requestHeaders(req);
  const result: ExchangeResult = { response: localReply(404, '', 'route_not_found'), headers, target: null, bytesReceived: 0, checkMs: null, upstreamMs: null };
  // envoy.yaml: headers_with_underscores_action: REJECT_REQUEST.
  if ([...headers].some(([name]) => name.includes('_'))) {
    result.response = localReply(400, '', 'requested_header_name_has_underscores');
    return result;
  }
  // envoy.yaml: normalize_path, merge_slashes, path_with_escaped_slashes_action: REJECT_REQUEST.
  const path = normalizedPath(headers.get(':path') ?? '/');
  if (path === null) {
    result.response = localReply(400, '', 'path_normalization_failed');
    return result;
  }
  headers.set(':path', path);

  const route = stages.routes.match(headers.get(':path') ?? '/');
  if (!route) return result;
  result.target = route.target;

  const body = await bufferBody(req, stages.maxRequestBytes);
  result.bytesReceived = body.bytes.length;
  const checkStarted = performance.now();
  const outcome = await stages.extAuthz.check(buildCheckRequest({
    req, headers, body, maxRequestBytes: stages.maxRequestBytes, target: route.target, startedAt, streamId: newStreamId(),
  }), downstreamGone);
  result.checkMs = performance.now() - checkStarted;
  if (downstreamGone.aborted) {
    // Envoy resets the stream: an allow that arrives now (a hold approved meanwhile) runs nothing.
    result.response = localReply(499, '', 'downstream_remote_disconnect');
    return result;
  }
  const authz = applyCheckOutcome(outcome, headers);
  if (!authz.allowed) {
    result.response = authz.reply;
    return result;
  }

  const stream = stages.extProc.open();
  try {
    const extProc = new ExtProcFilter(stream, authz.dynamicMetadata);
    let response: HttpResponse;
    const onRequest = await extProc.requestHeaders(headers, body.ended && body.bytes.length === 0);
    if (onRequest.kind === 'reply') {
      response = onRequest.reply;
    } else if (downstreamGone.aborted) {
      response = localReply(499, '', 'downstream_remote_disconnect');
    } else {
      const upstreamStarted = performance.now();
      const upstream = await stages.router.forward({
        upstream: route.upstream,
        headers,
        body: onRequest.replacedBody ? { replaced: onRequest.replacedBody } : { buffered: body, rest: req },
      });
      result.upstreamMs = performance.now() - upstreamStarted;
      response = await extProc.response(upstream);
    }
    // Encoding runs the filters in reverse: ext_authz adds its response headers last.
    applyHeaderOptions(response.headers, authz.responseHeadersToAdd, EXT_AUTHZ_RULES);
    result.response = response;
    return result;
  } finally {
    stream.close();
  }
}
