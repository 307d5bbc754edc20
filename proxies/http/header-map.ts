/**
 * An HTTP header map as Envoy keeps one: lower-case names in arrival order,
 * a name may repeat, and the pseudo-headers (`:method`, `:path`,
 * `:authority`, `:scheme` on requests, `:status` on responses) live in it
 * beside the real headers. Every stage reads and mutates this one map, the
 * way Envoy's filters share the stream's RequestHeaderMap.
 */
export class HeaderMap {
  private entries: Array<[string, string]> = [];

  constructor(entries: Iterable<readonly [string, string]> = []) {
    for (const [name, value] of entries) this.add(name, value);
  }

  get(name: string): string | undefined {
    const key = name.toLowerCase();
    return this.entries.find(([n]) => n === key)?.[1];
  }

  getAll(name: string): string[] {
    const key = name.toLowerCase();
    return this.entries.filter(([n]) => n === key).map(([, v]) => v);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** Adds one more value, keeping the ones already there. */
  add(name: string, value: string): void {
    this.entries.push([name.toLowerCase(), value]);
  }

  /** Replaces every value of `name` with this one, at the first one's place. */
  set(name: string, value: string): void {
    const key = name.toLowerCase();
    const at = this.entries.findIndex(([n]) => n === key);
    if (at < 0) {
      this.entries.push([key, value]);
      return;
    }
    this.entries[at] = [key, value];
    this.entries = this.entries.filter(([n], i) => n !== key || i === at);
  }

  remove(name: string): void {
    const key = name.toLowerCase();
    this.entries = this.entries.filter(([n]) => n !== key);
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries.map(([n, v]): [string, string] => [n, v])[Symbol.iterator]();
  }

  /**
   * One value per name, repeated ones joined with "," in order: how Envoy's
   * ext_authz filter fills AttributeContext.HttpRequest.headers (a map).
   */
  merged(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, value] of this.entries) out[name] = name in out ? `${out[name]},${value}` : value;
    return out;
  }

  /** The real headers (no pseudo-headers) for node:http, repeated names as arrays. */
  toNodeHeaders(): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = {};
    for (const [name, value] of this.entries) {
      if (name.startsWith(':')) continue;
      const seen = out[name];
      out[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
    }
    return out;
  }
}

/**
 * Connection-level headers (RFC 9110 §7.6.1): they describe one hop, so a
 * proxy drops them, as Envoy's connection manager does before its filters
 * run (and so before Check sees the headers), together with the headers the
 * Connection header names. `te` survives only as "trailers", as in Envoy.
 */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te'];

export function stripHopByHop(headers: HeaderMap): void {
  const te = headers.get('te');
  const named = (headers.getAll('connection').join(','))
    .split(',')
    .map((token) => token.trim().toLowerCase())
    .filter((token) => token !== '' && token !== 'close' && token !== 'keep-alive');
  for (const name of [...HOP_BY_HOP, ...named]) headers.remove(name);
  if (te !== undefined && te.split(',').some((t) => t.trim().toLowerCase() === 'trailers')) headers.set('te', 'trailers');
}

/** Node's rawHeaders ([name, value, name, value, …]) as a map, names lower-cased. */
export function fromRawHeaders(raw: readonly string[]): HeaderMap {
  const map = new HeaderMap();
  for (let i = 0; i + 1 < raw.length; i += 2) map.add(raw[i] as string, raw[i + 1] as string);
  return map;
}
