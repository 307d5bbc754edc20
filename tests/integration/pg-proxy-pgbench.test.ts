/**
 * pgbench, the real client, through the Postgres proxy: the select-only
 * script in all three query modes as a read-only analyst, and the default
 * TPC-B-like write script as a dba. pgbench's own summary says how many
 * transactions ran and how many failed; the database is checked directly.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxyStack, type ProxyStack } from '../helpers/pg-proxy.js';
import { postgresBinDir } from '../helpers/postgres.js';

let stack: ProxyStack;
let direct: pg.Client;
let analyst: string;
let dba: string;
const pgbench = join(postgresBinDir(), 'pgbench');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(pgbench, args, { env: { ...process.env, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** pgbench through the proxy: PGPASSWORD is the agent's token, the user names the target. */
function throughProxy(token: string, args: string[]): Promise<Run> {
  return run([...args, '-h', '127.0.0.1', '-p', String(stack.proxyPort), '-U', 'orders-db', 'orders'], { PGPASSWORD: token });
}

interface Summary {
  processed: number;
  failed: number;
  mode: string;
}

function summary(res: Run): Summary {
  const processed = res.stdout.match(/^number of transactions actually processed: (\d+)/m);
  const failed = res.stdout.match(/^number of failed transactions: (\d+)/m);
  const mode = res.stdout.match(/^query mode: (\w+)/m);
  if (!processed || !failed || !mode) throw new Error(`no pgbench summary (exit ${res.code}):\n${res.stdout}\n${res.stderr}`);
  return { processed: Number(processed[1]), failed: Number(failed[1]), mode: mode[1]! };
}

beforeAll(async () => {
  stack = await startProxyStack();
  // Initialised directly, as the superuser: the proxy is not what is being set up.
  const init = await run(['-i', '-s', '1', '-q', stack.pg.urlFor('orders')]);
  if (init.code !== 0) throw new Error(`pgbench -i failed:\n${init.stderr}`);
  direct = await stack.direct();
  // The gateway's upstream role owns the tables, so the dba's default run can VACUUM and TRUNCATE them through the proxy.
  for (const table of ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history']) {
    await direct.query(`ALTER TABLE ${table} OWNER TO gatehouse_orders`);
  }
  analyst = stack.token('bench-analyst', ['analysts']);
  dba = stack.token('bench-dba', ['dba']);
}, 120_000);

async function historyRows(): Promise<number> {
  return Number((await direct.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_history')).rows[0]!.n);
}

afterAll(async () => {
  await direct?.end();
  await stack?.stop();
});

describe('pgbench -S through the proxy as an analyst', () => {
  for (const mode of ['simple', 'extended', 'prepared']) {
    it(`-M ${mode}: every transaction succeeds`, async () => {
      // -n: no VACUUM first; the analyst may only read.
      const res = await throughProxy(analyst, ['-n', '-S', '-T', '3', '-c', '2', '-M', mode]);
      expect(res.stderr).not.toMatch(/error|denied/i);
      expect(res.code).toBe(0);
      const result = summary(res);
      expect(result.mode).toBe(mode);
      expect(result.failed).toBe(0);
      expect(result.processed).toBeGreaterThan(0);
    });
  }

  it('the analyst cannot run the write script', async () => {
    const before = await historyRows();
    const res = await throughProxy(analyst, ['-n', '-t', '1', '-c', '1', '-M', 'prepared']);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('gatehouse denied the statement');
    expect(res.stderr).toContain('UPDATE writes public.pgbench_accounts');
    expect(await historyRows()).toBe(before);
  });
});

describe('pgbench TPC-B-like through the proxy as a dba', () => {
  it('is allowed without approval (dba holds write access; prod approvals are for sre-agents) and writes rows', async () => {
    expect(await historyRows()).toBe(0);
    // The default run: VACUUM and TRUNCATE pgbench_history through the proxy first, then the script.
    const res = await throughProxy(dba, ['-T', '2', '-c', '2', '-M', 'prepared']);
    expect(res.stderr).not.toMatch(/denied|held for approval|error|warning/i);
    expect(res.code).toBe(0);
    const result = summary(res);
    expect(result.mode).toBe('prepared');
    expect(result.failed).toBe(0);
    expect(result.processed).toBeGreaterThan(0);
    // One history row per TPC-B transaction.
    expect(await historyRows()).toBe(result.processed);
  });
});
