/**
 * The processes a benchmark starts (servers, load generators, peers) and the
 * clean-up that stops them, whether the bench ends, fails or is interrupted.
 * Importing this module installs the signal handlers.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';

const cleanups: (() => Promise<void> | void)[] = [];
let cleaning: Promise<void> | null = null;

/** Registers a step of the clean-up; steps run in reverse order of registration. */
export function onCleanup(step: () => Promise<void> | void): () => void {
  cleanups.push(step);
  return () => {
    const at = cleanups.indexOf(step);
    if (at >= 0) cleanups.splice(at, 1);
  };
}

export function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const step of cleanups.reverse()) {
      try {
        await step();
      } catch (err) {
        console.error(`cleanup: ${(err as Error).message}`);
      }
    }
  })();
  return cleaning;
}

// `on`, not `once`: under `npx tsx`, Ctrl-C arrives twice (from the terminal
// and relayed by tsx), and a second one must not kill the clean-up midway.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (cleaning) return;
    console.error(`\n${signal}: stopping everything the bench started`);
    void cleanUp().then(() => process.exit(130));
  });
}

export interface Result { code: number; stdout: string; stderr: string }

/** Runs a command to completion; if the bench is interrupted meanwhile, the clean-up stops it. */
export function run(command: string, args: string[], options: SpawnOptions & { input?: string } = {}): Promise<Result> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['pipe', 'pipe', 'pipe'] });
    const forget = onCleanup(() => stop(child));
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', (err) => {
      forget();
      reject(err);
    });
    child.once('close', (code) => {
      forget();
      resolveRun({ code: code ?? -1, stdout, stderr });
    });
    // A child that exits without reading its input (a failing tool) must not crash the bench: its exit code says what happened.
    child.stdin!.on('error', () => {});
    child.stdin!.end(options.input ?? '');
  });
}

export async function must(what: string, result: Promise<Result>): Promise<string> {
  const r = await result;
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Starts a long-running child with its output in `log`; stopping it is registered for clean-up. */
export function daemon(name: string, command: string, args: string[], log: string, options: SpawnOptions = {}): ChildProcess {
  const fd = openSync(log, 'a');
  const child = spawn(command, args, { ...options, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  onCleanup(() => stop(child));
  child.once('error', (err) => console.error(`${name}: ${err.message}`));
  return child;
}

/** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
export async function stop(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

// The tests' own, so benches and tests pick ports the same way.
export { freePort } from '../../tests/helpers/cli.js';

/** Waits until `ready` says yes; a child that exits first, or a minute without, fails with the tail of its log. */
export async function waitFor(what: string, child: ChildProcess, log: string, ready: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + 60_000;
  for (;;) {
    if (await ready().catch(() => false)) return;
    if (child.exitCode !== null || Date.now() > until) {
      throw new Error(`${what} did not come up:\n${existsSync(log) ? readFileSync(log, 'utf8').slice(-4000) : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const listening = (port: number) => () => new Promise<boolean>((r) => {
  const socket = connect(port, '127.0.0.1', () => { socket.end(); r(true); });
  socket.once('error', () => r(false));
});

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** User + system CPU seconds a process has used so far, all threads and the main thread (/proc, Linux); null once it is gone. */
export function cpuSeconds(pid: number): { all: number; main: number } | null {
  // Fields after the command name, which is in parentheses and may hold spaces.
  const seconds = (stat: string) => {
    const fields = readFileSync(stat, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  };
  try {
    return { all: seconds(`/proc/${pid}/stat`), main: seconds(`/proc/${pid}/task/${pid}/stat`) };
  } catch {
    return null;
  }
}
