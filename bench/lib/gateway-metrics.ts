// What a running gateway's /metrics says about a benchmark run: scraped
// before and after it, the difference is the run's.

export type Scrape = Map<string, number>;

/** Gatehouse's /metrics as name{labels} → value (prom-client's default Node metrics among them). */
export async function scrape(apiPort: number): Promise<Scrape> {
  const text = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
  const out: Scrape = new Map();
  for (const line of text.split('\n')) {
    const m = /^(\S+?)\s+(\S+)$/.exec(line);
    if (m && !line.startsWith('#')) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/**
 * The durable audit writes between two scrapes: how many, events per write,
 * their mean time and p50/p99 (bucket upper bounds). Every decision waits
 * for its event's write, so this is the floor under each one's latency.
 */
export function auditWrites(before: Scrape, after: Scrape): string {
  const delta = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
  const writes = delta('gatehouse_audit_write_seconds_count');
  if (!(writes > 0)) return 'audit writes: none measured';
  const buckets = [...after.keys()]
    .map((key) => /^gatehouse_audit_write_seconds_bucket\{le="([^"]+)"\}$/.exec(key))
    .flatMap((m) => (m ? [{ le: Number(m[1]), count: delta(m[0]) }] : []))
    .sort((a, b) => a.le - b.le);
  const quantile = (q: number) => {
    const bound = buckets.find((b) => b.count >= q * writes)?.le ?? Number.POSITIVE_INFINITY;
    return bound === Number.POSITIVE_INFINITY ? '> 1 s' : `≤ ${(bound * 1000).toFixed(1)} ms`;
  };
  const perWrite = delta('gatehouse_audit_batch_events_sum') / writes;
  const meanMs = (delta('gatehouse_audit_write_seconds_sum') / writes) * 1000;
  return `audit writes: ${Math.round(writes).toLocaleString('en-US')}, ${perWrite.toFixed(1)} events each, mean ${meanMs.toFixed(2)} ms, p50 ${quantile(0.5)}, p99 ${quantile(0.99)}`;
}
