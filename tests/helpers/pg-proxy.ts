/**
 * A whole Postgres path for tests: a real PostgreSQL (Debian's package)
 * seeded with PII, the project's policy bundle, and `gatehouse serve` with
 * the Postgres proxy in front of it. The gateway logs in upstream with SCRAM
 * (orders-db) or MD5 (orders-md5), as only it knows the passwords; agents
 * log in with a dev-issuer JWT as their password.
 */
import { execFileSync, spawn, spawnSync, type ChildProcessWithoutNullStreams, type SpawnSyncReturns } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { devToken, freePort, startServe, stopServe, type startCli } from './cli.js';
import { makeBundle, policiesWithApprovalMode, policiesWithData } from './gateway-bundle.js';
import { makeTempDir, removeDir } from './opa.js';
import { postgresBinDir, startPostgres, type PostgresServer } from './postgres.js';

export const SCRAM_PASSWORD = 'scram-secret-0f3a';
export const MD5_PASSWORD = 'md5-secret-77c1';

/** Customers with PII; orders whose notes hide PII in free text; products with nothing to mask. */
export const SEED_SQL = `
CREATE TABLE customers (
  id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, ssn text NOT NULL, phone text, notes text, created_at date NOT NULL DEFAULT '2026-01-01'
);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, amount numeric(10,2) NOT NULL, notes text);
INSERT INTO customers VALUES
  (1, 'Ada Lovelace', 'ada@example.com', '078-05-1120', '+1 415 555 0101', 'prefers email'),
  (2, 'Alan Turing', 'alan@example.org', '219-09-9999', '+44 20 7946 0958', 'card 4111 1111 1111 1111 on file'),
  (3, 'Grace Hopper', 'grace@example.net', '457-55-5462', '+1 212 555 0199', NULL);
INSERT INTO orders VALUES
  (10, 1, 42.50, 'ship to ada@example.com'),
  (11, 2, 10.00, 'call +1 415 555 0101 before delivery'),
  (12, 3, 99.99, 'gift wrap');
CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL);
INSERT INTO products VALUES (1, 'Widget', 2.50), (2, 'Gadget', 10.00), (3, 'Gizmo', 7.25);
`;

export interface ProxyStack {
  pg: PostgresServer;
  dir: string;
  /** The gateway's config file. */
  config: string;
  api: string;
  proxyPort: number;
  serve: ReturnType<typeof startCli>;
  /** A fresh dev-issuer token. */
  token(sub: string, groups: string[]): string;
  /** node-postgres settings for an agent connecting through the proxy. */
  clientConfig(user: string, token: string): pg.ClientConfig;
  /** A fresh token for `sub` in `groups`, and a node-postgres client logged in with it to `target` (orders-db). */
  connectAgent(sub: string, groups: string[], target?: string): Promise<{ token: string; client: pg.Client }>;
  /** Runs psql through the proxy; `input` goes to stdin. */
  psql(user: string, token: string, args: string[], input?: string): SpawnSyncReturns<string>;
  /** Starts psql through the proxy and returns at once (for cancel tests); stdin is left open. */
  spawnPsql(user: string, token: string, args: string[]): ChildProcessWithoutNullStreams;
  /** The listener's certificate (PEM file), when the stack was started with `tls`. */
  tlsCert: string | null;
  /** A superuser connection straight to the database, to check what really happened. */
  direct(): Promise<pg.Client>;
  /** Stops `gatehouse serve` (SIGTERM), runs `whileDown`, and starts it again on the same config and store. */
  restart(whileDown?: () => Promise<void>): Promise<void>;
  stop(): Promise<void>;
}

export interface ProxyStackOptions {
  /** Extra YAML under the postgres listener. */
  listenerYaml?: string;
  /**
   * How approvals of orders-db writes are handled. The policy's own rule
   * (prod-writes-need-dba in policies/data/access/data.yaml) names a mode,
   * and a rule's mode wins over the target's, so when this is given the
   * bundle is built from a copy of policies/ with that rule's mode set to it
   * (and the target's approval.mode too).
   */
  approvalMode?: 'hold' | 'ticket';
  approvalTimeoutSeconds?: number;
  /**
   * policy.timeout_ms (default here 1000). The production default (50 ms)
   * turns a slow evaluation into a fail-closed deny; on a test machine busy
   * with several PostgreSQL servers and gateways that makes tests flaky.
   */
  policyTimeoutMs?: number;
  /** Grants added to the sample policy's (YAML list items under `grants:`), e.g. for the orders-md5 target, which has no masks. */
  extraGrants?: string;
  /** Approval rules added to the sample policy's (YAML list items under `approvals:`). */
  extraApprovals?: string;
  /** Mask lists added to the sample policy's, per target (YAML entries under `masks:`, e.g. for orders-md5). */
  extraMasks?: string;
  /** Serve TLS on the proxy with a fresh self-signed certificate for localhost; `required` refuses plaintext clients. */
  tls?: { required: boolean };
}

export async function startProxyStack(options: ProxyStackOptions = {}): Promise<ProxyStack> {
  const dir = makeTempDir('gatehouse-pg-proxy-');
  const server = await startPostgres({
    hba: [
      'host all gatehouse_orders 127.0.0.1/32 scram-sha-256',
      'host all gatehouse_md5 127.0.0.1/32 md5',
    ],
  });
  try {
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query('CREATE DATABASE orders');
    await admin.query(`CREATE ROLE gatehouse_orders LOGIN PASSWORD '${SCRAM_PASSWORD}'`);
    await admin.query(`SET password_encryption = 'md5'`);
    await admin.query(`CREATE ROLE gatehouse_md5 LOGIN PASSWORD '${MD5_PASSWORD}'`);
    await admin.end();
    const orders = new pg.Client({ connectionString: server.urlFor('orders') });
    await orders.connect();
    await orders.query(SEED_SQL);
    await orders.query('GRANT ALL ON ALL TABLES IN SCHEMA public TO gatehouse_orders, gatehouse_md5');
    await orders.end();

    if (options.approvalMode) policiesWithApprovalMode(dir, 'prod-writes-need-dba', options.approvalMode);
    if (options.extraGrants) policiesWithData(dir, (data) => data.replace(/^grants:\n/m, `grants:\n${options.extraGrants}\n`));
    if (options.extraApprovals) policiesWithData(dir, (data) => data.replace(/^approvals:\n/m, `approvals:\n${options.extraApprovals}\n`));
    if (options.extraMasks) policiesWithData(dir, (data) => data.replace(/^masks:\n/m, `masks:\n${options.extraMasks}\n`));
    const edited = options.approvalMode || options.extraGrants || options.extraApprovals || options.extraMasks;
    makeBundle({ out: join(dir, 'bundle.tar.gz'), policySrc: edited ? join(dir, 'policies') : undefined });
    const apiPort = await freePort();
    const proxyPort = await freePort();
    const pgAddress = new URL(server.url).host;
    const config = join(dir, 'gatehouse.yaml');
    let tlsCert: string | null = null;
    let tlsYaml = '';
    if (options.tls) {
      tlsCert = join(dir, 'proxy-cert.pem');
      const key = join(dir, 'proxy-key.pem');
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', tlsCert,
      ], { stdio: 'ignore' });
      tlsYaml = `    tls: {cert_file: ${tlsCert}, key_file: ${key}, required: ${options.tls.required}}\n`;
    }
    writeFileSync(config, `
listeners:
  api:
    address: 127.0.0.1:${apiPort}
  postgres:
    address: 127.0.0.1:${proxyPort}
${tlsYaml}${options.listenerYaml ?? ''}
policy:
  bundle:
    source: bundle.tar.gz
  timeout_ms: ${options.policyTimeoutMs ?? 1000}
identity:
  dev_issuer:
    enabled: true
    key_file: dev-issuer.jwk
store:
  sqlite:
    path: gatehouse.db
targets:
  - name: orders-db
    kind: postgres
    labels: {env: prod, data: pii}
    upstream: {address: ${pgAddress}, database: orders}
    credentials:
      username: gatehouse_orders
      password: \${env:ORDERS_DB_PASSWORD}
    approval: {mode: ${options.approvalMode ?? 'hold'}, timeout_seconds: ${options.approvalTimeoutSeconds ?? 60}}
  - name: orders-md5
    kind: postgres
    labels: {env: staging}
    upstream: {address: ${pgAddress}, database: orders}
    credentials:
      username: gatehouse_md5
      password: \${env:MD5_DB_PASSWORD}
`);
    const env = { ORDERS_DB_PASSWORD: SCRAM_PASSWORD, MD5_DB_PASSWORD: MD5_PASSWORD };
    const api = `http://127.0.0.1:${apiPort}`;
    const serve = await startServe(config, api, env);
    const bin = postgresBinDir();
    const psqlArgs = (user: string, args: string[]) => ['-X', '-h', '127.0.0.1', '-p', String(proxyPort), '-U', user, '-d', 'orders', ...args];
    const psqlEnv = (token: string) => ({ ...process.env, PGPASSWORD: token, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10' });

    const stack: ProxyStack = {
      pg: server,
      dir,
      config,
      api,
      proxyPort,
      serve,
      tlsCert,
      token: (sub, groups) => devToken(config, sub, groups),
      clientConfig(user, token) {
        return { host: '127.0.0.1', port: proxyPort, user, password: token, database: 'orders' };
      },
      async connectAgent(sub, groups, target = 'orders-db') {
        const token = stack.token(sub, groups);
        const client = new pg.Client(stack.clientConfig(target, token));
        await client.connect();
        return { token, client };
      },
      psql(user, token, args, input) {
        return spawnSync(join(bin, 'psql'), psqlArgs(user, args), { input, encoding: 'utf8', env: psqlEnv(token), timeout: 60_000 });
      },
      spawnPsql(user, token, args) {
        return spawn(join(bin, 'psql'), psqlArgs(user, args), { env: psqlEnv(token) });
      },
      async direct() {
        const client = new pg.Client({ connectionString: server.urlFor('orders') });
        await client.connect();
        return client;
      },
      async restart(whileDown) {
        await stopServe(stack.serve);
        await whileDown?.();
        stack.serve = await startServe(config, api, env);
      },
      async stop() {
        await stopServe(stack.serve);
        await server.stop();
        removeDir(dir);
      },
    };
    return stack;
  } catch (err) {
    await server.stop();
    removeDir(dir);
    throw err;
  }
}
