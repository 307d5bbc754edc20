// Where a Node CPU profile (.cpuprofile, from `node --cpu-prof`) spends its
// time, in Gatehouse's terms: each sample goes to the innermost frame on its
// stack that belongs to a known stage (JWT verification, policy evaluation,
// audit, store, gRPC, ...), so native calls and library frames count for
// the stage that made them. Also the top functions by self time.
//
//   npx tsx bench/lib/profile-summary.ts build/ext-authz-profile/gatehouse-check.cpuprofile

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
export interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

/** WebAssembly frames carry no source: whose they are is said by the nearest JS frame that called them. */
const isWasm = (f: CallFrame) => f.url.startsWith('wasm://') || /^wasm-function|^\$?js-to-wasm|^wasm-to-js/.test(f.functionName);

/**
 * Stages, tried innermost frame first; the first rule a frame matches names the sample's stage.
 * `caller` is the URL of the nearest non-WebAssembly frame at or above the frame.
 */
const STAGES: [string, (f: CallFrame, caller: string) => boolean][] = [
  ['JWT verification (engine/identity, jose, node:crypto)', (f) => /\/engine\/identity\/|\/node_modules\/jose\//.test(f.url)],
  ['policy: WASM evaluation', (f, caller) => isWasm(f) && caller.includes('/@open-policy-agent/opa-wasm/')],
  ['policy: opa-wasm JS (input/result JSON)', (f) => f.url.includes('/@open-policy-agent/opa-wasm/')],
  ['policy: evaluator and decision validation (engine/policy)', (f) => f.url.includes('/engine/policy/')],
  ['audit event: build, canonical JSON, hash chain (engine/audit)', (f) => f.url.includes('/engine/audit/')],
  ['store: SQLite writes (engine/store)', (f) => /\/engine\/store\/|better-sqlite3|node:sqlite/.test(f.url)],
  ['recording (engine/recording)', (f) => f.url.includes('/engine/recording/')],
  ['approvals (engine/approvals)', (f) => f.url.includes('/engine/approvals/')],
  ['authorizer glue (engine/authorize)', (f) => f.url.includes('/engine/authorize/')],
  ['metrics and logging (engine/observability, prom-client, pino)', (f) => /\/engine\/observability\/|\/prom-client\/|\/pino/.test(f.url)],
  ['Check service: input document, response (ext-authz/)', (f) => f.url.includes('/ext-authz/')],
  ['Postgres proxy: SQL analysis (libpg-query, facts walk)', (f, caller) => /\/proxies\/postgres\/sql\/|\/libpg-query\//.test(isWasm(f) ? caller : f.url)],
  ['masking (engine/masking, Postgres DataRow rewrite)', (f) => /\/proxies\/postgres\/masking\/|\/proxies\/postgres\/protocol\/data-row|\/engine\/masking\//.test(f.url)],
  ['Postgres proxy: wire protocol, relay, session', (f) => /\/proxies\/postgres\/|\/pg-protocol\//.test(f.url)],
  ['other Gatehouse code (engine/, cli/, api/)', (f) => /\/(engine|cli|api)\//.test(f.url) && !f.url.includes('/node_modules/')],
  ['proto decode/encode (protobufjs, proto-loader)', (f) => /\/protobufjs\/|\/@grpc\/proto-loader\//.test(f.url)],
  ['grpc-js (calls, metadata, HTTP/2 glue)', (f) => f.url.includes('/@grpc/grpc-js/')],
];
/** When no stage frame is on the stack. */
const FALLBACKS: [string, (f: CallFrame, caller: string) => boolean][] = [
  ['node: HTTP/2 and sockets', (f) => /node:internal\/(http2|net|stream_base_commons)|node:http2|node:net/.test(f.url)],
  ['node: timers, promises, streams, other internals', (f) => f.url.startsWith('node:')],
];

const SPECIAL: Record<string, string> = {
  '(garbage collector)': 'garbage collection',
  '(idle)': 'idle (waiting for I/O)',
  '(program)': 'V8/native, no JS frame (incl. libuv, HTTP/2 framing in C++)',
  '(root)': 'V8/native, no JS frame (incl. libuv, HTTP/2 framing in C++)',
};

/**
 * `window`: only samples taken between these two CLOCK_MONOTONIC times in
 * microseconds (what V8 stamps samples with, and process.hrtime.bigint() / 1000n
 * reads in any process), e.g. just the timed load, without start-up.
 */
/** Seconds of non-idle samples (in the window). */
export function busySeconds(profile: CpuProfile, window?: { from: number; to: number }): number {
  const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  let busy = 0;
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const us = profile.timeDeltas[i] ?? 0;
    at += us;
    if (window && (at < window.from || at > window.to)) continue;
    if (!idle.has(profile.samples[i]!)) busy += us;
  }
  return busy / 1e6;
}

export function summariseProfile(profile: CpuProfile, options: { window?: { from: number; to: number }; top?: number; title?: string } = {}): string {
  const { window, top = 15, title = 'CPU profile' } = options;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const callerUrl = (id: number): string => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      if (!isWasm(frame)) return frame.url;
    }
    return '';
  };
  const stageOf = new Map<number, string>();
  const stage = (id: number): string => {
    const known = stageOf.get(id);
    if (known) return known;
    const leaf = byId.get(id)!;
    let found: string | undefined = SPECIAL[leaf.callFrame.functionName];
    for (const rules of [STAGES, FALLBACKS]) {
      for (let at: number | undefined = id; !found && at !== undefined; at = parent.get(at)) {
        const frame = byId.get(at)!.callFrame;
        const caller = callerUrl(at);
        found = rules.find(([, match]) => match(frame, caller))?.[0];
      }
      if (found) break;
    }
    found ??= 'other (libraries, JS without a stage)';
    stageOf.set(id, found);
    return found;
  };

  const stages = new Map<string, number>();
  const self = new Map<string, number>();
  const perStage = new Map<string, Map<string, number>>();
  let total = 0;
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    const us = profile.timeDeltas[i] ?? 0;
    at += us;
    if (window && (at < window.from || at > window.to)) continue;
    total += us;
    const s = stage(id);
    stages.set(s, (stages.get(s) ?? 0) + us);
    const f = byId.get(id)!.callFrame;
    const name = `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}${f.url ? `:${f.lineNumber + 1}` : ''}`;
    self.set(name, (self.get(name) ?? 0) + us);
    const within = perStage.get(s) ?? new Map<string, number>();
    within.set(name, (within.get(name) ?? 0) + us);
    perStage.set(s, within);
  }

  const idle = stages.get(SPECIAL['(idle)']!) ?? 0;
  const busy = total - idle;
  const pct = (us: number, of: number) => `${((100 * us) / of).toFixed(1).padStart(5)}%`;
  if (total === 0) return `  ${title}: no samples${window ? ' in the window' : ''}`;
  const lines = [`  ${title}${window ? ' during the timed load' : ''}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (share of busy time, each sample given to the innermost stage on its stack):`];
  for (const [name, us] of [...stages].sort((a, b) => b[1] - a[1])) {
    if (name === SPECIAL['(idle)']) continue;
    lines.push(`    ${pct(us, busy)}  ${name}`);
    // What a big stage is made of: its heaviest functions by self time.
    if (us / busy >= 0.05 && !Object.values(SPECIAL).includes(name)) {
      const heaviest = [...perStage.get(name)!].sort((a, b) => b[1] - a[1]).slice(0, 4);
      lines.push(`             ${heaviest.map(([fn, t]) => `${fn.trim()} ${((100 * t) / busy).toFixed(1)}%`).join(' · ')}`);
    }
  }
  lines.push(`    (idle ${pct(idle, total).trim()} of the sampled time)`);
  lines.push(`  top ${top} functions by self time (share of busy time):`);
  for (const [name, us] of [...self].filter(([n]) => !n.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`    ${pct(us, busy)}  ${name}`);
  }
  return lines.join('\n');
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) return url.slice(nm + '/node_modules/'.length);
  const m = /\/(engine|ext-authz|api|cli|proxies|dist)\/.*$/.exec(url);
  return m ? m[0].slice(1) : url.replace(/^file:\/\//, '');
}

/**
 * The profiles a process wrote under `--cpu-prof-dir` (one per thread), summarised over
 * `window`; the main thread's is kept as `<keepDir>/<name>.cpuprofile`, and each worker that
 * was busy as `<name>-worker-N.cpuprofile`. Read them after the process exited.
 */
export function reportProfiles(profileDir: string, keepDir: string, name: string, options: { window: { from: number; to: number }; title: string }): string {
  const files = existsSync(profileDir) ? readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile')).sort() : [];
  // The main thread is tid 0 in the file name.
  const main = files.find((f) => /\.0\.\d+\.cpuprofile$/.test(f)) ?? files[0];
  if (!main) throw new Error(`no CPU profile in ${profileDir} (did the process exit cleanly on SIGTERM?)`);
  rmSync(keepDir, { recursive: true, force: true });
  mkdirSync(keepDir, { recursive: true });
  const kept = join(keepDir, `${name}.cpuprofile`);
  writeFileSync(kept, readFileSync(join(profileDir, main)));
  const parts = [summariseProfile(JSON.parse(readFileSync(kept, 'utf8')) as CpuProfile, { window: options.window, title: options.title })];
  for (const [i, file] of files.filter((f) => f !== main).entries()) {
    const worker = JSON.parse(readFileSync(join(profileDir, file), 'utf8')) as CpuProfile;
    if (busySeconds(worker, options.window) < 0.1) continue;
    writeFileSync(join(keepDir, `${name}-worker-${i + 1}.cpuprofile`), JSON.stringify(worker));
    parts.push(summariseProfile(worker, { window: options.window, top: 3, title: `worker thread ${i + 1} (busy includes time blocked in native calls such as fsync)` }));
  }
  parts.push(`  profile: ${kept} (open in Chrome DevTools → Performance, or speedscope)`);
  return parts.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: profile-summary.ts <file.cpuprofile>');
    process.exit(2);
  }
  console.log(summariseProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile));
}
