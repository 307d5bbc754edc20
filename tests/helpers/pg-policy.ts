/**
 * Real SQL through the real analyser (libpg-query) and the project's
 * compiled bundle, as the Postgres proxy decides it, for tests of the
 * postgres policy: an analyst (read grant on orders-db) and a DBA (write).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import type { Decision } from '../../engine/policy/decision.js';
import type { PolicyEvaluator } from '../../engine/policy/evaluator.js';
import { analyseSql } from '../../proxies/postgres/sql/analyse.js';
import { projectEvaluator } from './gateway-bundle.js';
import { makeTempDir, removeDir } from './opa.js';

export const analyst = { sub: 'agent:report-bot', iss: 'https://idp.example.com', groups: ['analysts'], agent: true, act: { sub: 'alice@example.com' } as { sub: string } | null, claims: {} };
export const dba = { ...analyst, sub: 'bob@example.com', groups: ['dba'], act: null };
export type PolicyIdentity = typeof analyst;

/** Builds the bundle once for the test file and returns how to decide a statement text with it. */
export function postgresPolicy(): (identity: PolicyIdentity, text: string) => Promise<Decision> {
  let dir: string;
  let evaluator: PolicyEvaluator;
  beforeAll(async () => {
    dir = makeTempDir('gatehouse-pg-policy-');
    evaluator = await projectEvaluator(join(dir, 'bundle.tar.gz'));
  });
  afterAll(() => removeDir(dir));

  return async (identity, text) => {
    const input = {
      identity,
      target: { name: 'orders-db', kind: 'postgres', labels: { env: 'prod', data: 'pii' } },
      session: { id: 'sess-policy' },
      now_ns: 1767225600000000000,
      approval: null,
      postgres: { database: 'orders', role: 'gatehouse_orders', protocol: 'simple', text, statements: await analyseSql(text) },
    };
    const { decision, metadata } = evaluator.evaluate('gatehouse/postgres/decision', input);
    expect(metadata.failure, decision.reasons.join('; ')).toBeUndefined();
    return decision;
  };
}
