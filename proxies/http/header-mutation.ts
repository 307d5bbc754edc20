/**
 * How Envoy applies the header instructions ext_authz and ext_proc send back
 * (envoy.config.core.v3.HeaderValueOption, ext_proc's HeaderMutation).
 */
import type { HeaderMap } from './header-map.js';
import type { HeaderMutation, HeaderValue, HeaderValueOption } from './envoy-types.js';

type AppendMode = 'append' | 'add_if_absent' | 'overwrite_or_add' | 'overwrite_if_exists';

/**
 * `append` (a BoolValue) wins when present. Otherwise `append_action`; but its
 * default, APPEND_IF_EXISTS_OR_ADD, is 0, which proto3 does not put on the
 * wire, so "unset" and "APPEND_IF_EXISTS_OR_ADD" arrive alike. In
 * CheckResponse and ProcessingResponse Envoy documents `append` as defaulting
 * to false (base.proto, HeaderValueOption.append), i.e. overwrite: that is
 * what an option naming neither gets. A server that wants to append says
 * `append: true`.
 */
function appendModeOf(option: HeaderValueOption): AppendMode {
  if (option.append !== undefined && option.append !== null) return option.append.value === true ? 'append' : 'overwrite_or_add';
  switch (option.append_action) {
    case 'ADD_IF_ABSENT': case 1: return 'add_if_absent';
    case 'OVERWRITE_IF_EXISTS': case 3: return 'overwrite_if_exists';
    default: return 'overwrite_or_add';
  }
}

/** A HeaderValue's bytes as node:http holds header values (latin1, one char per byte). */
export function headerValueText(header: HeaderValue): string {
  if (header.raw_value !== undefined && header.raw_value !== null && header.raw_value.length > 0) return Buffer.from(header.raw_value).toString('latin1');
  return header.value ?? '';
}

/** Which names a service may touch; Envoy ignores (does not fail on) the others. */
export interface MutationRules {
  mayChange(name: string): boolean;
}

/**
 * ext_authz: pseudo-headers and Host may be neither set nor removed (they
 * would make the request malformed, external_auth.proto).
 */
export const EXT_AUTHZ_RULES: MutationRules = {
  mayChange: (name) => !name.startsWith(':') && name !== 'host',
};

/**
 * ext_proc's defaults (no mutation_rules): no `x-envoy-*` header, no routing
 * header (`:method`, `:authority`, `:scheme`, `:path`, `host`), no other
 * pseudo-header except `:status` on a response.
 */
export const EXT_PROC_RULES: MutationRules = {
  mayChange: (name) => !name.startsWith('x-envoy-') && name !== 'host' && (!name.startsWith(':') || name === ':status'),
};

export function applyHeaderOption(headers: HeaderMap, option: HeaderValueOption, rules: MutationRules): void {
  const name = option.header?.key?.toLowerCase();
  if (!name || !option.header || !rules.mayChange(name)) return;
  const value = headerValueText(option.header);
  // Envoy drops a header with an empty value unless told to keep it.
  if (value === '' && option.keep_empty_value !== true) return;
  switch (appendModeOf(option)) {
    case 'append': headers.add(name, value); break;
    case 'add_if_absent': if (!headers.has(name)) headers.add(name, value); break;
    case 'overwrite_or_add': headers.set(name, value); break;
    case 'overwrite_if_exists': if (headers.has(name)) headers.set(name, value); break;
  }
}

export function applyHeaderOptions(headers: HeaderMap, options: readonly HeaderValueOption[] | undefined, rules: MutationRules): void {
  for (const option of options ?? []) applyHeaderOption(headers, option, rules);
}

export function removeHeaders(headers: HeaderMap, names: readonly string[] | undefined, rules: MutationRules): void {
  for (const name of names ?? []) {
    const key = name.toLowerCase();
    if (rules.mayChange(key)) headers.remove(key);
  }
}

/** ext_proc's HeaderMutation: removals, then sets (Envoy's mutation_utils order). */
export function applyHeaderMutation(headers: HeaderMap, mutation: HeaderMutation | undefined): void {
  if (!mutation) return;
  removeHeaders(headers, mutation.remove_headers, EXT_PROC_RULES);
  applyHeaderOptions(headers, mutation.set_headers, EXT_PROC_RULES);
}
