import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, runCli, startCli } from '../helpers/cli.js';
import { makeBundle } from '../helpers/gateway-bundle.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';

let dir: string;
let bundle: string;
beforeAll(() => {
  dir = makeTempDir('gatehouse-cli-');
  bundle = makeBundle({ out: join(dir, 'bundle.tar.gz'), revision: 'cli-test' });
});
afterAll(() => removeDir(dir));

describe('gatehouse policy eval', () => {
  it('evaluates a file input against the compiled bundle', () => {
    const res = runCli(['policy', 'eval', '-e', 'gatehouse/postgres/decision', '-i', 'examples/inputs/analyst-select.json', '-b', bundle]);
    expect(res.code, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout);
    expect(out.decision.action).toBe('allow');
    expect(out.decision.mask.map((m: { column: string }) => m.column)).toEqual(
      expect.arrayContaining(['public.customers.email', 'public.customers.ssn']),
    );
    expect(out.metadata).toMatchObject({ entrypoint: 'gatehouse/postgres/decision', bundle_revision: 'cli-test' });
  });

  it('reads the input from standard input', () => {
    const input = readFileSync('examples/inputs/analyst-delete.json', 'utf8');
    const res = runCli(['policy', 'eval', '-e', 'gatehouse/postgres/decision', '-i', '-', '-b', bundle], { input });
    expect(JSON.parse(res.stdout).decision.action).toBe('deny');
  });

  it('explains bad input without a stack trace', () => {
    const res = runCli(['policy', 'eval', '-e', 'gatehouse/postgres/decision', '-i', '-', '-b', bundle], { input: '{not json' });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^gatehouse: input \(stdin\) is not JSON: /);
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });

  it('says when it cannot reach a server', () => {
    const res = runCli(['policy', 'eval', '-e', 'gatehouse/http/decision', '-i', 'examples/inputs/analyst-select.json', '--server', 'http://127.0.0.1:1']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/cannot reach http:\/\/127\.0\.0\.1:1/);
  });

  it('reports a missing bundle clearly', () => {
    const res = runCli(['policy', 'eval', '-e', 'x/y', '-i', 'examples/inputs/analyst-select.json', '-b', join(dir, 'nope.tar.gz')]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/bundle refused \(unreadable\): cannot read bundle .*nope\.tar\.gz: ENOENT/);
  });
});

describe('gatehouse bundle inspect', () => {
  it('prints revision, entrypoints and signature state', () => {
    const res = runCli(['bundle', 'inspect', bundle, '--json']);
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({
      revision: 'cli-test',
      entrypoints: ['gatehouse/http/decision', 'gatehouse/postgres/decision', 'gatehouse/ssh/decision'],
      signature: 'unsigned',
    });
  });

  it('fails when a required signature is missing', () => {
    const key = join(dir, 'key.pem');
    writeFileSync(key, 'unused');
    const res = runCli(['bundle', 'inspect', bundle, '--key', key]);
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/signature\s+INVALID \(unsigned\)/);
  });
});

describe('gatehouse serve', () => {
  it('names the file, the key and the fix for a bad config, and exits 2', () => {
    const config = join(dir, 'bad.yaml');
    writeFileSync(config, 'policy:\n  bundle:\n    source: b.tar.gz\n  timeout_ms: -1\ntargets:\n  - name: Orders DB\n    kind: postgres\n');
    const res = runCli(['serve', '--config', config]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(`gatehouse: ${config}: invalid configuration`);
    expect(res.stderr).toMatch(/- policy\.timeout_ms: /);
    expect(res.stderr).toMatch(/- targets\[0\]\.name: expected a lower-case name/);
    expect(res.stderr).toMatch(/- targets\[0\]\.upstream: /);
  });

  it('stops, exit 1, when a listener cannot start, rather than run on without it', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      const config = join(dir, 'taken.yaml');
      writeFileSync(config, [
        'listeners:',
        `  api: {address: 127.0.0.1:${await freePort()}}`,
        `  postgres: {address: 127.0.0.1:${port}}`,
        'policy:',
        `  bundle: {source: ${bundle}}`,
        'store:',
        `  sqlite: {path: ${join(dir, 'taken.db')}}`,
        'targets: []',
        '',
      ].join('\n'));
      const res = await new Promise<{ code: number | null; output: string }>((resolve) => {
        const serve = startCli(['serve', '--config', config]);
        const killer = setTimeout(() => serve.kill('SIGKILL'), 30_000);
        serve.once('exit', (code) => {
          clearTimeout(killer);
          resolve({ code, output: serve.output() });
        });
      });
      expect(res.code, res.output).toBe(1);
      expect(res.output).toContain('a listener could not start; stopping');
      expect(res.output).toContain('EADDRINUSE');
    } finally {
      taken.close();
    }
  });
});

it('has --help on every command', () => {
  for (const args of [[], ['serve'], ['policy', 'eval'], ['bundle', 'inspect'], ['token'], ['authorize'], ['approvals', 'approve'], ['audit', 'verify'], ['audit', 'export'], ['masking', 'places'], ['masking', 'forget']]) {
    const res = runCli([...args, '--help']);
    expect(res.code, args.join(' ')).toBe(0);
    // The command's own help: an unknown command would print the top level's.
    expect(res.stdout.split('\n')[0]).toMatch(new RegExp(`^Usage: gatehouse${args.map((a) => ` ${a}`).join('')} `));
  }
});

it('exits 2 on a usage mistake in any subcommand', () => {
  const mistakes: Array<[string[], RegExp]> = [
    [['audit', 'export', '-c', 'x.yaml', '--format', 'xml'], /^error: option '--format <format>' argument 'xml' is invalid/],
    [['approvals', 'bogus'], /^error: unknown command 'bogus'/],
    [['authorize', '--input', 'a.json'], /^error: required option '--target <name>' not specified/],
    // A forget without a reason is never sent.
    [['masking', 'forget', '--scope', 'orders-db:1/16384', '--table-oid', '16390', '--attnum', '4'], /^error: required option '--reason <text>' not specified/],
  ];
  for (const [args, error] of mistakes) {
    const res = runCli(args);
    expect(res.code, args.join(' ')).toBe(2);
    expect(res.stderr).toMatch(error);
  }
});
