/**
 * policies/capabilities.json pins policies to builtins that run under
 * opa-wasm and are deterministic. These tests use the real OPA binary.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBundleArchive } from '../../engine/bundle/archive.js';
import { buildBundle, makeTempDir, opaBin, removeDir, repoRoot, runOpa, writeTree } from '../helpers/opa.js';

const capabilitiesPath = join(repoRoot, 'policies/capabilities.json');

interface CapabilitiesDoc {
  builtins: { name: string }[];
  features: string[];
  future_keywords: string[];
  wasm_abi_versions: { version: number; minor_version: number }[];
}

let dir: string;
let caps: CapabilitiesDoc;

beforeAll(() => {
  dir = makeTempDir('gatehouse-caps-test-');
  caps = JSON.parse(readFileSync(capabilitiesPath, 'utf8')) as CapabilitiesDoc;
});

afterAll(() => removeDir(dir));

describe('policies/capabilities.json', () => {
  it('refuses time.now_ns() at build time, naming the builtin', () => {
    writeTree(dir, {
      'clock/clock.rego': 'package clock\n\nnow := time.now_ns()\n',
    });
    const res = runOpa(
      ['build', '-t', 'wasm', '-e', 'clock/now', '--capabilities', capabilitiesPath, '-o', join(dir, 'clock.tar.gz'), 'clock'],
      { cwd: dir },
    );
    expect(res.code).not.toBe(0);
    expect(`${res.stderr}${res.stdout}`).toMatch(/undefined function time\.now_ns/);
  });

  it('lists no clock, network, random or host-environment builtin', () => {
    const names = new Set(caps.builtins.map((b) => b.name));
    for (const denied of ['time.now_ns', 'http.send', 'net.lookup_ip_addr', 'rand.intn', 'uuid.rfc4122', 'opa.runtime', 'print', 'trace']) {
      expect(names.has(denied), denied).toBe(false);
    }
    expect(caps.wasm_abi_versions.length).toBeGreaterThan(0);
  });

  it('builds and evaluates a policy using builtins the JS SDK provides', async () => {
    const hostProvided = ['sprintf', 'regex.split', 'json.is_valid', 'yaml.marshal', 'yaml.unmarshal', 'yaml.is_valid'];
    const listed = new Set(caps.builtins.map((b) => b.name));
    for (const name of [...hostProvided, 'regex.match', 'json.marshal']) expect(listed.has(name), name).toBe(true);

    writeTree(dir, {
      'sdk/sdk.rego': [
        'package sdk',
        '',
        'result := {',
        '\t"greeting": sprintf("%s has %d roles", [input.user, count(input.roles)]),',
        '\t"parts": regex.split(`[,;]`, input.csv),',
        '\t"valid_json": json.is_valid(input.doc),',
        '\t"invalid_json": json.is_valid("{"),',
        '\t"yaml_roundtrip": yaml.unmarshal(yaml.marshal({"a": [1, 2]})),',
        '\t"yaml_valid": yaml.is_valid("a: 1"),',
        '\t"admin": regex.match(`^adm`, input.roles[0]),',
        '\t"marshalled": json.marshal({"k": input.user}),',
        '\t"late": input.now_ns > 1700000000000000000,',
        '}',
        '',
      ].join('\n'),
    });
    const bundle = buildBundle('sdk', ['-t', 'wasm', '-e', 'sdk/result', '--capabilities', capabilitiesPath], { cwd: dir });
    const files = await readBundleArchive(bundle);
    const wasm = files.get('policy.wasm');
    expect(wasm).toBeDefined();

    const policy = await loadPolicy(wasm as Buffer);
    const out = policy.evaluate({
      user: 'alice',
      roles: ['admin', 'dev'],
      csv: 'a,b;c',
      doc: '{"x": 1}',
      now_ns: 1_800_000_000_000_000_000,
    }) as { result: unknown }[];
    expect(out).toEqual([
      {
        result: {
          greeting: 'alice has 2 roles',
          parts: ['a', 'b', 'c'],
          valid_json: true,
          invalid_json: false,
          yaml_roundtrip: { a: [1, 2] },
          yaml_valid: true,
          admin: true,
          marshalled: '{"k":"alice"}',
          late: true,
        },
      },
    ]);
  });

  it('is exactly what the generator produces now', () => {
    const out = join(dir, 'regenerated.json');
    execFileSync(process.execPath, [join(repoRoot, 'scripts/gen-capabilities.mjs'), '--opa', opaBin, '--out', out], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(capabilitiesPath, 'utf8'));
  });
});
