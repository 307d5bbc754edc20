import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ConfigError, findPlaintextSecrets, loadConfig, parseConfig } from '../../engine/config/load.js';
import { defaultBodyThreads } from '../../engine/config/schema.js';
import { Secret } from '../../engine/config/secret.js';

const SECRET_VALUE = 'hunter2-do-not-print';

const minimal = (extra = '') => `
policy:
  bundle:
    source: bundle.tar.gz
targets:
  - name: orders-db
    kind: postgres
    labels: {env: prod}
    upstream: {address: 127.0.0.1:5432, database: orders}
    credentials:
      username: app
      password: \${env:ORDERS_PW}
${extra}`;

function problems(text: string, env: NodeJS.ProcessEnv = { ORDERS_PW: SECRET_VALUE }): string[] {
  try {
    parseConfig(text, '/etc/gatehouse/gatehouse.yaml', env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain('/etc/gatehouse/gatehouse.yaml');
    return [...(err as ConfigError).problems];
  }
  throw new Error('expected the config to be rejected');
}

describe('config', () => {
  it('loads the example config with defaults and resolved references', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gh-config-'));
    writeFileSync(join(dir, 'web.key'), 'PRIVATE KEY BYTES\n');
    const config = parseConfig(
      minimal(`  - name: web
    kind: ssh
    upstream: {address: 10.0.0.5:22}
    credentials:
      username: deploy
      private_key: \${file:web.key}`),
      join(dir, 'gatehouse.yaml'),
      { ORDERS_PW: SECRET_VALUE },
    );
    expect(config.listeners.api.address).toBe('127.0.0.1:8181');
    expect(config.policy.timeout_ms).toBe(50);
    expect(config.policy.entrypoints.postgres).toBe('gatehouse/postgres/decision');
    expect(config.policy.bundle.source).toEqual({ kind: 'file', path: join(dir, 'bundle.tar.gz') });
    const [orders, web] = config.targets;
    expect(orders?.recording.enabled).toBe(true);
    expect(orders?.kind === 'postgres' && orders.credentials.password.reveal()).toBe(SECRET_VALUE);
    // The trailing newline of a key file is not part of the secret.
    expect(web?.kind === 'ssh' && web.credentials.private_key?.reveal()).toBe('PRIVATE KEY BYTES');
  });

  it('treats an http(s) bundle source as a bundle server', () => {
    const config = parseConfig(minimal().replace('bundle.tar.gz', 'https://bundles.example.com/gatehouse.tar.gz'), '/x/g.yaml', {
      ORDERS_PW: 'x',
    });
    expect(config.policy.bundle.source).toEqual({ kind: 'http', url: 'https://bundles.example.com/gatehouse.tar.gz' });
  });

  it('names the file, the key path and what is expected', () => {
    expect(problems(minimal().replace('kind: postgres', 'kind: mysql'))).toEqual([
      'targets[0].kind: expected kind to be one of postgres, ssh, http',
    ]);
    expect(problems(minimal().replace('127.0.0.1:5432', 'localhost'))).toEqual([
      'targets[0].upstream.address: expected host:port, e.g. 127.0.0.1:8181',
    ]);
    expect(problems(minimal().replace('labels: {env: prod}', 'labels: {env: prod}\n    recordng: {enabled: true}'))).toEqual([
      'targets[0]: unknown key "recordng" (check the spelling; see examples/gatehouse.yaml)',
    ]);
    expect(problems(minimal().replace('source: bundle.tar.gz', 'sauce: bundle.tar.gz'))[0]).toMatch(/^policy\.bundle/);
  });

  it('refuses HMAC keys too short to resist guessing, without printing them', () => {
    const text = `${minimal()}approvals:\n  seal_key: \${env:SEAL}\nmasking:\n  hash_key: \${env:HASH}\n`;
    const found = problems(text, { ORDERS_PW: SECRET_VALUE, SEAL: 'short-seal-key', HASH: 'short' });
    expect(found).toEqual([
      expect.stringMatching(/^approvals\.seal_key: expected a key of at least 32 bytes/) as string,
      expect.stringMatching(/^masking\.hash_key: expected a key of at least 16 bytes/) as string,
    ]);
    expect(found.join('\n')).not.toMatch(/short-seal-key|short\b/);
    expect(() => parseConfig(text, '/etc/gatehouse/gatehouse.yaml', { ORDERS_PW: SECRET_VALUE, SEAL: 'x'.repeat(32), HASH: 'y'.repeat(16) })).not.toThrow();
  });

  it('lets no one forget masked column places unless masking.admin_groups names a group', () => {
    const env = { ORDERS_PW: SECRET_VALUE };
    expect(parseConfig(minimal(), '/etc/gatehouse/gatehouse.yaml', env).masking.admin_groups).toEqual([]);
    expect(parseConfig(`${minimal()}masking: {}\n`, '/etc/gatehouse/gatehouse.yaml', env).masking.admin_groups).toEqual([]);
    expect(parseConfig(`${minimal()}masking:\n  admin_groups: [dba-leads]\n`, '/etc/gatehouse/gatehouse.yaml', env).masking.admin_groups).toEqual(['dba-leads']);
    expect(problems(`${minimal()}masking:\n  admin_groups: dba-leads\n`)).toEqual([expect.stringMatching(/^masking\.admin_groups: /) as string]);
  });

  it('reads response bodies on at most four threads unless listeners.ext_authz.body_threads says otherwise', () => {
    const env = { ORDERS_PW: SECRET_VALUE };
    const withThreads = (line: string) => `${minimal()}listeners:\n  ext_authz:\n    address: 127.0.0.1:9191\n${line}`;
    // One fewer than the cores (the main thread keeps one), at least one, at most four: each may take a 2 GiB heap.
    expect([1, 2, 3, 4, 5, 8, 64].map((cores) => defaultBodyThreads(cores))).toEqual([1, 1, 2, 3, 4, 4, 4]);
    expect(defaultBodyThreads()).toBe(Math.min(4, Math.max(1, availableParallelism() - 1)));
    expect(parseConfig(withThreads(''), '/etc/gatehouse/gatehouse.yaml', env).listeners.ext_authz?.body_threads).toBe(defaultBodyThreads());
    expect(parseConfig(withThreads('    body_threads: 6\n'), '/etc/gatehouse/gatehouse.yaml', env).listeners.ext_authz?.body_threads).toBe(6);
    expect(parseConfig(withThreads('    body_threads: 1\n'), '/etc/gatehouse/gatehouse.yaml', env).listeners.ext_authz?.body_threads).toBe(1);
    for (const bad of ['0', '-1', '1.5', '65', 'many']) {
      expect(problems(withThreads(`    body_threads: ${bad}\n`))).toEqual([expect.stringMatching(/^listeners\.ext_authz\.body_threads: /) as string]);
    }
  });

  it('rejects duplicate target names', () => {
    const text = minimal(`  - name: orders-db
    kind: http
    upstream: {address: http://127.0.0.1:8080}
    credentials:
      header: Authorization
      value: \${env:ORDERS_PW}`);
    expect(problems(text)).toEqual(['targets[1].name: duplicate target name "orders-db" (also targets[0])']);
  });

  it('says which variable or file is missing, and never prints a secret', () => {
    expect(problems(minimal(), {})).toEqual([
      'targets[0].credentials.password: environment variable ORDERS_PW is not set (referenced as ${env:ORDERS_PW})',
    ]);
    const fileRef = problems(minimal().replace('${env:ORDERS_PW}', '${file:/nonexistent/pw}'));
    expect(fileRef[0]).toMatch(/^targets\[0\]\.credentials\.password: cannot read \/nonexistent\/pw \(ENOENT\)/);
    // A YAML syntax error on the line holding a secret must not quote the line.
    const broken = problems(minimal().replace('${env:ORDERS_PW}', `"${SECRET_VALUE}`));
    expect(broken.join('\n')).not.toContain(SECRET_VALUE);
    expect(broken[0]).toMatch(/^line \d+, column \d+: \w+ \(invalid YAML\)$/);
  });

  it('reports an unreadable file by name', () => {
    expect(() => loadConfig('/nonexistent/gatehouse.yaml')).toThrow(/\/nonexistent\/gatehouse.yaml: invalid configuration\n {2}- cannot read the file \(ENOENT\)/);
  });

  it('finds secrets written in plain text', () => {
    const config = parseConfig(minimal().replace('${env:ORDERS_PW}', 'plaintext'), '/x/g.yaml', {});
    expect(findPlaintextSecrets(config)).toEqual(['targets[0].credentials.password']);
  });
});

describe('Secret', () => {
  it('never shows its value through String, JSON, inspect or pino', () => {
    const secret = new Secret(SECRET_VALUE, 'env:ORDERS_PW');
    const lines: string[] = [];
    const logger = pino({}, { write: (line: string) => lines.push(line) });
    logger.info({ credentials: { password: secret } }, `connecting with ${secret}`);
    const shown = [String(secret), `${secret}`, JSON.stringify({ secret }), inspect({ secret }), ...lines].join('\n');
    expect(shown).not.toContain(SECRET_VALUE);
    expect(shown).toContain('[secret]');
    expect(secret.reveal()).toBe(SECRET_VALUE);
  });
});
