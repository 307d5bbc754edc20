// make bench-postgres: pgbench -S TPS through the Postgres proxy, against the
// same database direct and through pgbouncer, all in one run, and rows/s of a
// large masked result.
//
// One real PostgreSQL (Debian's package, tests/helpers/postgres.ts), scale
// SCALE pgbench tables, and four ways in, each logging in upstream as the
// same role with SCRAM-SHA-256:
//   direct     pgbench → PostgreSQL
//   pgbouncer  pgbench → pgbouncer (Debian's package) → PostgreSQL
//   relay      pgbench → a no-op Node relay (noop-relay.ts) → PostgreSQL: the
//              ceiling for any proxy written in Node
//   gatehouse  pgbench → `gatehouse serve` (dist/, the compiled gateway) → PostgreSQL,
//              as an analysts-group agent with a dev-issuer JWT as its
//              password; every statement parsed, decided by the policy
//              bundle and audited (SQLite store, fsync'd) as in production.
//
// pgbouncer runs in session mode. Debian 12's pgbouncer (1.18) cannot keep
// protocol-level prepared statements in transaction mode (that came in 1.21),
// so `-M prepared` fails there; and session mode is what Gatehouse does too
// (one upstream connection per client session), so both do the same work.
//
// -c 8 -j 2 by default: two pgbench threads for the two cores, and eight
// connections, so some queries are always in flight while others wait on a
// round trip, without queueing so many that the (single-threaded) proxies
// and PostgreSQL's backends fight pgbench for the CPU more than they would
// in real use. Everything runs on one machine, so each path's cost shows up
// as CPU taken from the others: the ratios matter, not the absolute TPS.
//
// Masking: SELECT of MASK_ROWS rows × 6 columns from `customers`, whose email
// and phone (partial) and ssn (redact) the orders-db target's mask rules in
// policies/data/access/data.yaml cover: 3 of 6, one more than the design's
// target names. The table has the notes column a rule names too (a rule
// whose column is missing refuses the table), not selected. The bench's
// gateway names its target orders-db for that reason (nothing bench-only is
// added to the policy data).
// psql fetches it (unaligned, to /dev/null) on one open connection, direct
// and through Gatehouse, plus the same shape from an unmasked table through
// Gatehouse, to separate relaying from masking.
//
// Knobs: CLIENTS, THREADS, SECONDS, SCALE, ROUNDS (pgbench runs per path and
// mode, default 3, median reported; each round starts with another path),
// MASK_ROWS, MASK_RUNS, PROFILE=prepared|simple|masking (instead of the
// comparison: one pgbench run, or the masked fetches, through Gatehouse under
// --cpu-prof, and where the gateway's time went; the profile is kept in
// build/postgres-profile). It only prints; nothing is asserted about speed.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { postgresBinDir, startPostgres, type PostgresServer } from '../../tests/helpers/postgres.js';
import { auditWrites, scrape } from '../lib/gateway-metrics.js';
import { cleanUp, cpuSeconds, daemon, freePort, listening, must, onCleanup, run, stop, waitFor, type Result } from '../lib/processes.js';
import { reportProfiles } from '../lib/profile-summary.js';

const CLIENTS = Number(process.env.CLIENTS ?? 8);
const THREADS = Number(process.env.THREADS ?? 2);
const SECONDS = Number(process.env.SECONDS ?? 10);
const SCALE = Number(process.env.SCALE ?? 10);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const MASK_ROWS = Number(process.env.MASK_ROWS ?? 200_000);
const MASK_RUNS = Number(process.env.MASK_RUNS ?? 5);
const PROFILE = process.env.PROFILE as 'prepared' | 'simple' | 'masking' | undefined;
const TARGET_RATIO = 0.75;
const TARGET_MASK_ROWS_PER_SECOND = 200_000;

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const CLI = join(root, 'dist/cli/main.js');
const BUNDLE = join(root, 'build/bundle.tar.gz');
const TARGET = 'orders-db';
const ROLE = 'bench';
const DATABASE = 'bench';
const PASSWORD = randomBytes(12).toString('hex');
const SERVER_USER = 'postgres';
const PROFILE_DIR = join(root, 'build/postgres-profile');

function which(tool: string): string | null {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin', ...(process.env.PATH ?? '').split(':')]) {
    if (dir && existsSync(join(dir, tool))) return join(dir, tool);
  }
  return null;
}

/** As root, PostgreSQL's tools and pgbouncer run as the postgres OS user. */
function serverOwner(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const id = (flag: string) => Number(execFileSync('id', [flag, SERVER_USER], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

// ── What is measured ────────────────────────────────────────────────────

interface Path {
  name: string; label: string; port: number; user: string; password: () => string;
  /** The proxy's process, whose CPU time per transaction is reported. */
  pid?: number;
}

/** What one pgbench run measured: TPS, and the proxy's CPU time per transaction (µs, user + system): all threads, and its main thread. */
interface Run { tps: number; cpuUs: { all: number; main: number } | null }

const bin = postgresBinDir();
const tool = (name: string) => join(bin, name);

function clientEnv(path: Path): NodeJS.ProcessEnv {
  return { ...process.env, PGPASSWORD: path.password(), PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10', PGAPPNAME: 'bench-postgres' };
}

function psql(path: Path, args: string[], input?: string): Promise<Result> {
  return run(tool('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(path.port), '-U', path.user, '-d', DATABASE, ...args], { env: clientEnv(path), input });
}

async function pgbench(path: Path, mode: 'prepared' | 'simple', seconds: number): Promise<Run> {
  const cpuBefore = path.pid ? cpuSeconds(path.pid) : null;
  const out = await must(`pgbench -M ${mode} via ${path.name}`, run(tool('pgbench'), [
    '-S', '-n', '-M', mode, '-c', String(CLIENTS), '-j', String(THREADS), '-T', String(seconds),
    '-h', '127.0.0.1', '-p', String(path.port), '-U', path.user, DATABASE,
  ], { env: clientEnv(path) }));
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out);
  const failed = /number of failed transactions: (\d+)/.exec(out);
  if (!tps) throw new Error(`pgbench via ${path.name}: no TPS in its output:\n${out}`);
  if (failed && Number(failed[1]) > 0) throw new Error(`pgbench via ${path.name}: ${failed[1]} failed transactions:\n${out}`);
  const cpuAfter = path.pid ? cpuSeconds(path.pid) : null;
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? NaN);
  const perTransaction = (before: number, after: number) => ((after - before) * 1e6) / transactions;
  const cpuUs = cpuBefore && cpuAfter && transactions > 0
    ? { all: perTransaction(cpuBefore.all, cpuAfter.all), main: perTransaction(cpuBefore.main, cpuAfter.main) }
    : null;
  return { tps: Number(tps[1]), cpuUs };
}

/** Milliseconds per fetch of `sql` on one psql connection: a warm-up, then MASK_RUNS timed runs. */
async function fetchTimes(path: Path, sql: string): Promise<number[]> {
  const script = ['\\o /dev/null', sql, '\\timing on', ...Array.from({ length: MASK_RUNS }, () => sql)].join('\n');
  const out = await must(`psql fetch via ${path.name}`, psql(path, ['-A', '-t'], `${script}\n`));
  const times = [...out.matchAll(/^Time: ([\d.]+) ms/gm)].map((m) => Number(m[1]));
  if (times.length !== MASK_RUNS) throw new Error(`psql via ${path.name}: expected ${MASK_RUNS} timings, got:\n${out}`);
  return times;
}

const select = (table: string) => `SELECT id, name, email, ssn, phone, created_at FROM ${table};`;
const maskedSelect = select('customers');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number, width = 10) => Math.round(n).toLocaleString('en-US').padStart(width);

// ── The run ─────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  if (PROFILE && !['prepared', 'simple', 'masking'].includes(PROFILE)) throw new Error(`PROFILE=${String(PROFILE)}: say PROFILE=prepared, simple or masking`);
  for (const [file, fix] of [[CLI, 'make build'], [BUNDLE, 'make bundle']] as const) {
    if (!existsSync(file)) throw new Error(`${file} is missing; run \`${fix}\` (make bench-postgres does)`);
  }
  const pgbouncerBin = which('pgbouncer');
  if (!pgbouncerBin) throw new Error('pgbouncer is not installed; run `make system-deps` (Debian package "pgbouncer")');

  const owner = serverOwner();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-pg-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  if (owner) chownSync(dir, owner.uid, owner.gid);

  // PostgreSQL, with the bench role logging in by SCRAM over TCP.
  const server: PostgresServer = await startPostgres({ hba: [`host all ${ROLE} 127.0.0.1/32 scram-sha-256`] });
  onCleanup(() => server.stop());
  const pgPort = Number(new URL(server.url).port);
  const superuser: Path = { name: 'superuser', label: 'superuser', port: pgPort, user: 'postgres', password: () => '' };
  const direct: Path = { name: 'direct', label: 'direct', port: pgPort, user: ROLE, password: () => PASSWORD };
  await must('creating the bench role', run(tool('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(pgPort), '-U', 'postgres', '-d', 'postgres'], {
    env: clientEnv(superuser),
    input: `SET password_encryption = 'scram-sha-256';\nCREATE ROLE ${ROLE} LOGIN PASSWORD '${PASSWORD}';\nCREATE DATABASE ${DATABASE} OWNER ${ROLE};\n`,
  }));
  const versions = {
    postgres: (await must('postgres --version', run(tool('postgres'), ['--version']))).trim().replace(/^postgres \(PostgreSQL\) /, ''),
    pgbouncer: (await must('pgbouncer --version', run(pgbouncerBin, ['--version']))).split('\n')[0]!.replace(/^PgBouncer /i, ''),
  };

  console.error(`bench-postgres: pgbench -i -s ${SCALE}, and ${MASK_ROWS.toLocaleString('en-US')} customers for the masking run`);
  await must('pgbench -i', run(tool('pgbench'), ['-i', '-q', '-s', String(SCALE), '-h', '127.0.0.1', '-p', String(pgPort), '-U', ROLE, DATABASE], { env: clientEnv(direct) }));
  const shape = `(id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, ssn text NOT NULL, phone text, created_at date NOT NULL, notes text)`;
  const rows = `SELECT i, 'Customer ' || i, 'customer' || i || '@example.com',
    lpad((100 + i % 565)::text, 3, '0') || '-' || lpad((10 + i % 89)::text, 2, '0') || '-' || lpad((1000 + i % 8999)::text, 4, '0'),
    '+1 415 555 ' || lpad((i % 10000)::text, 4, '0'), date '2024-01-01' + i % 365, NULL FROM generate_series(1, ${MASK_ROWS}) AS i`;
  await must('seeding customers', psql(direct, [], `
CREATE TABLE customers ${shape};
CREATE TABLE contacts ${shape};
INSERT INTO customers ${rows};
INSERT INTO contacts ${rows};
VACUUM ANALYZE customers;
VACUUM ANALYZE contacts;
`));

  // pgbouncer, as the postgres OS user when root (it refuses to run as root).
  const bouncerPort = await freePort();
  const userlist = join(dir, 'userlist.txt');
  const ini = join(dir, 'pgbouncer.ini');
  writeFileSync(userlist, `"${ROLE}" "${PASSWORD}"\n`, { mode: 0o600 });
  writeFileSync(ini, `[databases]
${DATABASE} = host=127.0.0.1 port=${pgPort} dbname=${DATABASE}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${bouncerPort}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = ${userlist}
pool_mode = session
default_pool_size = ${CLIENTS + 2}
max_client_conn = ${CLIENTS * 4 + 10}
logfile = ${join(dir, 'pgbouncer.log')}
log_connections = 0
log_disconnections = 0
`);
  if (owner) for (const f of [userlist, ini]) chownSync(f, owner.uid, owner.gid);
  const bouncerLog = join(dir, 'pgbouncer.out');
  const bouncer = daemon('pgbouncer', pgbouncerBin, [ini], bouncerLog, owner ? { uid: owner.uid, gid: owner.gid, cwd: dir } : { cwd: dir });
  await waitFor('pgbouncer', bouncer, bouncerLog, listening(bouncerPort));
  const viaBouncer: Path = { name: 'pgbouncer', label: 'pgbouncer (session)', port: bouncerPort, user: ROLE, password: () => PASSWORD, pid: bouncer.pid };

  // The ceiling for any Node proxy: bytes relayed, nothing else.
  const relayPort = await freePort();
  const relayLog = join(dir, 'noop-relay.log');
  const relay = daemon('noop-relay', process.execPath, ['--import', 'tsx', join(here, 'noop-relay.ts'), String(relayPort), String(pgPort)], relayLog, { cwd: root });
  await waitFor('noop-relay', relay, relayLog, listening(relayPort));
  const viaNodeRelay: Path = { name: 'node-relay', label: 'no-op Node relay', port: relayPort, user: ROLE, password: () => PASSWORD, pid: relay.pid };

  // Gatehouse, with the upstream password from the environment.
  const apiPort = await freePort();
  const proxyPort = await freePort();
  const config = join(dir, 'gatehouse.yaml');
  writeFileSync(config, `listeners:
  api: {address: 127.0.0.1:${apiPort}}
  postgres: {address: 127.0.0.1:${proxyPort}}
policy:
  bundle: {source: ${BUNDLE}}
identity:
  dev_issuer: {enabled: true, key_file: dev-issuer.jwk}
store:
  sqlite: {path: gatehouse.db}
targets:
  - name: ${TARGET}
    kind: postgres
    labels: {env: bench}
    upstream: {address: 127.0.0.1:${pgPort}, database: ${DATABASE}}
    credentials:
      username: ${ROLE}
      password: \${env:BENCH_DB_PASSWORD}
`);
  const serveLog = join(dir, 'gatehouse.log');
  const cpuProfileDir = join(dir, 'cpu-profile');
  const nodeArgs = PROFILE ? ['--cpu-prof', '--cpu-prof-dir', cpuProfileDir] : [];
  const serve = daemon('gatehouse serve', process.execPath, [...nodeArgs, CLI, 'serve', '--config', config], serveLog, {
    env: { ...process.env, BENCH_DB_PASSWORD: PASSWORD },
  });
  await waitFor('gatehouse serve', serve, serveLog, async () => (await fetch(`http://127.0.0.1:${apiPort}/health`)).ok && (await listening(proxyPort)()));
  const token = (await must('gatehouse token', run(process.execPath, [CLI, 'token', '-c', config, '--sub', 'agent:bench', '--groups', 'analysts', '--ttl', '1h']))).trim();
  const viaGatehouse: Path = { name: 'gatehouse', label: 'gatehouse', port: proxyPort, user: TARGET, password: () => token, pid: serve.pid };

  // Every path answers, and Gatehouse masks what it should.
  for (const path of [direct, viaBouncer, viaNodeRelay, viaGatehouse]) {
    const count = (await must(`SELECT via ${path.name}`, psql(path, ['-A', '-t', '-c', 'SELECT count(*) FROM pgbench_branches']))).trim();
    if (count !== String(SCALE)) throw new Error(`${path.name}: pgbench_branches has ${count} rows, expected ${SCALE}`);
  }
  const sample = 'SELECT email, ssn FROM customers WHERE id = 1';
  const plain = (await must('sample direct', psql(direct, ['-A', '-t', '-c', sample]))).trim();
  const masked = (await must('sample via gatehouse', psql(viaGatehouse, ['-A', '-t', '-c', sample]))).trim();
  const [plainEmail, plainSsn] = plain.split('|');
  const [maskedEmail, maskedSsn] = masked.split('|');
  if (maskedEmail === plainEmail || maskedSsn === plainSsn) {
    throw new Error(`Gatehouse did not mask customers.email and .ssn (direct: ${plain}, through Gatehouse: ${masked}); the masking figure would mean nothing`);
  }

  const cpuCount = cpus().length;
  console.log(`postgres proxy: pgbench -S -n -c ${CLIENTS} -j ${THREADS} -T ${SECONDS}, scale ${SCALE} (${(SCALE * 100_000).toLocaleString('en-US')} accounts), ` +
    `PostgreSQL ${versions.postgres}, pgbouncer ${versions.pgbouncer} (pool_mode=session), ${cpuCount} CPUs shared by everything; ` +
    `${ROUNDS === 1 ? 'one run' : `median of ${ROUNDS} runs`} per path`);

  // Warm the caches (shared buffers, the gateway's JIT and decision cache) before anything counts.
  await pgbench(direct, 'prepared', 3);
  await pgbench(viaGatehouse, 'simple', 3);

  if (PROFILE) {
    // Samples carry CLOCK_MONOTONIC times, the clock hrtime reads: only the timed run counts.
    const from = Number(process.hrtime.bigint() / 1000n);
    if (PROFILE === 'masking') {
      const ms = median(await fetchTimes(viaGatehouse, maskedSelect));
      console.log(`  gatehouse under --cpu-prof, masked SELECT of ${MASK_ROWS.toLocaleString('en-US')} rows: ${fmt(MASK_ROWS / (ms / 1000), 0)} rows/s (the profiler itself costs some)`);
    } else {
      const metricsBefore = await scrape(apiPort);
      const { tps, cpuUs } = await pgbench(viaGatehouse, PROFILE, SECONDS);
      console.log(`  gatehouse under --cpu-prof, -M ${PROFILE}: ${fmt(tps, 0)} TPS, ${cpuUs ? `${cpuUs.all.toFixed(0)} µs (main thread ${cpuUs.main.toFixed(0)} µs)` : '?'} of gateway CPU per transaction (the profiler itself costs some)`);
      console.log(`  ${auditWrites(metricsBefore, await scrape(apiPort))}`);
    }
    const to = Number(process.hrtime.bigint() / 1000n);
    await stop(serve);
    console.log(reportProfiles(cpuProfileDir, PROFILE_DIR, `gatehouse-pgbench-${PROFILE}`, { window: { from, to }, title: 'CPU profile of the Postgres proxy' }));
    return;
  }

  const paths = [direct, viaBouncer, viaNodeRelay, viaGatehouse];
  const verdicts: string[] = [];
  for (const mode of ['prepared', 'simple'] as const) {
    const runs = new Map<string, Run[]>(paths.map((p) => [p.name, []]));
    // Only Gatehouse's runs write its audit trail: the difference is theirs.
    const metricsBefore = await scrape(apiPort);
    for (let round = 0; round < ROUNDS; round++) {
      // Each round starts with another path, so none always runs first (or right after the slowest).
      for (let i = 0; i < paths.length; i++) {
        const path = paths[(round + i) % paths.length]!;
        runs.get(path.name)!.push(await pgbench(path, mode, SECONDS));
      }
    }
    const metricsAfter = await scrape(apiPort);
    const tps = (path: Path) => median(runs.get(path.name)!.map((r) => r.tps));
    // The proxy's own CPU time (user + system, /proc) over the transactions pgbench counted:
    // on a shared 2-core box, what the others pay for the proxy.
    const cpu = (path: Path) => {
      const us = runs.get(path.name)!.flatMap((r) => (r.cpuUs === null ? [] : [r.cpuUs]));
      if (us.length === 0) return '';
      const all = median(us.map((u) => u.all));
      const main = median(us.map((u) => u.main));
      // A proxy with threads besides its main one (Gatehouse's SQLite writer) shows both.
      return Math.abs(all - main) < 1 ? `${all.toFixed(0)} µs` : `${all.toFixed(0)} µs (main ${main.toFixed(0)})`;
    };
    console.log(`  -M ${mode.padEnd(20)}${'TPS'.padStart(10)}${'÷ direct'.padStart(10)}${'proxy CPU per transaction'.padStart(30)}`);
    for (const path of paths) {
      console.log(`    ${path.label.padEnd(20)}${fmt(tps(path), 10)}${`${(tps(path) / tps(direct)).toFixed(2)}×`.padStart(10)}${cpu(path).padStart(30)}`);
    }
    console.log(`    gatehouse's ${auditWrites(metricsBefore, metricsAfter)}`);
    const rb = tps(viaBouncer) / tps(direct);
    const rg = tps(viaGatehouse) / tps(direct);
    const met = rg >= TARGET_RATIO && rg > rb;
    verdicts.push(`-M ${mode}: ${met ? 'met' : 'NOT met'} (${rg.toFixed(2)}× ${rg >= TARGET_RATIO ? '≥' : '<'} ${TARGET_RATIO}×, ${rg > rb ? 'above' : 'not above'} pgbouncer's ${rb.toFixed(2)}×)`);
  }
  console.log(`  target (gatehouse ≥ ${TARGET_RATIO}× direct and above pgbouncer's ratio): ${verdicts.join('; ')}`);

  const directMs = median(await fetchTimes(direct, maskedSelect));
  const maskedMs = median(await fetchTimes(viaGatehouse, maskedSelect));
  const relayMs = median(await fetchTimes(viaGatehouse, select('contacts')));
  const rps = (ms: number) => MASK_ROWS / (ms / 1000);
  console.log(`masking: SELECT of ${MASK_ROWS.toLocaleString('en-US')} rows × 6 columns, psql -A -t to /dev/null on one connection, median of ${MASK_RUNS} fetches`);
  console.log(`  direct (peer)                               ${fmt(rps(directMs))} rows/s  ${directMs.toFixed(0).padStart(6)} ms`);
  console.log(`  gatehouse, email+phone partial, ssn redact ${fmt(rps(maskedMs))} rows/s  ${maskedMs.toFixed(0).padStart(6)} ms  ${(directMs / maskedMs).toFixed(2)}× direct`);
  console.log(`  gatehouse, same shape, no mask rule         ${fmt(rps(relayMs))} rows/s  ${relayMs.toFixed(0).padStart(6)} ms  ${(directMs / relayMs).toFixed(2)}× direct`);
  console.log(`  target ≥ ${TARGET_MASK_ROWS_PER_SECOND.toLocaleString('en-US')} rows/s with 2 of 6 masked (here 3 of 6), end to end: ${rps(maskedMs) >= TARGET_MASK_ROWS_PER_SECOND ? 'met' : 'NOT met'}`);
}

let failed = false;
try {
  await main();
} catch (err) {
  failed = true;
  console.error(`bench-postgres: ${(err as Error).message}`);
} finally {
  await cleanUp();
}
process.exit(failed ? 1 : 0);
