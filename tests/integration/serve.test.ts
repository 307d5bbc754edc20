/**
 * The acceptance, end to end: `gatehouse serve` on a signed bundle,
 * decisions through the API and `policy eval --server`, an edit to
 * policies/data picked up live, and a tampered bundle refused.
 */
import { generateKeyPairSync } from 'node:crypto';
import { cpSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readBundleArchive } from '../../engine/bundle/archive.js';
import { freePort, runCli, startCli } from '../helpers/cli.js';
import { makeBundle } from '../helpers/gateway-bundle.js';
import { makeTempDir, packBundle, removeDir, repoRoot } from '../helpers/opa.js';
import { waitFor } from '../helpers/wait.js';

let dir: string;
let api: string;
let server: ReturnType<typeof startCli>;
const bundlePath = () => join(dir, 'bundle.tar.gz');

function build(revision: string): void {
  const out = join(dir, `${revision}.tar.gz`);
  makeBundle({ out, revision, policySrc: join(dir, 'policies'), signingKey: join(dir, 'signing.pem') });
  renameSync(out, bundlePath());
}

async function health(): Promise<{ status: string; policy: { revision: string | null; signature: string } }> {
  return (await fetch(`${api}/health`)).json() as never;
}

function evalOnServer(example: string): { decision: { action: string; reasons: string[] }; metadata: { bundle_revision: string } } {
  const res = runCli(['policy', 'eval', '--server', api, '-e', 'gatehouse/postgres/decision', '-i', `examples/inputs/${example}`]);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout);
}

beforeAll(async () => {
  dir = makeTempDir('gatehouse-serve-');
  cpSync(join(repoRoot, 'policies'), join(dir, 'policies'), { recursive: true });
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'signing.pem'), keys.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(dir, 'verify.pem'), keys.publicKey.export({ type: 'spki', format: 'pem' }));
  build('r1');

  const port = await freePort();
  api = `http://127.0.0.1:${port}`;
  writeFileSync(join(dir, 'gatehouse.yaml'), `
listeners:
  api:
    address: 127.0.0.1:${port}
policy:
  bundle:
    source: bundle.tar.gz
    poll_interval_ms: 100
    verification:
      required: true
      keys:
        - id: default
          algorithm: RS256
          key: \${file:verify.pem}
targets:
  - name: orders-db
    kind: postgres
    labels: {env: prod}
    upstream:
      address: 127.0.0.1:5432
      database: orders
    credentials:
      username: gatehouse
      password: \${env:E2E_DB_PASSWORD}
    approval:
      mode: hold
`);
  server = startCli(['serve', '--config', join(dir, 'gatehouse.yaml')], { E2E_DB_PASSWORD: 'e2e-secret-value' });
  await waitFor(async () => (await health().catch(() => undefined))?.policy.revision === 'r1', `gatehouse serve to come up:\n${server.output()}`);
});

afterAll(async () => {
  server?.kill('SIGTERM');
  removeDir(dir);
});

it('serves decisions from the signed bundle', async () => {
  expect(await health()).toMatchObject({ status: 'ok', policy: { revision: 'r1', signature: 'verified (key default)' } });
  expect(evalOnServer('analyst-select.json').decision.action).toBe('allow');
  const del = evalOnServer('analyst-delete.json');
  expect(del.decision.action).toBe('deny');
  expect(del.decision.reasons[0]).toMatch(/read-only access to orders-db/);
  expect(evalOnServer('sre-update-prod.json').decision.action).toBe('approve');
});

it('enforces an edited rule after `make bundle`, without a restart', async () => {
  const data = join(dir, 'policies/data/access/data.yaml');
  const edited = readFileSync(data, 'utf8').replace(/(name: analysts-read-orders[\s\S]*?access: )read/, '$1write');
  expect(edited).not.toBe(readFileSync(data, 'utf8'));
  writeFileSync(data, edited);
  build('r2');

  await waitFor(async () => (await health()).policy.revision === 'r2', 'revision r2 on /health');
  const del = evalOnServer('analyst-delete.json');
  expect(del.metadata.bundle_revision).toBe('r2');
  expect(del.decision.action).toBe('allow');
});

it('refuses a tampered signed bundle and keeps serving the old policy', async () => {
  const files = await readBundleArchive(readFileSync(bundlePath()));
  const data = JSON.parse(files.get('data.json')!.toString()) as { access: { grants: unknown[] } };
  data.access.grants.push({ name: 'backdoor', groups: ['interns'], targets: ['orders-db'], access: 'write' });
  files.set('data.json', Buffer.from(JSON.stringify(data)));
  writeFileSync(`${bundlePath()}.tmp`, await packBundle(files));
  renameSync(`${bundlePath()}.tmp`, bundlePath());

  await waitFor(async () => /gatehouse_bundle_rejections_total\{reason="tampered"\} 1/.test(await (await fetch(`${api}/metrics`)).text()), 'rejection metric');
  expect((await health()).policy.revision).toBe('r2');
  expect(server.output()).toMatch(/policy bundle rejected: bundle file \\"data.json\\" does not match the signature/);
  expect(evalOnServer('analyst-delete.json').metadata.bundle_revision).toBe('r2');
});

it('never logs the target credential', () => {
  expect(server.output()).not.toContain('e2e-secret-value');
});
