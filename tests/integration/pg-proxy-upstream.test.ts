/**
 * The proxy's upstream side against a real PostgreSQL that only accepts
 * the gateway's role over TLS, with a cleartext password: the proxy
 * negotiates TLS, verifies the server's certificate with the configured CA,
 * and answers the password challenge with the secret only it holds. A
 * target configured without TLS, and one whose CA does not match, fail
 * login with a clear FATAL and never reach the server in plaintext.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, runCli, startServe, type startCli } from '../helpers/cli.js';
import { makeBundle } from '../helpers/gateway-bundle.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';

const PASSWORD = 'cleartext-over-tls-5d1';

let dir: string;
let server: PostgresServer;
let serve: ReturnType<typeof startCli>;
let proxyPort: number;
let config: string;

/** A self-signed certificate for 127.0.0.1; it is its own CA. */
function certificate(name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

beforeAll(async () => {
  dir = makeTempDir('gatehouse-pg-upstream-');
  chmodSync(dir, 0o755);
  const serverCert = certificate('server');
  const otherCa = certificate('other');
  // The server reads its key as its own OS user (postgres when the tests run as root), mode 0600.
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
    chownSync(serverCert.key, uid, gid);
    chownSync(serverCert.cert, uid, gid);
  }
  chmodSync(serverCert.key, 0o600);
  server = await startPostgres({
    hba: ['hostssl all gatehouse_tls 127.0.0.1/32 password', 'host all gatehouse_tls 127.0.0.1/32 reject'],
    serverOptions: ['-c ssl=on', `-c ssl_cert_file=${serverCert.cert}`, `-c ssl_key_file=${serverCert.key}`],
  });
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query(`CREATE ROLE gatehouse_tls LOGIN PASSWORD '${PASSWORD}'`);
  await admin.query('CREATE TABLE products (id int PRIMARY KEY, name text)');
  await admin.query(`INSERT INTO products VALUES (1, 'Widget')`);
  await admin.query('GRANT SELECT ON products TO gatehouse_tls');
  await admin.end();

  makeBundle({ out: join(dir, 'bundle.tar.gz') });
  const apiPort = await freePort();
  proxyPort = await freePort();
  const address = new URL(server.url).host;
  const target = (name: string, tls: string) => `
  - name: ${name}
    kind: postgres
    labels: {env: staging}
    upstream: {address: ${address}, database: postgres, ${tls}}
    credentials:
      username: gatehouse_tls
      password: \${env:TLS_DB_PASSWORD}`;
  config = join(dir, 'gatehouse.yaml');
  writeFileSync(config, `
listeners:
  api: {address: 127.0.0.1:${apiPort}}
  postgres: {address: 127.0.0.1:${proxyPort}}
policy:
  bundle: {source: bundle.tar.gz}
  timeout_ms: 1000
identity:
  dev_issuer: {enabled: true, key_file: dev-issuer.jwk}
store:
  sqlite: {path: gatehouse.db}
targets:${target('staging-db', `tls: true, tls_ca_file: ${serverCert.cert}`)}${target('plain-db', 'tls: false')}${target('wrong-ca-db', `tls: true, tls_ca_file: ${otherCa.cert}`)}
`);
  serve = await startServe(config, `http://127.0.0.1:${apiPort}`, { TLS_DB_PASSWORD: PASSWORD });
}, 120_000);

afterAll(async () => {
  serve?.kill('SIGTERM');
  await server?.stop();
  if (dir) removeDir(dir);
});

async function connect(target: string): Promise<pg.Client> {
  const token = runCli(['token', '-c', config, '--sub', 'agent:reader', '--groups', 'analysts']).stdout.trim();
  const client = new pg.Client({ host: '127.0.0.1', port: proxyPort, user: target, password: token, database: 'postgres' });
  await client.connect();
  return client;
}

describe('upstream login', () => {
  it('reaches a TLS-only server with a cleartext password, verifying its certificate', async () => {
    const client = await connect('staging-db');
    try {
      const { rows } = await client.query('SELECT name FROM products');
      expect(rows).toEqual([{ name: 'Widget' }]);
      const direct = new pg.Client({ connectionString: server.url });
      await direct.connect();
      const ssl = await direct.query(`SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'gatehouse_tls' AND a.application_name <> 'gatehouse-catalog'`);
      await direct.end();
      expect(ssl.rows.map((r) => r.ssl)).toContain(true);
    } finally {
      await client.end();
    }
  });

  it('fails login with a clear FATAL when the server refuses the plaintext connection', async () => {
    await expect(connect('plain-db')).rejects.toMatchObject({ code: '08006', message: expect.stringMatching(/gatehouse cannot open plain-db: .*gatehouse_tls/) });
  });

  it('refuses a server whose certificate the configured CA did not sign', async () => {
    await expect(connect('wrong-ca-db')).rejects.toMatchObject({ code: '08006', message: expect.stringMatching(/TLS to .* failed/) });
  });
});
