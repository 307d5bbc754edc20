/**
 * The acceptance, end to end with real processes: two `gatehouse
 * serve` sharing one PostgreSQL store, tokens from `gatehouse token`,
 * `gatehouse authorize` held in process A and approved through process B,
 * a ticket used once, the two-person rule, and `audit verify` on the result.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, runCli, startCli, startServe, type CliResult } from '../helpers/cli.js';
import { makeBundle } from '../helpers/gateway-bundle.js';
import { makeTempDir, removeDir, repoRoot as repoRootDir } from '../helpers/opa.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';

let dir: string;
let pg: PostgresServer;
const servers: Array<ReturnType<typeof startCli>> = [];
const api: string[] = [];
const config = (i: number) => join(dir, `gatehouse-${i}.yaml`);
const env = () => ({ GATEHOUSE_STORE_URL: pg.url, GATEHOUSE_SERVER: '', GATEHOUSE_TOKEN: '' });

function token(...args: string[]): string {
  const res = runCli(['token', '-c', config(0), ...args], { env: env() });
  expect(res.code, res.stderr).toBe(0);
  return res.stdout.trim();
}

function cli(args: string[]): CliResult {
  return runCli(args, { env: env() });
}

function authorize(server: string, jwt: string, target: string, action: string): CliResult {
  return cli(['authorize', '--server', server, '--token', jwt, '--target', target, '--input', `examples/actions/${action}`]);
}

/** Starts authorize in the background and resolves with the approval id once it says it is held. */
async function holdInBackground(server: string, jwt: string): Promise<{ id: string; done: Promise<{ code: number | null; output: string }> }> {
  const child = startCli(['authorize', '--server', server, '--token', jwt, '--target', 'orders-db', '--input', 'examples/actions/orders-update.json'], env());
  const done = new Promise<{ code: number | null; output: string }>((resolve) => child.on('exit', (code) => resolve({ code, output: child.output() })));
  const id = await waitFor(() => /held for approval ([0-9a-f-]{36})/.exec(child.output())?.[1], 'the request to be held');
  return { id, done };
}

function yamlFor(port: number, stream: string): string {
  return `
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
  stream: ${stream}
  checkpoint:
    key_file: checkpoint.pem
    interval_seconds: 1
    export_file: last-checkpoint-${stream}.json
store:
  postgres:
    url: \${env:GATEHOUSE_STORE_URL}
targets:
  - name: orders-db
    kind: postgres
    labels: {env: prod, data: pii}
    upstream: {address: 127.0.0.1:5432, database: orders}
    credentials:
      username: gatehouse
      password: \${env:GATEHOUSE_STORE_URL}
    approval: {mode: hold, timeout_seconds: 60}
  - name: crm-api
    kind: http
    labels: {env: prod}
    upstream: {address: http://127.0.0.1:18080}
    credentials:
      header: Authorization
      value: \${env:GATEHOUSE_STORE_URL}
    approval: {mode: ticket}
`;
}

beforeAll(async () => {
  dir = makeTempDir('gatehouse-e2e-');
  pg = await startPostgres();
  makeBundle({ out: join(dir, 'bundle.tar.gz'), revision: 'e2e' });
  const ports = [await freePort(), await freePort()];
  ports.forEach((port, i) => writeFileSync(config(i), yamlFor(port, `gw-${i}`)));
  expect(cli(['audit', 'keygen', '--out', join(dir, 'checkpoint.pem')]).code).toBe(0);
  token('--sub', 'warm-up'); // creates the dev issuer key before two servers race to
  for (const [i, port] of ports.entries()) {
    api.push(`http://127.0.0.1:${port}`);
    servers.push(await startServe(config(i), api[i]!, env()));
  }
}, 120_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => {
    s.once('exit', resolve);
    s.kill('SIGTERM');
  })));
  await pg?.stop();
  if (dir) removeDir(dir);
});

describe('gatehouse authorize', () => {
  it('accepts a token from gatehouse token and decides with policy', () => {
    const analyst = token('--sub', 'agent-analyst-1', '--groups', 'analysts');
    const select = authorize(api[0]!, analyst, 'orders-db', 'orders-select.json');
    expect(select.code, select.stderr).toBe(0);
    expect(select.stdout).toMatch(/^allow {2}\(decision [0-9a-f-]{36}, audit gw-0#\d+\)/);
    const remove = authorize(api[0]!, analyst, 'orders-db', 'orders-delete.json');
    expect(remove.code).toBe(3);
    expect(remove.stdout).toMatch(/^deny/);
  });

  it('refuses a forged token with the reason, and audits the refusal', () => {
    const genuine = token('--sub', 'agent-analyst-1', '--groups', 'analysts');
    const [header, payload, signature] = genuine.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
    const forged = [header, Buffer.from(JSON.stringify({ ...claims, groups: ['dba'] })).toString('base64url'), signature].join('.');
    const res = authorize(api[0]!, forged, 'orders-db', 'orders-delete.json');
    expect(res.code).toBe(3);
    expect(res.stdout).toContain('token rejected (bad_signature)');
    expect(res.stdout).toMatch(/audit gw-0#\d+/);
  });
});

describe('approvals across two processes on one PostgreSQL store', () => {
  it('resumes a request held by process A when process B approves it, and not for the requester', async () => {
    const sre = token('--sub', 'agent-sre-2', '--groups', 'sre-agents', '--act', 'alice');
    const alice = token('--sub', 'alice', '--groups', 'dba', '--human');
    const bob = token('--sub', 'bob', '--groups', 'dba', '--human');
    const held = await holdInBackground(api[0]!, sre);

    const byAgent = cli(['approvals', 'approve', held.id, '--server', api[1]!, '--token', sre]);
    expect(byAgent.code).toBe(1);
    expect(byAgent.stderr).toContain('403');
    const byAlice = cli(['approvals', 'approve', held.id, '--server', api[1]!, '--token', alice]);
    expect(byAlice.code).toBe(1);
    expect(byAlice.stderr).toContain('alice is the human agent-sre-2 acts for and cannot approve');

    const listed = cli(['approvals', 'list', '--server', api[1]!, '--token', bob]);
    expect(listed.stdout).toContain(held.id);
    const approved = cli(['approvals', 'approve', held.id, '--server', api[1]!, '--token', bob, '--comment', 'refund 1001']);
    expect(approved.code, approved.stderr).toBe(0);
    // How fast it resumes is measured by bench/approvals.ts, never asserted here.
    const result = await held.done;
    expect(result.code, result.output).toBe(0);
    expect(result.output).toMatch(/^allow/m);
    expect(result.output).toContain(`approved by approval ${held.id}`);

    const shown = cli(['approvals', 'show', held.id, '--server', api[0]!, '--token', bob, '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ status: 'consumed', votes: [{ sub: 'bob', decision: 'approve', comment: 'refund 1001' }] });
  });

  it('shows an approver the action as sent: format characters written out, not reordering what is read', () => {
    const sre = token('--sub', 'agent-sre-3', '--groups', 'sre-agents');
    const lead = token('--sub', 'dana', '--groups', 'sre-leads', '--human');
    const action = JSON.parse(readFileSync(join(repoRootDir, 'examples/actions/crm-refund.json'), 'utf8')) as { attributes: { request: { http: { body: string; headers: Record<string, string> } } } };
    // Shown raw, U+202E would make the note read backwards: "01 :tnuoma" for what is sent.
    action.attributes.request.http.body = '{"amount":9000,"note":"\u202e01 :tnuoma"}';
    action.attributes.request.http.headers['content-length'] = String(Buffer.byteLength(action.attributes.request.http.body));
    const input = join(dir, 'bidi-refund.json');
    writeFileSync(input, JSON.stringify(action));
    const first = cli(['authorize', '--server', api[0]!, '--token', sre, '--target', 'crm-api', '--input', input, '--json']);
    expect(first.code, first.stdout).toBe(3);
    const { approval } = JSON.parse(first.stdout) as { approval: { id: string } };
    const shown = cli(['approvals', 'show', approval.id, '--server', api[0]!, '--token', lead]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).not.toContain('\u202e');
    expect(shown.stdout).toContain('\\u{202e}01 :tnuoma');
  });

  it('in ticket mode denies at once, then lets the approved retry through exactly once', () => {
    const sre = token('--sub', 'agent-sre-2', '--groups', 'sre-agents', '--act', 'alice');
    const lead = token('--sub', 'dana', '--groups', 'sre-leads', '--human');
    const first = cli(['authorize', '--server', api[0]!, '--token', sre, '--target', 'crm-api', '--input', 'examples/actions/crm-refund.json', '--json']);
    expect(first.code).toBe(3);
    const answer = JSON.parse(first.stdout) as { decision: { reasons: string[] }; approval: { id: string; status: string; status_url: string } };
    expect(answer.approval).toMatchObject({ status: 'pending', status_url: `${api[0]}/v1/approvals/${answer.approval.id}` });
    expect(answer.decision.reasons.join('\n')).toContain(`request ${answer.approval.id} is pending`);

    // A retry before approval does not open a second request.
    const early = cli(['authorize', '--server', api[1]!, '--token', sre, '--target', 'crm-api', '--input', 'examples/actions/crm-refund.json', '--json']);
    expect((JSON.parse(early.stdout) as typeof answer).approval.id).toBe(answer.approval.id);

    expect(cli(['approvals', 'approve', answer.approval.id, '--server', api[0]!, '--token', lead]).code).toBe(0);
    const retry = authorize(api[1]!, sre, 'crm-api', 'crm-refund.json');
    expect(retry.code, retry.stdout).toBe(0);
    expect(retry.stdout).toContain(`approved by approval ${answer.approval.id}`);
    const again = authorize(api[1]!, sre, 'crm-api', 'crm-refund.json');
    expect(again.code).toBe(3);
    expect(again.stdout).not.toContain(answer.approval.id);
  });
});

describe('the audit trail of all that', () => {
  it('verifies, per process stream, with the last checkpoint as anchor', async () => {
    // Let both checkpointers sign a head that includes the events above.
    await new Promise((r) => setTimeout(r, 1500));
    const res = cli(['audit', 'verify', '-c', config(0), '--anchor', join(dir, 'last-checkpoint-gw-1.json')]);
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toContain('gw-0');
    expect(res.stdout).toContain('gw-1');
  });
});
