/**
 * What Envoy's ext_authz HTTP filter does with Check's answer
 * (source/extensions/filters/http/ext_authz/ext_authz.cc, onComplete).
 */
import type { CheckOutcome } from './ext-authz-client.js';
import type { HeaderValueOption, StructMessage } from './envoy-types.js';
import type { HeaderMap } from './header-map.js';
import { applyHeaderOptions, EXT_AUTHZ_RULES, removeHeaders } from './header-mutation.js';
import { localReply, type HttpResponse } from './http-response.js';

export type AuthzResult =
  | { allowed: true; responseHeadersToAdd: HeaderValueOption[]; dynamicMetadata: StructMessage | null }
  | { allowed: false; reply: HttpResponse };

/**
 * OK: the header options are applied, then headers_to_remove (so a header
 * both set and removed ends up removed: a credential header must be set,
 * never also listed for removal), then the query parameters.
 * Denied: the service's status (403 by default), headers and body, as a
 * local reply. Error: 403 with no body (status_on_error), nothing upstream.
 */
export function applyCheckOutcome(outcome: CheckOutcome, headers: HeaderMap): AuthzResult {
  switch (outcome.kind) {
    case 'error':
      return { allowed: false, reply: localReply(403, '', 'ext_authz_error') };
    case 'denied': {
      const reply = localReply(outcome.status, outcome.body, 'ext_authz_denied');
      applyHeaderOptions(reply.headers, outcome.headers, EXT_AUTHZ_RULES);
      return { allowed: false, reply };
    }
    case 'ok': {
      applyHeaderOptions(headers, outcome.headers, EXT_AUTHZ_RULES);
      removeHeaders(headers, outcome.headersToRemove, EXT_AUTHZ_RULES);
      const path = headers.get(':path') ?? '/';
      headers.set(':path', mutateQuery(path, outcome.queryParametersToSet, outcome.queryParametersToRemove));
      return { allowed: true, responseHeadersToAdd: outcome.responseHeadersToAdd, dynamicMetadata: outcome.dynamicMetadata };
    }
  }
}

/**
 * query_parameters_to_set overwrites every occurrence of its key (or adds
 * it), then query_parameters_to_remove drops keys; keys compare as they are
 * written. Untouched parameters keep their exact bytes.
 */
export function mutateQuery(path: string, set: ReadonlyArray<{ key: string; value: string }>, remove: readonly string[]): string {
  if (set.length === 0 && remove.length === 0) return path;
  const cut = path.indexOf('?');
  const base = cut < 0 ? path : path.slice(0, cut);
  let params = cut < 0 || cut === path.length - 1 ? [] : path.slice(cut + 1).split('&');
  const keyOf = (param: string): string => param.split('=', 1)[0] ?? '';
  for (const { key, value } of set) {
    params = [...params.filter((p) => keyOf(p) !== key), `${key}=${value}`];
  }
  params = params.filter((p) => !remove.includes(keyOf(p)));
  return params.length > 0 ? `${base}?${params.join('&')}` : base;
}
