/**
 * StatementDecider's memo of statement facts: bounded by what it holds, not
 * only by how many statements, so a client sending large distinct texts
 * cannot make a session hold gigabytes.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { AuthorizeResult } from '../../engine/authorize/authorizer.js';
import { StatementDecider } from '../../proxies/postgres/policy/statement-decider.js';
import { LiteralSettings } from '../../proxies/postgres/session/literal-settings.js';
import { loadSqlParser } from '../../proxies/postgres/sql/analyse.js';

beforeAll(() => loadSqlParser());

function decider(): { decider: StatementDecider; memo: () => Map<string, unknown>; asked: string[] } {
  const asked: string[] = [];
  const authorizer = {
    authorize: async (request: { action: unknown }) => {
      asked.push((request.action as { postgres: { text: string } }).postgres.text);
      return { decision: { action: 'allow', reasons: [], mask: [] } } as unknown as AuthorizeResult;
    },
    refuseInvalid: async () => ({ decision: { action: 'deny', reasons: [], mask: [] } }) as unknown as AuthorizeResult,
  };
  const identity = { sub: 'ann', iss: 'urn:test', groups: ['analysts'], agent: true, act: null, claims: {} };
  const instance = new StatementDecider(authorizer as never, { target: 'orders-db', database: 'orders', role: 'app', identity: identity as never, sessionId: 's', sourceIp: null, settings: new LiteralSettings() });
  return { decider: instance, memo: () => (instance as unknown as { memo: Map<string, unknown> }).memo, asked };
}

describe('StatementDecider memo', () => {
  it('remembers ordinary statements', async () => {
    const { decider: d, memo } = decider();
    await d.decide('SELECT id FROM orders', 'simple');
    await d.decide('SELECT id FROM orders', 'simple');
    expect(memo().size).toBe(1);
  });

  it('does not remember a text over 64 KB, and keeps what it holds within its budget', async () => {
    const { decider: d, memo, asked } = decider();
    // A comment keeps the text from sharing a literal shape: each is its own entry.
    for (let i = 0; i < 5; i++) await d.decide(`SELECT ${i} /* ${'x'.repeat(100_000)} */`, 'simple');
    expect(memo().size).toBe(0);
    expect(asked).toHaveLength(5);
    for (let i = 0; i < 300; i++) await d.decide(`SELECT ${i} /* ${'y'.repeat(30_000)} */`, 'simple');
    const held = [...memo().keys()].reduce((sum, key) => sum + key.length, 0);
    expect(held).toBeLessThanOrEqual(4 * 1024 * 1024);
    expect(memo().size).toBeGreaterThan(50);
  });
});
