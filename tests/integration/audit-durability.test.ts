/**
 * `kill -9` under load loses no acknowledged event: a decision's answer
 * carries where its audit event landed, and that event must be in the
 * store, intact and chained, after the process is killed mid-stream.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SqliteStore } from '../../engine/store/sqlite/sqlite-store.js';
import { exampleAction } from '../helpers/actions.js';
import { freePort, runCli, startServe } from '../helpers/cli.js';
import { makeBundle } from '../helpers/gateway-bundle.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';

interface Receipt {
  decision_id: string;
  audit: { stream: string; seq: number; hash: string };
}

let dir: string;
let api: string;
const configFile = () => join(dir, 'gatehouse.yaml');
const action = exampleAction('orders-select.json');

beforeAll(async () => {
  dir = makeTempDir('gatehouse-kill9-');
  makeBundle({ out: join(dir, 'bundle.tar.gz'), revision: 'kill9' });
  const port = await freePort();
  api = `http://127.0.0.1:${port}`;
  writeFileSync(configFile(), `
listeners:
  api:
    address: 127.0.0.1:${port}
policy:
  bundle:
    source: bundle.tar.gz
identity:
  dev_issuer:
    enabled: true
    key_file: dev-issuer.jwk
audit:
  stream: kill9
  checkpoint:
    key_file: checkpoint.pem
    interval_seconds: 1
store:
  sqlite:
    path: gatehouse.db
targets:
  - name: orders-db
    kind: postgres
    labels: {env: prod}
    upstream: {address: 127.0.0.1:5432, database: orders}
    credentials:
      username: gatehouse
      password: \${env:HOME}
`);
  expect(runCli(['audit', 'keygen', '--out', join(dir, 'checkpoint.pem')]).code).toBe(0);
}, 60_000);

afterAll(() => removeDir(dir));

const serve = () => startServe(configFile(), api);

/** Sends decisions from `workers` concurrent callers until the server dies; returns every acknowledged one. */
async function load(token: string, workers: number, onAck: (count: number) => void): Promise<Receipt[]> {
  const acked: Receipt[] = [];
  await Promise.all(Array.from({ length: workers }, async () => {
    for (;;) {
      let receipt: Receipt;
      try {
        const res = await fetch(`${api}/v1/authorize`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ target: 'orders-db', action }),
        });
        receipt = (await res.json()) as Receipt;
      } catch {
        return; // the server is gone
      }
      acked.push(receipt);
      onAck(acked.length);
    }
  }));
  return acked;
}

it('keeps every acknowledged event through kill -9, and the chain verifies and continues', async () => {
  const token = runCli(['token', '-c', configFile(), '--sub', 'agent-analyst-1', '--groups', 'analysts']).stdout.trim();
  const server = await serve();
  const exited = new Promise((resolve) => server.once('exit', resolve));
  const acked = await load(token, 8, (count) => {
    if (count === 200) server.kill('SIGKILL');
  });
  await exited;
  expect(acked.length).toBeGreaterThanOrEqual(200);

  const store = SqliteStore.open({ path: join(dir, 'gatehouse.db'), logger: pino({ level: 'silent' }) });
  const stored = new Map<number, { hash: string; event: string }>();
  for await (const record of store.readAudit({ stream: 'kill9' })) stored.set(record.seq, record);
  await store.close();
  for (const receipt of acked) {
    const record = stored.get(receipt.audit.seq);
    expect(record, `acknowledged event #${receipt.audit.seq}`).toBeDefined();
    expect(record!.hash).toBe(receipt.audit.hash);
    expect(record!.event).toContain(receipt.decision_id);
  }

  const verified = runCli(['audit', 'verify', '-c', configFile()]);
  expect(verified.code, verified.stdout + verified.stderr).toBe(0);

  // A restarted gateway continues the same chain from its durable head.
  const again = await serve();
  const next = await load(token, 1, (count) => {
    if (count === 5) again.kill('SIGTERM');
  });
  expect(next[0]!.audit.seq).toBe(Math.max(...stored.keys()) + 1);
  await new Promise((resolve) => again.once('exit', resolve));
  expect(runCli(['audit', 'verify', '-c', configFile()]).code).toBe(0);
}, 120_000);
