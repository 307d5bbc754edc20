/** Runs the gatehouse CLI from source, as a separate process, the way a user would. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { repoRoot } from './opa.js';

const ENTRY = ['--import', 'tsx', 'cli/main.ts'];

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const res = spawnSync(process.execPath, [...ENTRY, ...args], {
    cwd: repoRoot,
    input: options.input,
    encoding: 'utf8',
    env: { ...process.env, ...options.env },
  });
  if (res.error) throw res.error;
  return { code: res.status ?? -1, stdout: res.stdout, stderr: res.stderr };
}

/** runCli without blocking this process: for a CLI talking to a server the test itself runs. */
export function runCliAsync(args: readonly string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...ENTRY, ...args], { cwd: repoRoot, env: process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

export function startCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, [...ENTRY, ...args], { cwd: repoRoot, env: { ...process.env, ...env } });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  return Object.assign(child, { output: () => output });
}

/** A TCP port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts `gatehouse serve` and resolves once its /health answers 200. */
export async function startServe(configFile: string, api: string, env: NodeJS.ProcessEnv = {}): Promise<ReturnType<typeof startCli>> {
  const server = startCli(['serve', '--config', configFile], env);
  const until = Date.now() + 30_000;
  for (;;) {
    if ((await fetch(`${api}/health`).catch(() => null))?.ok) return server;
    if (server.exitCode !== null || Date.now() > until) {
      server.kill();
      throw new Error(`gatehouse serve did not come up:\n${server.output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A fresh token from a config's dev issuer, minted by `gatehouse token` as a user would; `human` for approvers. */
export function devToken(config: string, sub: string, groups: readonly string[], options: { human?: boolean; ttl?: string } = {}): string {
  const res = runCli(['token', '-c', config, '--sub', sub, '--groups', groups.join(','), ...(options.human ? ['--human'] : []), ...(options.ttl ? ['--ttl', options.ttl] : [])]);
  if (res.code !== 0) throw new Error(`gatehouse token failed: ${res.stderr}`);
  return res.stdout.trim();
}

/** Stops a `gatehouse serve` started by startServe, as an operator's SIGTERM would, and waits for it to exit. */
export async function stopServe(serve: ReturnType<typeof startCli>): Promise<void> {
  if (serve.exitCode !== null) return;
  const exited = new Promise((resolve) => serve.once('exit', resolve));
  serve.kill('SIGTERM');
  await exited;
}
