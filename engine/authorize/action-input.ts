import { createHash } from 'node:crypto';
import { canonicalJson } from '../audit/canonical.js';
import type { TargetConfig } from '../config/schema.js';
import { isCredentialHeader, URL_HEADERS } from '../masking/credential-headers.js';
import { withoutUrlCredentials } from '../masking/url-credentials.js';

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


/**
 * Headers a proxy or client sets anew on every request (ids, tracing, the
 * forwarding headers Envoy sets itself, timing) or that follow from the
 * body: an approval that bound them could never be used by a retry.
 * Forwarded, X-Forwarded-Host and -Prefix and X-Real-IP come from the
 * client and can change what an upstream does: bound; so does what the
 * client put in X-Forwarded-For before the address Envoy appended, and an
 * x-envoy-* header Envoy did not set itself (x-envoy-retry-on from a client
 * Envoy takes for internal would run an approved POST again). Every other
 * header is bound, because headers can change what a request does
 * (X-HTTP-Method-Override).
 */
const PER_REQUEST_HEADERS = /^(?::path|:method|:authority|:scheme|x-request-id|traceparent|tracestate|b3|x-b3-[a-z-]+|x-amzn-trace-id|x-cloud-trace-context|x-datadog-[a-z-]+|date|user-agent|content-length|x-forwarded-proto|x-envoy-(?:internal|external-address|auth-partial-body|downstream-service-cluster|downstream-service-node|decorator-operation))$/i;

/** X-Forwarded-For as the client sent it: the last address is the one Envoy appended (use_remote_address). */
function clientForwardedFor(value: unknown): string {
  if (typeof value !== 'string') return '';
  const last = value.lastIndexOf(',');
  return last === -1 ? '' : value.slice(0, last).trim();
}

/**
 * Why an approval could not bind the whole request, or null. Envoy sends
 * Check only the start of a body longer than with_request_body's
 * max_request_bytes, so an approval of it would let any tail through; a
 * body without Content-Length (chunked) may be cut at exactly the limit
 * with nothing saying so; and bytes that are not UTF-8 reach Check
 * replaced by U+FFFD, so other bytes would match the approval too (header
 * values likewise).
 */
export function unbindable(action: Record<string, unknown>, kind: TargetConfig['kind']): string | null {
  if (kind !== 'http') return null;
  const http = (action.attributes as { request?: { http?: { headers?: Record<string, unknown>; body?: unknown; rawBody?: unknown; raw_body?: unknown } } } | undefined)?.request?.http;
  const body = typeof http?.body === 'string' ? http.body : '';
  // Bytes (raw_body) are bound exactly, but a body of them can be cut at the limit all the same.
  const hasBody = body !== '' || [http?.rawBody, http?.raw_body].some((raw) => typeof raw === 'string' && raw !== '');
  const why = action.truncated_body === true ? 'is longer than the gateway reads (ext_authz with_request_body.max_request_bytes)'
    : hasBody && http?.headers?.['content-length'] === undefined ? 'has no Content-Length, so the gateway cannot tell it saw all of it'
      : body.includes('\uFFFD') ? 'is not UTF-8 text, which ext_authz passes on with its bytes replaced'
        : null;
  if (why !== null) return `the request body ${why}: an approval could not bind all of it; send the body with a Content-Length, within the limit`;
  // Header values reach Check as UTF-8 too: other bytes in one would bind as the same U+FFFD.
  const header = Object.entries(http?.headers ?? {}).find(([, value]) => typeof value === 'string' && value.includes('\uFFFD'));
  return header ? `the request header ${header[0]} is not UTF-8 text, which Check sees with its bytes replaced: an approval could not bind it` : null;
}

/**
 * The header the agent's token arrives in: the gateway takes it off before
 * the request goes upstream, and a ticket's retry carries a fresh token, so
 * an approval neither stores nor binds it.
 */
const AGENT_TOKEN_HEADER = 'authorization';

/**
 * The part of an action an approval binds to and stores: for HTTP, the
 * request itself (method, host, path with query, headers, body), without
 * what the gateway or Envoy adds per request (time, peer addresses, ids).
 *
 * Credentials the upstream receives (cookies, an API key header, a token or
 * password in the query) change what it does, so they are bound too; but an
 * approval record, its webhook and the API show the action, so they are
 * stored redacted, and bound through `withheld_sha256`, a SHA-256 of their
 * exact values. Unkeyed, because approvals outlive a process and are shared
 * by every gateway on the store: the digest confirms a value to someone who
 * already holds it, which for tokens and session cookies is no one else.
 */
export function approvableAction(action: Record<string, unknown>, kind: TargetConfig['kind']): Record<string, unknown> {
  if (kind !== 'http') return action;
  const attributes = action.attributes as { request?: { http?: Record<string, unknown> } };
  const http = attributes.request?.http ?? {};
  const headers = typeof http.headers === 'object' && http.headers !== null && !Array.isArray(http.headers) ? http.headers as Record<string, unknown> : {};
  const kept: Record<string, unknown> = {};
  const withheld: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (PER_REQUEST_HEADERS.test(name) || name.toLowerCase() === AGENT_TOKEN_HEADER) continue;
    if (name.toLowerCase() === 'x-forwarded-for') {
      const sent = clientForwardedFor(value);
      if (sent !== '') kept[name] = sent;
      continue;
    }
    const credential = isCredentialHeader(name, value);
    const shown = !credential && URL_HEADERS.has(name.toLowerCase()) && typeof value === 'string' ? withoutUrlCredentials(value) : value;
    if (credential || shown !== value) withheld[`header ${name.toLowerCase()}`] = value;
    if (!credential) kept[name] = shown;
  }
  let path = http.path;
  if (typeof path === 'string') {
    const shown = withoutUrlCredentials(path);
    if (shown !== path) withheld.path = path;
    path = shown;
  }
  const bound: Record<string, unknown> = { method: http.method, host: http.host, path, headers: kept };
  for (const body of ['body', 'rawBody', 'raw_body']) if (http[body] !== undefined) bound[body] = http[body];
  if (Object.keys(withheld).length > 0) bound.withheld_sha256 = createHash('sha256').update(canonicalJson(withheld)).digest('hex');
  return { attributes: { request: { http: bound } } };
}
