/**
 * psycopg 3 (Python, on libpq) through the Postgres proxy: server-side
 * parameter binding (extended protocol), binary results, pipeline mode, a
 * denied statement and a refused token, as an agent's Python code meets
 * them. psycopg is installed pinned into .tools/py by `make deps`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/opa.js';
import { startProxyStack, type ProxyStack } from '../helpers/pg-proxy.js';

const PYTHON = join(repoRoot, '.tools/py/bin/python');
const CLIENT = join(repoRoot, 'tests/fixtures/psycopg_client.py');

let stack: ProxyStack;
let analyst: string;

beforeAll(async () => {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run \`make deps\` (it installs psycopg into .tools/py)`);
  stack = await startProxyStack();
  analyst = stack.token('agent-analyst-py', ['analysts']);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

function run(scenario: string, token: string): Record<string, unknown> {
  const res = spawnSync(PYTHON, [CLIENT, scenario], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, PGHOST: '127.0.0.1', PGPORT: String(stack.proxyPort), PGUSER: 'orders-db', PGDATABASE: 'orders', PGPASSWORD: token },
  });
  expect(res.status, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as Record<string, unknown>;
}

describe('psycopg 3 through the proxy', () => {
  it('binds parameters server side and gets masked rows, in text and binary format', () => {
    const out = run('select_with_parameters', analyst) as { rows: unknown[][]; binary: unknown[] };
    expect(out.rows).toEqual([
      [1, 'Ada Lovelace', 'a***@example.com', '[REDACTED]'],
      [2, 'Alan Turing', 'a***@example.org', '[REDACTED]'],
    ]);
    expect(out.binary).toEqual(['g***@example.net', '[REDACTED]']);
  });

  it('raises InsufficientPrivilege (42501) with the policy\'s reasons for a denied statement, and the connection goes on', () => {
    const out = run('denied_then_usable', analyst);
    expect(out).toMatchObject({ sqlstate: '42501', class: 'InsufficientPrivilege', after: 3 });
    expect(out.message).toMatch(/read-only access to orders-db; DELETE writes public\.orders/);
  });

  it('runs pipeline mode: statements sent together, each decided and masked', () => {
    expect(run('pipeline', analyst)).toEqual({ results: ['Widget', 'a***@example.org', '7.25'] });
  });

  it('fails to connect with a clear message when the token is not a valid JWT', () => {
    expect(String(run('bad_token', 'not-a-token').error)).toMatch(/gatehouse refused the token: token rejected \(malformed\)/);
  });
});
