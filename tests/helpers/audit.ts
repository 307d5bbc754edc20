/** Real audit trails on a real SQLite store, for the audit tests and the benchmark. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { AuditLog } from '../../engine/audit/audit-log.js';
import { Checkpointer } from '../../engine/audit/checkpointer.js';
import { decisionEvent, type DecisionAction, type DecisionFacts } from '../../engine/audit/events.js';
import { FileCheckpointKey, generateCheckpointKey } from '../../engine/audit/key-source.js';
import { SqliteStore } from '../../engine/store/sqlite/sqlite-store.js';
import type { Store } from '../../engine/store/store.js';

export const quietLogger = pino({ level: 'silent' });

export async function openSqlite(path: string): Promise<SqliteStore> {
  const store = SqliteStore.open({ path, logger: quietLogger });
  await store.migrate();
  return store;
}

/** A realistic decision: the i-th request of an agent acting for a human. */
export function sampleFacts(i: number, action: DecisionAction = i % 3 === 0 ? 'deny' : 'allow'): DecisionFacts {
  return {
    time: 1_750_000_000_000 + i * 1000,
    identity: { sub: 'agent-analyst-7', iss: 'https://idp.example.com', groups: ['analysts'], agent: true, act: { sub: 'alice@example.com' }, claims: {} },
    source_ip: '10.0.0.7',
    target: { name: 'orders-api', kind: 'http', labels: { env: 'prod' } },
    request: { protocol: 'http', method: 'GET', path: `/orders/${i}`, host: 'orders.internal' },
    summary: `GET /orders/${i}`,
    action,
    policy: {
      entrypoint: 'gatehouse/http/decision',
      bundle_revision: 'rev-1',
      decision_id: `decision-${i}`,
      reasons: action === 'allow' ? ['analysts may read orders'] : ['no grant for this path'],
      failure: null,
    },
    masked: [{ column: 'customer.email', detector: 'email', count: 1 }],
    approval_id: null,
    session_id: `session-${i % 5}`,
    action_hash: 'a'.repeat(64),
  };
}

export interface WrittenTrail {
  dbPath: string;
  configPath: string;
  keyPath: string;
  exportPath: string;
}

/**
 * Writes `events` decision events to stream `stream` through AuditLog, with a
 * checkpoint at start, after every `checkpointEvery` events, and at close
 * (`thenAppend` events go in after the decision events),
 * plus the gatehouse.yaml that names it all.
 */
export async function writeTrail(dir: string, options: { stream?: string; events?: number; checkpointEvery?: number; thenAppend?: object[] } = {}): Promise<WrittenTrail> {
  const stream = options.stream ?? 's1';
  const events = options.events ?? 30;
  const every = options.checkpointEvery ?? 10;
  const dbPath = join(dir, 'gatehouse.db');
  const keyPath = join(dir, 'checkpoint.pem');
  const exportPath = join(dir, 'checkpoint.json');
  writeFileSync(keyPath, generateCheckpointKey('ES256').privatePem, { mode: 0o600 });
  const configPath = join(dir, 'gatehouse.yaml');
  writeFileSync(configPath, [
    'policy:',
    '  bundle:',
    '    source: ./bundle.tar.gz',
    'store:',
    '  sqlite:',
    `    path: ${dbPath}`,
    'audit:',
    `  stream: ${stream}`,
    '  checkpoint:',
    `    key_file: ${keyPath}`,
    '    interval_seconds: 3600',
    `    export_file: ${exportPath}`,
    '',
  ].join('\n'));

  const store = await openSqlite(dbPath);
  const log = new AuditLog({ store, stream, maxBatch: 1000, logger: quietLogger });
  await log.start();
  const checkpointer = new Checkpointer({
    store, log, key: await FileCheckpointKey.load(keyPath, 'ES256'), intervalSeconds: 3600, exportFile: exportPath, logger: quietLogger,
  });
  await checkpointer.start();
  for (let i = 1; i <= events; i++) {
    await log.append(decisionEvent(sampleFacts(i), stream));
    if (i % every === 0 && i < events) await checkpointer.checkpoint();
  }
  for (const event of options.thenAppend ?? []) await log.append(event);
  await log.close();
  await checkpointer.stop();
  await store.close();
  return { dbPath, configPath, keyPath, exportPath };
}

/** Appends `n` events concurrently and returns where they landed. */
export function appendMany(log: AuditLog, n: number, from = 1): Promise<{ seq: number }[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => log.append(decisionEvent(sampleFacts(from + i), log.stream))));
}

export type { Store };
