// make bench-ext-authz: ghz against three envoy.service.auth.v3.Authorization
// Check servers, one after another and alternating, in one run, with the same
// request bytes and (for the two that evaluate policy) the same policy:
//
//   gatehouse  `gatehouse serve` (dist/, the compiled gateway) with
//              listeners.ext_authz and policy.entrypoints.http set to
//              envoy/authz/allow, running examples/opa-envoy/authz.rego
//              compiled to WASM. Per Check it does more than the peer: it
//              verifies the bearer JWT (dev issuer, ES256) and appends a
//              durable, hash-chained audit event (SQLite, fsync'd) per
//              decision before it answers, and injects the target's credential.
//   opa peer   bench/ext-authz/opa-peer: OPA's Go engine (the version pinned in
//              its go.mod) with opa-envoy-plugin's input and result mapping,
//              loading the same .rego source. It stands in for
//              opa-envoy-plugin, which embeds the same engine and does the
//              same mapping but cannot be installed here (the Go module proxy
//              answers 403 for every version of it). No JWT verification (the
//              policy only decodes the payload), no audit.
//   no-op      bench/ext-authz/noop-server.ts: grpc-js answering OK at once,
//              the ceiling for any Node Check server.
//
// Before timing, each server answers the request once through grpc-js and
// must allow it (status OK, an OkHttpResponse, and for the policy servers the
// policy's x-ext-auth-allow: yes): a benchmark of denials or errors would
// mean nothing. ghz's status-code distribution must then be all OK, every run.
//
// Everything shares this machine's CPUs: ghz is held to GHZ_CPUS (1) for
// every server; the servers get the rest. Ratios measured side by side are
// the figure; absolute RPS depends on the machine. Each server's own CPU
// time per Check (all threads, from /proc) and the cores it kept busy are
// printed beside its RPS: a server that cannot use the second core, or
// spends more per Check, shows it there.
//
// Knobs: CONCURRENCY (50), CONNECTIONS (2, as Envoy with two worker threads),
// SECONDS (10) per run, ROUNDS (3; medians; each round starts with another
// server), LATENCY_ROUNDS (2; then every server at one fixed rate, half the
// slower policy server's RPS or RATE, for latency at equal load; 0 skips it),
// WARMUP_SECONDS (3, untimed, per server), GHZ_CPUS (1),
// PEER_GOMAXPROCS (unset: Go's default, all CPUs), GATEHOUSE_FROM_SOURCE=1
// (run cli/main.ts through tsx instead of dist/), PEERS (gatehouse,opa,noop:
// which servers to run), PROFILE=cpu (or 1) / PROFILE=alloc (instead of the
// comparison: one ghz run against Gatehouse under `node --cpu-prof`, or under
// V8's sampling heap profiler, and where its time or its allocations go; at
// a fixed RATE when it is set),
// GATEHOUSE_NODE_ARGS (node flags for the gateway alone). It only prints;
// nothing is asserted about speed.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { AUTHORIZATION_PROTO, ENVOY_PROTO_DIRS } from '../../ext-authz/envoy-protos.js';
import { summariseAllocations, type HeapProfile } from '../lib/allocation-summary.js';
import { auditWrites, scrape, type Scrape } from '../lib/gateway-metrics.js';
import { reportProfiles } from '../lib/profile-summary.js';
import { cleanUp, cpuSeconds, daemon, freePort, listening, must, onCleanup, run, stop, waitFor } from '../lib/processes.js';

const CONCURRENCY = Number(process.env.CONCURRENCY ?? 50);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 2);
const SECONDS = Number(process.env.SECONDS ?? 10);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const LATENCY_ROUNDS = Number(process.env.LATENCY_ROUNDS ?? 2);
const RATE = process.env.RATE ? Number(process.env.RATE) : undefined;
const WARMUP_SECONDS = Number(process.env.WARMUP_SECONDS ?? 3);
const GHZ_CPUS = Number(process.env.GHZ_CPUS ?? 1);
const PEER_GOMAXPROCS = process.env.PEER_GOMAXPROCS;
const FROM_SOURCE = process.env.GATEHOUSE_FROM_SOURCE === '1';
const PROFILE = ({ '1': 'cpu', cpu: 'cpu', alloc: 'alloc' } as const)[process.env.PROFILE ?? ''] ?? null;
if (process.env.PROFILE && !PROFILE) throw new Error(`PROFILE=${process.env.PROFILE}: say PROFILE=cpu or PROFILE=alloc`);
const PEERS = (process.env.PEERS ?? 'gatehouse,opa,noop').split(',').map((p) => p.trim());
const TARGET_RATIO = 1.0;

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const TOOLS = join(root, '.tools/bin');
const GHZ = process.env.GHZ ?? join(TOOLS, 'ghz');
const OPA = process.env.OPA ?? join(TOOLS, 'opa');
const PEER = process.env.OPA_ENVOY_PEER ?? join(TOOLS, 'opa-envoy-peer');
const CLI = FROM_SOURCE ? join(root, 'cli/main.ts') : join(root, 'dist/cli/main.js');
const NODE_ARGS = FROM_SOURCE ? ['--import', 'tsx'] : [];
/** GATEHOUSE_NODE_ARGS: extra node flags for the gateway alone (e.g. --trace-gc, --max-semi-space-size=32); its log is kept in build/. */
const GATEHOUSE_NODE_ARGS = (process.env.GATEHOUSE_NODE_ARGS ?? '').split(' ').filter(Boolean);
const POLICY = join(root, 'examples/opa-envoy/authz.rego');
const ENTRYPOINT = 'envoy/authz/allow';
const CAPABILITIES = join(root, 'policies/capabilities.json');
const FIXTURE = join(here, 'check-request.json');
const NOOP = join(here, 'noop-server.ts');
const PEER_GO_MOD = join(here, 'opa-peer/go.mod');
const PROFILE_DIR = join(root, 'build/ext-authz-profile');
const TARGET = 'crm-api';
const CHECK_METHOD = '/envoy.service.auth.v3.Authorization/Check';

// ── The request, and checking an answer ─────────────────────────────────

/** Envoy's CheckRequest/CheckResponse types, from the same protos the servers load (protobufjs, proto field names). */
function envoyTypes(): { request: protobuf.Type; response: protobuf.Type } {
  const protoRoot = new protobuf.Root();
  protoRoot.resolvePath = (_origin, target) => {
    for (const dir of ENVOY_PROTO_DIRS) if (existsSync(join(dir, target))) return join(dir, target);
    return target;
  };
  protoRoot.loadSync(AUTHORIZATION_PROTO, { keepCase: true });
  return {
    request: protoRoot.lookupType('envoy.service.auth.v3.CheckRequest'),
    response: protoRoot.lookupType('envoy.service.auth.v3.CheckResponse'),
  };
}

/** protojson → protobufjs object form: only google.protobuf.Timestamp differs (an RFC 3339 string in JSON). */
function fromProtoJson(type: protobuf.Type, json: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    const field = type.fields[key];
    if (!field) throw new Error(`${type.fullName} has no field ${key} (the fixture uses proto field names)`);
    field.resolve();
    const nested = field.resolvedType;
    if (nested instanceof protobuf.Type && nested.fullName === '.google.protobuf.Timestamp' && typeof value === 'string') {
      const ms = Date.parse(value);
      if (Number.isNaN(ms)) throw new Error(`${key}: not an RFC 3339 time: ${value}`);
      const fraction = /\.(\d+)Z$/.exec(value)?.[1] ?? '';
      out[key] = { seconds: Math.floor(ms / 1000), nanos: Number(fraction.padEnd(9, '0').slice(0, 9)) };
    } else if (nested instanceof protobuf.Type && !field.map && value && typeof value === 'object') {
      out[key] = fromProtoJson(nested, value as Record<string, unknown>);
    } else {
      out[key] = value;
    }
  }
  return out;
}

interface Peer {
  name: string;
  label: string;
  port: number;
  /** Whether it runs the policy (so its answer must carry the policy's headers). */
  policy: boolean;
  /** The server process, for its CPU time. */
  pid: number | undefined;
}

interface HeaderOption { header?: { key?: string; value?: string } }
interface CheckAnswer {
  status?: { code?: number; message?: string };
  ok_response?: { headers?: HeaderOption[]; headers_to_remove?: string[]; response_headers_to_add?: HeaderOption[]; query_parameters_to_remove?: string[] };
  denied_response?: { status?: { code?: string }; body?: string };
}

/** One Check through grpc-js with exactly the bytes ghz sends; returns the decoded answer. */
function checkOnce(port: number, bytes: Buffer, responseType: protobuf.Type): Promise<CheckAnswer> {
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  return new Promise<CheckAnswer>((resolveCheck, reject) => {
    client.makeUnaryRequest(CHECK_METHOD, (b: Buffer) => b, (b: Buffer) => b, bytes, { deadline: Date.now() + 10_000 }, (err: ServiceError | null, answer?: Buffer) => {
      client.close();
      if (err) return reject(new Error(`gRPC ${err.code} ${err.details}`));
      resolveCheck(responseType.toObject(responseType.decode(answer!), { enums: String, longs: String, defaults: false }) as CheckAnswer);
    });
  });
}

/** Fails unless the server allows the request (and, if it runs the policy, with the policy's answer). Returns what it did, for the log. */
async function mustAllow(peer: Peer, bytes: Buffer, responseType: protobuf.Type): Promise<string> {
  let answer: CheckAnswer | null = null;
  let lastError = '';
  const until = Date.now() + 20_000;
  while (!answer && Date.now() < until) {
    answer = await checkOnce(peer.port, bytes, responseType).catch((err: Error) => { lastError = err.message; return null; });
    if (!answer) await new Promise((r) => setTimeout(r, 250));
  }
  if (!answer) throw new Error(`${peer.label}: the correctness Check failed: ${lastError}`);
  const code = answer.status?.code ?? 0;
  if (code !== 0 || !answer.ok_response) {
    throw new Error(`${peer.label} does not allow the bench request (status ${code}${answer.status?.message ? ` "${answer.status.message}"` : ''}` +
      `${answer.denied_response ? `, denied ${answer.denied_response.status?.code ?? ''} ${answer.denied_response.body ?? ''}` : ''}); a benchmark of denials means nothing`);
  }
  const ok = answer.ok_response;
  const headers = new Map((ok.headers ?? []).map((h) => [h.header?.key?.toLowerCase() ?? '', h.header?.value ?? '']));
  if (peer.policy && headers.get('x-ext-auth-allow') !== 'yes') {
    throw new Error(`${peer.label} answered OK without the policy's x-ext-auth-allow: yes header (headers: ${[...headers.keys()].join(', ') || 'none'}); is it running ${ENTRYPOINT}?`);
  }
  // Header names only: Gatehouse's answer carries the target's credential.
  const parts = [`OK, sets ${[...headers.keys()].join(', ') || 'no headers'}`];
  if (ok.headers_to_remove?.length) parts.push(`removes ${ok.headers_to_remove.join(', ')}`);
  if (ok.query_parameters_to_remove?.length) parts.push(`drops ?${ok.query_parameters_to_remove.join(', ?')}`);
  if (ok.response_headers_to_add?.length) parts.push(`adds response ${ok.response_headers_to_add.map((h) => h.header?.key).join(', ')}`);
  return parts.join('; ');
}

// ── ghz ─────────────────────────────────────────────────────────────────

interface GhzReport {
  count: number;
  rps: number;
  latencyDistribution: { percentage: number; latency: number }[] | null;
  statusCodeDistribution: Record<string, number> | null;
  errorDistribution: Record<string, number> | null;
}

/** cpuUs: the server's CPU time (user + system, all threads) per Check; cores: that CPU time over the run's wall time. */
interface Figures { rps: number; p50: number; p99: number; count: number; cpuUs: number | null; cores: number | null }

/** `rate`: a fixed request rate (ghz --rps) instead of as fast as the concurrency allows. */
async function ghz(peer: Peer, requestFile: string, seconds: number, rate?: number): Promise<Figures> {
  const cpuBefore = peer.pid ? cpuSeconds(peer.pid) : null;
  const startedAt = performance.now();
  const out = await must(`ghz against ${peer.label}`, run(GHZ, [
    '--insecure',
    '--proto', AUTHORIZATION_PROTO,
    '--import-paths', ENVOY_PROTO_DIRS.join(','),
    '--call', 'envoy.service.auth.v3.Authorization.Check',
    '--binary-file', requestFile,
    '--concurrency', String(CONCURRENCY),
    '--connections', String(CONNECTIONS),
    '--duration', `${seconds}s`,
    // In-flight calls finish when the time is up (the default, close, cuts them off and reports them as errors).
    '--duration-stop', 'wait',
    ...(rate ? ['--rps', String(rate)] : []),
    '--cpus', String(GHZ_CPUS),
    '--timeout', '10s',
    '--format', 'json',
    `127.0.0.1:${peer.port}`,
  ]));
  const report = JSON.parse(out) as GhzReport;
  const codes = report.statusCodeDistribution ?? {};
  const notOk = Object.entries(codes).filter(([code]) => code !== 'OK');
  const errors = Object.entries(report.errorDistribution ?? {});
  if (notOk.length > 0 || errors.length > 0 || !codes.OK) {
    throw new Error(`ghz against ${peer.label}: not every call was OK: status codes ${JSON.stringify(codes)}` +
      `${errors.length ? `, errors ${JSON.stringify(Object.fromEntries(errors.slice(0, 5)))}` : ''}`);
  }
  const at = (p: number) => (report.latencyDistribution ?? []).find((d) => d.percentage === p)?.latency;
  const p50 = at(50);
  const p99 = at(99);
  if (p50 === undefined || p99 === undefined) throw new Error(`ghz against ${peer.label}: no latency distribution in its report`);
  const cpuAfter = peer.pid ? cpuSeconds(peer.pid) : null;
  const cpu = cpuBefore && cpuAfter ? cpuAfter.all - cpuBefore.all : null;
  return {
    rps: report.rps, p50: p50 / 1e6, p99: p99 / 1e6, count: report.count,
    cpuUs: cpu === null ? null : (cpu * 1e6) / report.count,
    cores: cpu === null ? null : cpu / ((performance.now() - startedAt) / 1000),
  };
}

/** Event-loop delay and GC pauses between two scrapes (the event-loop histogram resets on each scrape; other servers' runs fall in between, when Gatehouse idles). */
function loopAndGc(before: Scrape, after: Scrape, checks: number): string {
  const resolution = 0.010; // prom-client's monitorEventLoopDelay resolution, included in what it reports
  const lag = (q: string) => Math.max(0, (after.get(`gatehouse_nodejs_eventloop_lag_${q}_seconds`) ?? NaN) - resolution) * 1000;
  const gc = (what: 'sum' | 'count', kind?: string) => [...after].filter(([k]) => k.startsWith(`gatehouse_nodejs_gc_duration_seconds_${what}`) && (!kind || k.includes(`kind="${kind}"`)))
    .reduce((total, [k, v]) => total + v - (before.get(k) ?? 0), 0);
  return `event loop: p99 delay ≈ ${lag('p99').toFixed(1)} ms, longest ≈ ${lag('max').toFixed(0)} ms; ` +
    `GC: ${int(gc('count'))} pauses, ${(gc('sum') * 1000).toFixed(0)} ms (${((gc('sum') * 1e6) / checks).toFixed(0)} µs per Check; major ${int(gc('count', 'major'))}, ${(gc('sum', 'major') * 1000).toFixed(0)} ms); ` +
    auditWrites(before, after);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => `${n.toFixed(2)} ms`;

// ── The run ─────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  const missing: [string, string][] = [
    [CLI, FROM_SOURCE ? 'the source tree' : 'make build'],
    [OPA, 'make tools'],
    [GHZ, `make ${GHZ}`],
    [PEER, `make ${PEER}`],
  ];
  for (const [file, fix] of missing) {
    if (!existsSync(file)) throw new Error(`${file} is missing; run \`${fix}\` (make bench-ext-authz does)`);
  }

  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-ext-authz-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));

  // The policy, compiled to WASM for Gatehouse; the peer loads the .rego.
  // The gateway serves only an http target, so the bundle needs only the
  // OPA-Envoy entrypoint: the same policy file and nothing else.
  const bundle = join(dir, 'bundle.tar.gz');
  await must('opa build', run(OPA, [
    'build', '-t', 'wasm', '-e', ENTRYPOINT, '--capabilities', CAPABILITIES, POLICY, '-o', bundle,
  ]));

  // Gatehouse: ext_authz listener, the OPA-Envoy entrypoint, dev issuer, SQLite store.
  const apiPort = await freePort();
  const gatehousePort = await freePort();
  const config = join(dir, 'gatehouse.yaml');
  writeFileSync(config, `listeners:
  api: {address: 127.0.0.1:${apiPort}}
  ext_authz: {address: 127.0.0.1:${gatehousePort}, default_target: ${TARGET}}
policy:
  bundle: {source: ${bundle}}
  entrypoints: {http: ${ENTRYPOINT}}
identity:
  dev_issuer: {enabled: true, key_file: dev-issuer.jwk}
store:
  sqlite: {path: gatehouse.db}
targets:
  - name: ${TARGET}
    kind: http
    labels: {env: bench}
    upstream: {address: 'http://127.0.0.1:18080'}
    credentials:
      header: Authorization
      value: \${env:BENCH_UPSTREAM_TOKEN}
`);
  // The token first (the CLI creates the dev issuer's key), then the request:
  // the fixture with the token, encoded once; ghz and the correctness check send these bytes.
  const token = (await must('gatehouse token', run(process.execPath, [...NODE_ARGS, CLI, 'token', '-c', config, '--sub', 'agent:bench', '--groups', 'support', '--ttl', '2h'], { cwd: root }))).trim();
  const types = envoyTypes();
  const fixture = JSON.parse(readFileSync(FIXTURE, 'utf8').replaceAll('{{TOKEN}}', token)) as Record<string, unknown>;
  const object = types.request.fromObject(fromProtoJson(types.request, fixture));
  const problem = types.request.verify(object);
  if (problem) throw new Error(`${FIXTURE}: ${problem}`);
  const bytes = Buffer.from(types.request.encode(object).finish());
  const requestFile = join(dir, 'check-request.bin');
  writeFileSync(requestFile, bytes);

  const peers: Peer[] = [];
  let gatehouseProcess: ChildProcess | null = null;
  const profileDir = join(dir, 'profile');
  mkdirSync(profileDir);
  if (PEERS.includes('gatehouse')) {
    const port = gatehousePort;
    const log = join(dir, 'gatehouse.log');
    const profiling = PROFILE === 'cpu'
      ? ['--cpu-prof', '--cpu-prof-dir', profileDir]
      : PROFILE === 'alloc' ? ['--import', pathToFileURL(join(root, 'bench/lib/allocation-sampling.mjs')).href] : [];
    const args = [...NODE_ARGS, ...GATEHOUSE_NODE_ARGS, ...profiling, CLI, 'serve', '--config', config];
    // Kept after the run (the temporary directory is not): what the gateway said, and what GATEHOUSE_NODE_ARGS traced.
    onCleanup(() => {
      if (existsSync(log)) copyFileSync(log, join(root, 'build/ext-authz-gatehouse.log'));
    });
    console.error(`bench-ext-authz: starting gatehouse serve${FROM_SOURCE ? ' (from source, tsx)' : ' (dist/)'}${PROFILE ? ` under the ${PROFILE} profiler` : ''}`);
    gatehouseProcess = daemon('gatehouse serve', process.execPath, args, log, {
      cwd: root,
      env: {
        ...process.env,
        BENCH_UPSTREAM_TOKEN: `Bearer upstream-${randomBytes(12).toString('hex')}`,
        GATEHOUSE_ALLOCATION_PROFILE: PROFILE === 'alloc' ? join(profileDir, 'gatehouse.heapprofile') : '',
      },
    });
    await waitFor('gatehouse serve', gatehouseProcess, log, async () => (await fetch(`http://127.0.0.1:${apiPort}/health`)).ok && (await listening(port)()));
    peers.push({ name: 'gatehouse', label: 'Gatehouse', port, policy: true, pid: gatehouseProcess.pid });
  }
  if (PEERS.includes('opa')) {
    const port = await freePort();
    const log = join(dir, 'opa-peer.log');
    const child = daemon('opa-envoy-peer', PEER, ['-addr', `127.0.0.1:${port}`, '-policy', POLICY, '-query', `data.${ENTRYPOINT.replaceAll('/', '.')}`], log, {
      env: { ...process.env, ...(PEER_GOMAXPROCS ? { GOMAXPROCS: PEER_GOMAXPROCS } : {}) },
    });
    await waitFor('opa-envoy-peer', child, log, listening(port));
    peers.push({ name: 'opa', label: 'OPA peer', port, policy: true, pid: child.pid });
  }
  if (PEERS.includes('noop')) {
    const port = await freePort();
    const log = join(dir, 'noop.log');
    const child = daemon('noop-server', process.execPath, ['--import', 'tsx', NOOP, `127.0.0.1:${port}`], log, { cwd: root });
    await waitFor('noop-server', child, log, listening(port));
    peers.push({ name: 'noop', label: 'no-op grpc-js', port, policy: false, pid: child.pid });
  }

  console.error('bench-ext-authz: one Check each through grpc-js, before anything is timed');
  for (const peer of peers) console.error(`  ${peer.label.padEnd(14)} ${await mustAllow(peer, bytes, types.response)}`);

  const ghzVersion = /^GHZ_VERSION\s*:=\s*(\S+)/m.exec(readFileSync(join(root, 'tools.mk'), 'utf8'))?.[1] ?? '?';
  const opaVersion = /github\.com\/open-policy-agent\/opa (v\S+)/.exec(readFileSync(PEER_GO_MOD, 'utf8'))?.[1] ?? '?';
  const grpcJs = (JSON.parse(readFileSync(join(root, 'node_modules/@grpc/grpc-js/package.json'), 'utf8')) as { version: string }).version;
  const cpuList = cpus();
  console.log(`ext_authz Check: ghz ${ghzVersion} --concurrency ${CONCURRENCY} --connections ${CONNECTIONS} --duration ${SECONDS}s --cpus ${GHZ_CPUS}; ` +
    `one ${bytes.length}-byte CheckRequest (GET /people/42?debug=1, bearer dev token); policy ${ENTRYPOINT} (examples/opa-envoy/authz.rego); ` +
    `${cpuList.length} CPUs (${cpuList[0]?.model.trim() ?? '?'}) shared by ghz and the server; Node ${process.version}, grpc-js ${grpcJs}, OPA ${opaVersion}`);

  const load = loadavg()[0]!;
  if (load > cpuList.length * 0.75) {
    console.log(`  note: the 1-minute load average is ${load.toFixed(1)} on ${cpuList.length} CPUs before the bench starts: other processes are busy, so expect noisy figures (see the min–max column)`);
  }

  const byName = (name: string) => peers.find((p) => p.name === name);
  if (PROFILE) {
    const gatehouse = byName('gatehouse');
    if (!gatehouse || !gatehouseProcess) throw new Error('PROFILE profiles Gatehouse: keep gatehouse in PEERS');
    return profile(gatehouse, requestFile, gatehouseProcess, profileDir);
  }

  console.error(`bench-ext-authz: warming up, ${WARMUP_SECONDS}s per server (untimed)`);
  for (const peer of peers) await ghz(peer, requestFile, WARMUP_SECONDS);

  const metricsBefore = byName('gatehouse') ? await scrape(apiPort) : null;
  const runs = new Map<string, Figures[]>(peers.map((p) => [p.name, []]));
  console.error(`bench-ext-authz: ${ROUNDS} round(s) of ${SECONDS}s per server`);
  for (let round = 0; round < ROUNDS; round++) {
    // Each round starts with another server, so none always runs first (or right after the busiest).
    for (let i = 0; i < peers.length; i++) {
      const peer = peers[(round + i) % peers.length]!;
      const f = await ghz(peer, requestFile, SECONDS);
      runs.get(peer.name)!.push(f);
      console.error(`  round ${round + 1}/${ROUNDS}  ${peer.label.padEnd(14)} ${int(f.rps).padStart(8)} RPS  p50 ${ms(f.p50).padStart(9)}  p99 ${ms(f.p99).padStart(9)}  (${int(f.count)} calls, all OK)`);
    }
  }

  const metricsSaturated = metricsBefore ? await scrape(apiPort) : null;
  const medians = (fs: Figures[]) => {
    const rps = fs.map((f) => f.rps);
    const known = (values: (number | null)[]) => values.filter((v): v is number => v !== null);
    const cpuUs = known(fs.map((f) => f.cpuUs));
    const cores = known(fs.map((f) => f.cores));
    return {
      rps: median(rps), min: Math.min(...rps), max: Math.max(...rps), p50: median(fs.map((f) => f.p50)), p99: median(fs.map((f) => f.p99)),
      cpuUs: cpuUs.length > 0 ? median(cpuUs) : null, cores: cores.length > 0 ? median(cores) : null,
    };
  };
  const med = new Map(peers.map((p) => [p.name, medians(runs.get(p.name)!)]));

  // Latency at equal load: every server at one fixed rate, half what the slower policy server sustained,
  // so p50/p99 are one Check's cost plus scheduling, not queueing behind CONCURRENCY calls in flight.
  const policyRps = peers.filter((p) => p.policy).map((p) => med.get(p.name)!.rps);
  const rate = LATENCY_ROUNDS <= 0 ? 0 : RATE ?? (policyRps.length > 0 ? Math.max(100, Math.floor(Math.min(...policyRps) / 2 / 100) * 100) : 0);
  const atRate = new Map<string, Figures[]>(peers.map((p) => [p.name, []]));
  if (rate > 0) {
    console.error(`bench-ext-authz: latency at a fixed ${int(rate)} RPS (${RATE ? 'RATE' : 'half the slower policy server\'s'}), ${LATENCY_ROUNDS} round(s) of ${SECONDS}s per server`);
    for (let round = 0; round < LATENCY_ROUNDS; round++) {
      for (let i = 0; i < peers.length; i++) {
        const peer = peers[(round + i) % peers.length]!;
        const f = await ghz(peer, requestFile, SECONDS, rate);
        atRate.get(peer.name)!.push(f);
        console.error(`  round ${round + 1}/${LATENCY_ROUNDS}  ${peer.label.padEnd(14)} ${int(f.rps).padStart(8)} RPS  p50 ${ms(f.p50).padStart(9)}  p99 ${ms(f.p99).padStart(9)}  (${int(f.count)} calls, all OK)`);
      }
    }
  }


  const metricsAtRate = metricsSaturated && rate ? await scrape(apiPort) : null;

  console.log(`  ${'server'.padEnd(16)}${'RPS'.padStart(10)}${'p50'.padStart(11)}${'p99'.padStart(11)}${'RPS min–max'.padStart(18)}${'CPU/Check'.padStart(12)}${'cores'.padStart(7)}` +
    `${rate ? `${'p50'.padStart(11)}${'p99'.padStart(11)}` : ''}`);
  console.log(`  ${''.padEnd(16)}${`-c ${CONCURRENCY}, as fast as it goes (medians of ${ROUNDS})`.padStart(69)}${rate ? `   at ${int(rate)} RPS (${LATENCY_ROUNDS})`.padStart(22) : ''}`);
  for (const peer of peers) {
    const f = med.get(peer.name)!;
    const r = rate ? medians(atRate.get(peer.name)!) : null;
    console.log(`  ${peer.label.padEnd(16)}${int(f.rps).padStart(10)}${ms(f.p50).padStart(11)}${ms(f.p99).padStart(11)}${`${int(f.min)}–${int(f.max)}`.padStart(18)}` +
      `${(f.cpuUs === null ? '?' : `${f.cpuUs.toFixed(0)} µs`).padStart(12)}${(f.cores === null ? '?' : f.cores.toFixed(2)).padStart(7)}` +
      `${r ? `${ms(r.p50).padStart(11)}${ms(r.p99).padStart(11)}` : ''}`);
  }
  console.log('  CPU/Check: the server\'s own CPU time (user + system, all threads, /proc) per call; cores: that time over the run\'s wall time.');
  const g = med.get('gatehouse');
  const o = med.get('opa');
  const n = med.get('noop');
  if (g && o) console.log(`  Gatehouse / OPA peer: RPS ${(g.rps / o.rps).toFixed(2)}×, p99 ${(g.p99 / o.p99).toFixed(2)}× (${ms(g.p99)} vs ${ms(o.p99)})`);
  if (n && (g || o)) {
    const parts = [g && `Gatehouse ${(g.rps / n.rps).toFixed(2)}×`, o && `OPA peer ${(o.rps / n.rps).toFixed(2)}×`].filter(Boolean);
    console.log(`  RPS / no-op grpc-js (the ceiling for a Node Check server): ${parts.join(', ')}`);
  }
  if (g && o) {
    const ratio = g.rps / o.rps;
    const met = ratio >= TARGET_RATIO && g.p99 <= o.p99;
    console.log(`  target (≥ ${TARGET_RATIO.toFixed(1)}× opa-envoy-plugin's RPS at a p99 no worse): ${met ? 'met' : 'NOT met'} ` +
      `(${ratio.toFixed(2)}× ${ratio >= TARGET_RATIO ? '≥' : '<'} ${TARGET_RATIO.toFixed(1)}×, p99 ${g.p99 <= o.p99 ? 'no worse' : 'worse'})`);
  }
  if (o) {
    console.log('  The OPA peer stands in for opa-envoy-plugin: the same OPA engine with the plugin\'s input and result mapping\n' +
      '  (bench/ext-authz/opa-peer); the plugin itself cannot be installed here, the Go module proxy refuses every version.');
  }
  if (g) {
    console.log('  Per Check Gatehouse does more than the peer: it verifies the bearer JWT (ES256), appends a durable, hash-chained\n' +
      '  audit event to SQLite before it answers, and injects the target\'s credential; the peer only decodes the JWT payload in Rego.');
    // The evidence Gatehouse wrote while being measured: one chained event per decision.
    console.error('bench-ext-authz: gatehouse audit verify over what the runs wrote');
    const verify = await run(process.execPath, [...NODE_ARGS, CLI, 'audit', 'verify', '-c', config], { cwd: root });
    const summary = /audit trail verified: .*/.exec(verify.stdout)?.[0];
    const calls = [...runs.get('gatehouse')!, ...atRate.get('gatehouse')!].reduce((sum, f) => sum + f.count, 0);
    console.log(`  Gatehouse audit: ${summary ?? `audit verify exit ${verify.code}: ${(verify.stderr || verify.stdout).trim().split('\n').slice(-3).join(' ')}`}` +
      ` (the timed runs made ${int(calls)} Checks; warm-up and correctness checks the rest)`);
    const count = (fs: Figures[]) => fs.reduce((sum, f) => sum + f.count, 0);
    if (metricsBefore && metricsSaturated) console.log(`  Gatehouse at -c ${CONCURRENCY}: ${loopAndGc(metricsBefore, metricsSaturated, count(runs.get('gatehouse')!))}`);
    if (metricsSaturated && metricsAtRate) console.log(`  Gatehouse at ${int(rate)} RPS: ${loopAndGc(metricsSaturated, metricsAtRate, count(atRate.get('gatehouse')!))}`);
  }
}

/** PROFILE: one warm-up and one timed ghz run against Gatehouse under a profiler, then where the time (or the memory) went. */
async function profile(gatehouse: Peer, requestFile: string, child: ChildProcess, profileDir: string): Promise<void> {
  console.error(`bench-ext-authz: profiling Gatehouse: ${WARMUP_SECONDS}s warm-up, then ${SECONDS}s under load`);
  await ghz(gatehouse, requestFile, WARMUP_SECONDS);
  // Samples carry CLOCK_MONOTONIC times, the clock hrtime reads: only the timed load counts, not start-up or warm-up.
  const from = Number(process.hrtime.bigint() / 1000n);
  const f = await ghz(gatehouse, requestFile, SECONDS, RATE || undefined);
  const to = Number(process.hrtime.bigint() / 1000n);
  console.log(`  gatehouse under the ${PROFILE} profiler${RATE ? ` at a fixed ${int(RATE)} RPS` : ''}: ${int(f.rps)} RPS, p50 ${ms(f.p50)}, p99 ${ms(f.p99)} (the profiler itself costs some)`);
  await stop(child);
  if (PROFILE === 'alloc') {
    // The whole process life: start-up is a few MB, against the GBs the load allocates.
    const file = join(profileDir, 'gatehouse.heapprofile');
    if (!existsSync(file)) throw new Error(`gatehouse serve wrote no allocation profile at ${file} (did it exit cleanly on SIGTERM?)`);
    mkdirSync(PROFILE_DIR, { recursive: true });
    const kept = join(PROFILE_DIR, 'gatehouse-check.heapprofile');
    copyFileSync(file, kept);
    const calls = f.count + Math.round(f.rps * WARMUP_SECONDS);
    console.log(summariseAllocations(JSON.parse(readFileSync(kept, 'utf8')) as HeapProfile, { calls, title: 'allocations of the Check server (warm-up and timed run)' }));
    console.log(`  profile: ${kept} (open in Chrome DevTools → Memory)`);
    return;
  }
  console.log(reportProfiles(profileDir, PROFILE_DIR, 'gatehouse-check', { window: { from, to }, title: 'CPU profile of the Check server' }));
}

let failed = false;
try {
  await main();
} catch (err) {
  failed = true;
  console.error(`bench-ext-authz: ${(err as Error).message}`);
} finally {
  await cleanUp();
}
process.exit(failed ? 1 : 0);
