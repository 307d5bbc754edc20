/**
 * Long SQL through the Postgres proxy: analysed on a worker thread, so a
 * session sending megabyte statements does not hold every other session
 * while the parser reads them (red-team round 26), and capped in how much
 * policy input one message may make. Real PostgreSQL and node-postgres.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { outcome } from '../helpers/pg-outcome.js';
import { startProxyStack, type ProxyStack } from '../helpers/pg-proxy.js';

let stack: ProxyStack;

beforeAll(async () => {
  stack = await startProxyStack();
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

/** `SELECT f0(), f1(), …`: the costliest SQL to parse per byte that a client can send. */
const calls = (count: number) => `SELECT ${Array.from({ length: count }, (_, i) => `f${i}()`).join(', ')}`;

async function analyst(sub: string): Promise<pg.Client> {
  return (await stack.connectAgent(sub, ['analysts'])).client;
}

describe('long SQL', () => {
  // First: its audit export reads the trail before the next test's 800 KB statement is in it.
  it('naming more than 10,000 statements, tables and function calls in one message is denied, saying so, and audited', async () => {
    const client = await analyst('too-many');
    try {
      const result = await outcome(client, calls(10_001));
      expect(result.error?.code).toBe('42501');
      expect(result.error?.message).toContain('it holds 10002 statements, tables and function calls, over the 10000 the gateway decides in one message; send it in parts');
      expect((await outcome(client, 'SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await client.end();
    }
    expect(runCli(['audit', 'export', '-c', stack.config]).stdout).toContain('over the 10000 the gateway decides in one message');
  });

  it('is analysed off the main thread: another session is answered while it is read', async () => {
    const [sender, other] = await Promise.all([analyst('long-sender'), analyst('short-sender')]);
    try {
      // About 800 KB, under the 1 MiB message cap: half a second or more of parsing. The gateway refuses it once read
      // (over the cap on what one message may name), without asking the database: nothing else answers it.
      let settled = false;
      const long = outcome(sender, calls(90_000)).finally(() => (settled = true));
      let answeredBefore = 0;
      while (!settled) {
        await other.query('SELECT 1');
        if (!settled) answeredBefore += 1;
      }
      const result = await long;
      expect(result.error?.code).toBe('42501');
      expect(result.error?.message).toContain('it holds 90001 statements, tables and function calls');
      // Read on the main thread, no query of the other session's is answered until it is refused (one may race it).
      expect(answeredBefore).toBeGreaterThan(2);
    } finally {
      await Promise.all([sender.end(), other.end()]);
    }
  });
});
