/**
 * Envoy's header maps as ext_proc sends them, and the header mutations it
 * accepts back.
 *
 * Envoy sends each value in `raw_value` (bytes) and, since 1.29, reads a
 * mutation's value from `raw_value` too; setting both `value` and
 * `raw_value` gets a 500 (envoyproxy/envoy#34034). So values are read from
 * either, and written to `raw_value` only.
 */
import { isCredentialHeader, URL_HEADERS } from '../../engine/masking/credential-headers.js';
import { authorityWithoutCredentials, withoutUrlCredentials } from '../../engine/masking/url-credentials.js';
import type { HarHeader } from '../../engine/recording/types.js';

/** Header names lower-cased, in the order Envoy sent them, repeated names kept. */
export type HeaderList = HarHeader[];

interface HeaderValueMessage {
  key?: string;
  value?: string;
  raw_value?: Uint8Array;
}

export function readHeaderMap(map: { headers?: HeaderValueMessage[] } | null | undefined): HeaderList {
  const out: HeaderList = [];
  for (const h of map?.headers ?? []) {
    if (!h.key) continue;
    const value = h.raw_value && h.raw_value.length > 0 ? Buffer.from(h.raw_value).toString('utf8') : (h.value ?? '');
    out.push({ name: h.key.toLowerCase(), value });
  }
  return out;
}

/** The first value of `name` (lower case), or "" when absent. */
export function header(list: HeaderList, name: string): string {
  return list.find((h) => h.name === name)?.value ?? '';
}

/** Every value of `name`, as one comma-separated list (several lines of a list header mean that). */
export function headerList(list: HeaderList, name: string): string {
  return list.filter((h) => h.name === name).map((h) => h.value).join(', ');
}

/**
 * A HeaderMutation: headers to set (replacing every existing line; a list
 * sets one line per value) and to remove.
 */
export function headerMutation(set: Record<string, string | readonly string[]>, remove: readonly string[] = []): object {
  return {
    // The first line replaces every line there; the rest are appended. APPEND_IF_EXISTS_OR_ADD is
    // append_action's zero value, which proto3 does not send and Envoy reads as "append unset, so
    // overwrite" here: appending takes the (deprecated, still honoured) `append: true`.
    set_headers: Object.entries(set).flatMap(([key, values]) => (typeof values === 'string' ? [values] : values).map((value, i) => ({
      header: { key, raw_value: Buffer.from(value, 'utf8') },
      ...(i === 0 ? { append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' } : { append: { value: true } }),
    }))),
    remove_headers: [...remove],
  };
}

/** The list as the upstream gets it once `headerMutation(set, remove)` is applied. */
export function mutatedHeaders(list: HeaderList, set: Record<string, string>, remove: readonly string[] = []): HeaderList {
  const replaced = new Set([...Object.keys(set), ...remove]);
  return [...list.filter((h) => !replaced.has(h.name)), ...Object.entries(set).map(([name, value]) => ({ name, value }))];
}

/**
 * Headers fit for a recording: no HTTP/2 pseudo-headers (the URL and status
 * say it), no credentials, not the header Check injected the target's
 * credential in (`extraSecret`, whatever its name), and no userinfo in a Host.
 */
export function recordableHeaders(list: HeaderList, extraSecret?: string): HeaderList {
  const secret = extraSecret?.toLowerCase();
  return list
    .filter((h) => !h.name.startsWith(':') && !isCredentialHeader(h.name, h.value) && h.name !== secret)
    .map((h) => (URL_HEADERS.has(h.name) ? { ...h, value: withoutUrlCredentials(h.value) } : h.name === 'host' ? { ...h, value: authorityWithoutCredentials(h.value) } : h));
}
