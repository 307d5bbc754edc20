import type { TargetConfig } from '../config/schema.js';

/** Input keys only the gateway may set: a caller that could set them could vouch for itself. */
const GATEWAY_OWNED = ['identity', 'target', 'session', 'now_ns', 'approval'] as const;

/** The key that carries each protocol's request (design brief, "Input"). */
const PROTOCOL_KEY: Record<TargetConfig['kind'], string> = {
  postgres: 'postgres',
  ssh: 'ssh',
  // The OPA-Envoy input document: attributes, parsed_path, parsed_query, parsed_body.
  http: 'attributes',
};

export type ActionCheck = { ok: true; action: Record<string, unknown> } | { ok: false; problem: string };

/** Checks that `action` is the protocol part of an input for a target of `kind`. */
export function checkAction(action: unknown, kind: TargetConfig['kind']): ActionCheck {
  if (typeof action !== 'object' || action === null || Array.isArray(action)) {
    return { ok: false, problem: 'the action must be a JSON object, e.g. {"postgres": {...}}' };
  }
  const fields = action as Record<string, unknown>;
  const owned = GATEWAY_OWNED.filter((key) => key in fields);
  if (owned.length > 0) {
    return { ok: false, problem: `the action must not set ${owned.join(', ')}: the gateway sets ${owned.length > 1 ? 'them' : 'it'} from verified facts` };
  }
  const key = PROTOCOL_KEY[kind];
  const request = fields[key];
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    return { ok: false, problem: `a ${kind} target's action needs a "${key}" object` };
  }
  return { ok: true, action: fields };
}

/** Headers that carry a caller's credentials: they differ on every retry and must never be stored. */
const CREDENTIAL_HEADERS = /^(?:authorization|proxy-authorization|cookie|x-api-key)$/i;

/**
 * Headers a proxy or client sets anew on every request (ids, tracing,
 * forwarding, timing) or that follow from the body: an approval that bound
 * them could never be used by a retry. Every other header is bound, because
 * headers can change what a request does (X-HTTP-Method-Override).
 */
const PER_REQUEST_HEADERS = /^(?::path|:method|:authority|:scheme|x-request-id|traceparent|tracestate|b3|x-b3-[a-z-]+|x-amzn-trace-id|x-cloud-trace-context|x-datadog-[a-z-]+|date|user-agent|content-length|forwarded|x-forwarded-[a-z-]+|x-real-ip|x-envoy-[a-z-]+)$/i;

/**
 * Why an approval could not bind the whole request, or null. Envoy sends
 * Check only the start of a body longer than with_request_body's
 * max_request_bytes, so an approval of it would let any tail through.
 */
export function unbindable(action: Record<string, unknown>, kind: TargetConfig['kind']): string | null {
  if (kind !== 'http' || action.truncated_body !== true) return null;
  return 'the request body is longer than the gateway reads (ext_authz with_request_body.max_request_bytes), so an approval could not bind all of it; send a smaller body, or raise the limit';
}

/**
 * The part of an action an approval binds to and stores: for HTTP, the
 * request itself (method, host, path with query, headers, body), without
 * what the gateway or Envoy adds per request (time, peer addresses, ids)
 * and without the caller's credential headers: an approval record, its
 * webhook and the API show the action, and a ticket's retry carries a fresh
 * token.
 */
export function approvableAction(action: Record<string, unknown>, kind: TargetConfig['kind']): Record<string, unknown> {
  if (kind !== 'http') return action;
  const attributes = action.attributes as { request?: { http?: Record<string, unknown> } };
  const http = attributes.request?.http ?? {};
  const headers = typeof http.headers === 'object' && http.headers !== null && !Array.isArray(http.headers) ? http.headers : {};
  const kept = Object.fromEntries(Object.entries(headers).filter(([name]) => !CREDENTIAL_HEADERS.test(name) && !PER_REQUEST_HEADERS.test(name)));
  const bound: Record<string, unknown> = { method: http.method, host: http.host, path: http.path, headers: kept };
  for (const body of ['body', 'rawBody', 'raw_body']) if (http[body] !== undefined) bound[body] = http[body];
  return { attributes: { request: { http: bound } } };
}
