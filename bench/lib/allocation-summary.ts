// Who allocates, from a sampling heap profile that kept collected objects
// (bench/lib/allocation-sampling.mjs): bytes by allocating function, and by
// the innermost Gatehouse frame on the stack, so library allocations count
// for the Gatehouse code that caused them. Allocation drives GC time, and
// GC pauses drive the tail latency.
//
//   npx tsx bench/lib/allocation-summary.ts build/ext-authz-profile/gatehouse-check.heapprofile

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface HeapNode { callFrame: CallFrame; selfSize: number; children?: HeapNode[] }
export interface HeapProfile { head: HeapNode }

const GATEHOUSE = /\/(?:dist\/)?(?:engine|ext-authz|api|proxies)\//;

function label(frame: CallFrame): string {
  const nm = frame.url.lastIndexOf('/node_modules/');
  const url = nm >= 0 ? frame.url.slice(nm + '/node_modules/'.length) : /\/(?:engine|ext-authz|api|cli|proxies)\/.*$/.exec(frame.url)?.[0].slice(1) ?? frame.url;
  return `${frame.functionName || '(anonymous)'} ${url}${url ? `:${frame.lineNumber + 1}` : ''}`;
}

/** `calls`: how many requests the profile covers, for bytes per request. */
export function summariseAllocations(profile: HeapProfile, options: { calls?: number; top?: number; title?: string } = {}): string {
  const { calls, top = 12, title = 'allocations' } = options;
  const bySelf = new Map<string, number>();
  const byGatehouse = new Map<string, number>();
  let total = 0;
  const walk = (node: HeapNode, owner: string | null): void => {
    const frame = node.callFrame;
    const here = GATEHOUSE.test(frame.url) ? label(frame) : owner;
    if (node.selfSize > 0) {
      total += node.selfSize;
      const name = label(frame);
      bySelf.set(name, (bySelf.get(name) ?? 0) + node.selfSize);
      const key = here ?? '(no Gatehouse frame: grpc-js, node internals, start-up)';
      byGatehouse.set(key, (byGatehouse.get(key) ?? 0) + node.selfSize);
    }
    for (const child of node.children ?? []) walk(child, here);
  };
  walk(profile.head, null);
  const pct = (bytes: number) => `${((100 * bytes) / total).toFixed(1).padStart(5)}%`;
  const lines = [`  ${title}: ${(total / 1e6).toFixed(0)} MB sampled${calls ? `, about ${(total / calls / 1024).toFixed(0)} KB per call over ${calls.toLocaleString('en-US')} calls` : ''}`];
  lines.push('  by allocating function:');
  for (const [name, bytes] of [...bySelf].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`    ${pct(bytes)}  ${name}`);
  lines.push('  by the innermost Gatehouse frame on the stack:');
  for (const [name, bytes] of [...byGatehouse].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`    ${pct(bytes)}  ${name}`);
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { readFileSync } = await import('node:fs');
  const file = process.argv[2];
  if (!file) {
    console.error('usage: allocation-summary.ts <file.heapprofile>');
    process.exit(2);
  }
  console.log(summariseAllocations(JSON.parse(readFileSync(file, 'utf8')) as HeapProfile));
}
