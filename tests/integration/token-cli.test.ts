/** `gatehouse token`, run as a user would, checked with the verifier the gateway uses. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../engine/config/load.js';
import { createTokenVerifier } from '../../engine/identity/verifier.js';
import { runCli } from '../helpers/cli.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';

let dir: string;
let enabled: string;
let disabled: string;

function writeConfig(name: string, devIssuer: string): string {
  const path = join(dir, name);
  writeFileSync(path, `
policy:
  bundle:
    source: bundle.tar.gz
identity:
${devIssuer}
`);
  return path;
}

beforeAll(() => {
  dir = makeTempDir('gatehouse-token-');
  enabled = writeConfig('enabled.yaml', '  dev_issuer:\n    enabled: true\n    key_file: dev-issuer.jwk.json');
  disabled = writeConfig('disabled.yaml', '  dev_issuer:\n    enabled: false\n    key_file: dev-issuer.jwk.json');
});
afterAll(() => removeDir(dir));

describe('gatehouse token', () => {
  it('prints only a token that the gateway accepts, agent acting for a human', async () => {
    const res = runCli(['token', '--config', enabled, '--sub', 'agent-1', '--groups', 'analysts,oncall', '--act', 'alice', '--ttl', '15m']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);

    const verifier = createTokenVerifier(loadConfig(enabled).identity);
    const identity = await verifier.verify(res.stdout.trim());
    expect(identity).toMatchObject({ sub: 'agent-1', act: { sub: 'alice' }, agent: true, groups: ['analysts', 'oncall'], iss: 'urn:gatehouse:dev' });
    const { exp, iat } = identity.claims as { exp: number; iat: number };
    expect(exp - iat).toBe(900);
  });

  it('mints a token for a human with --human', async () => {
    const res = runCli(['token', '-c', enabled, '--sub', 'bob', '--groups', 'dbas', '--human', '--ttl', '90s']);
    expect(res.code, res.stderr).toBe(0);
    const identity = await createTokenVerifier(loadConfig(enabled).identity).verify(res.stdout.trim());
    expect(identity).toMatchObject({ sub: 'bob', agent: false, act: null, groups: ['dbas'] });
  });

  it('refuses when the dev issuer is not enabled', () => {
    const res = runCli(['token', '--config', disabled, '--sub', 'agent-1', '--groups', 'analysts']);
    expect(res.code).toBe(2);
    expect(res.stdout).toBe('');
    expect(res.stderr).toMatch(/^gatehouse: the dev issuer is not enabled in .*disabled\.yaml; set identity\.dev_issuer/);
  });

  it.each(['25h', 'soon'])('refuses --ttl %s', (ttl) => {
    const res = runCli(['token', '--config', enabled, '--sub', 'agent-1', '--ttl', ttl]);
    expect(res.code).toBe(2);
    expect(res.stdout).toBe('');
    expect(res.stderr).toMatch(/--ttl .*expected a duration from 1s to 24h/);
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });

  it('refuses --act with --human', () => {
    const res = runCli(['token', '--config', enabled, '--sub', 'agent-1', '--act', 'alice', '--human']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/--act and --human exclude each other/);
  });
});
