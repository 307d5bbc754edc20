#!/usr/bin/env node
/* global process, console, Buffer */
/**
 * Generates policies/capabilities.json: the OPA capabilities document that
 * pins Gatehouse policies to the builtins that actually run where the gateway
 * evaluates them — Rego compiled to WASM by `opa build -t wasm`, executed by
 * the npm SDK @open-policy-agent/opa-wasm.
 *
 *   node scripts/gen-capabilities.mjs [--opa PATH] [--out PATH]
 *
 * Defaults: --opa .tools/bin/opa, --out policies/capabilities.json (relative to
 * the repository root). `--out -` writes to stdout.
 *
 * A builtin is listed when all of these hold:
 *  (a) `opa capabilities --current` of the given OPA declares it (its full
 *      declaration is copied, so `opa build --capabilities` still type-checks);
 *  (b) it runs under opa-wasm: either OPA compiles it natively into the WASM
 *      module, or the SDK implements it in JavaScript
 *      (node_modules/@open-policy-agent/opa-wasm/src/builtins/*.js). Which ones
 *      are native is measured, not assumed: one throwaway policy calls every
 *      candidate, is built with `opa build -t wasm`, and the module's
 *      `builtins` export (name → id of every builtin the module expects the
 *      host to provide) is read back through the SDK itself;
 *  (c) it is not deprecated (Rego v1 rejects those) and not on DENY below.
 *
 * The output is deterministic: builtins sorted by name, keys in a fixed order.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Builtins refused even though they would run. Policies must be pure
 * functions of (input, data): the same request must always get the same
 * decision, so decisions can be unit-tested and replayed from the audit log.
 * Anything flagged `nondeterministic` by OPA is refused as well (see
 * isNondeterministic); the entries below say why each one is out.
 */
const DENY = new Map([
  // The clock comes from the gateway as input.now_ns, never from the host.
  ['time.now_ns', 'reads the host clock; policies take time from input.now_ns'],
  // Outside world: the gateway decides on verified facts in input/data only.
  ['http.send', 'network I/O from inside a decision'],
  ['net.lookup_ip_addr', 'DNS lookup from inside a decision'],
  ['opa.runtime', 'reads the host environment / OPA config'],
  ['providers.aws.sign_req', 'signs requests with credentials and the current time'],
  // Randomness.
  ['rand.intn', 'random'],
  ['uuid.rfc4122', 'random UUID'],
  // JWT: minting tokens needs signing keys inside policy, and ECDSA/PSS
  // signatures are randomised; decode_verify checks exp/nbf against the host
  // clock. (io.jwt.verify_* take the key as an argument and are deterministic;
  // they are not denied here, they fall out by rule (b) if opa-wasm cannot run them.)
  ['io.jwt.encode_sign', 'mints tokens with a key held by policy; randomised signatures'],
  ['io.jwt.encode_sign_raw', 'mints tokens with a key held by policy; randomised signatures'],
  ['io.jwt.decode_verify', 'checks exp/nbf against the host clock'],
  // Certificate chain verification checks validity periods against the host clock.
  ['crypto.x509.parse_and_verify_certificates', 'verifies validity against the host clock'],
  ['crypto.x509.parse_and_verify_certificates_with_options', 'verifies validity against the host clock'],
  // Debug output and test-only helpers: not decision logic.
  ['print', 'debug output (needs --wasm-include-print and a host println)'],
  ['internal.print', 'debug output behind print()'],
  ['trace', 'evaluation tracing, a no-op or host output'],
  ['internal.test_case', 'used by `opa test` only'],
]);

/** Builtins that are the unification/assignment operators themselves: always native. */
const ALWAYS_NATIVE = new Set(['eq', 'assign']);

function parseArgs(argv) {
  const opts = { opa: join(repoRoot, '.tools/bin/opa'), out: join(repoRoot, 'policies/capabilities.json') };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--opa') opts.opa = resolve(value());
    else if (arg === '--out') {
      const v = value();
      opts.out = v === '-' ? '-' : resolve(v);
    } else if (arg === '-h' || arg === '--help') {
      console.log('usage: node scripts/gen-capabilities.mjs [--opa PATH] [--out PATH|-]');
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}`);
  }
  return opts;
}

function run(bin, args, cwd) {
  try {
    return execFileSync(bin, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (err) {
    const e = /** @type {{ stderr?: string, stdout?: string, message: string }} */ (err);
    throw new Error(`${bin} ${args.join(' ')} failed: ${e.stderr || e.stdout || e.message}`);
  }
}

function isNondeterministic(b) {
  return b.nondeterministic === true;
}

/** The Rego body that exercises one builtin, arguments taken from input. */
function probeBody(b) {
  const n = b.decl?.args?.length ?? 0;
  const args = Array.from({ length: n }, (_, i) => `input.a${i}`);
  if (b.name === 'internal.member_2') return 'input.a0 in input.a1';
  if (b.name === 'internal.member_3') return 'input.a0, input.a1 in input.a2';
  if (b.name === 'internal.template_string') return 'x := $"{input.a0}"';
  if (b.infix) return `x := ${args[0]} ${b.infix} ${args[1]}`;
  return `x := ${b.name}(${args.join(', ')})`;
}

function probeModule(candidates) {
  const rules = candidates.map((b, i) => `# ${b.name}\np${i} if {\n\t${probeBody(b)}\n}\n`);
  return `package probe\n\n${rules.join('\n')}`;
}

/** Extracts policy.wasm from an `opa build` tarball without a tar dependency. */
function wasmFromBundle(gz) {
  const tarball = gunzipSync(gz);
  for (let off = 0; off + 512 <= tarball.length; ) {
    const header = tarball.subarray(off, off + 512);
    if (header.every((byte) => byte === 0)) break;
    const name = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(header.subarray(124, 136).toString('utf8').replace(/\0.*$/s, '').trim(), 8);
    const body = tarball.subarray(off + 512, off + 512 + size);
    if (name.replace(/^\/+/, '') === 'policy.wasm') return Buffer.from(body);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error('policy.wasm not found in bundle');
}

/**
 * Builds the candidates into one WASM module. If OPA refuses the batch, it is
 * split in halves until the builtins it refuses are isolated (those are dropped).
 */
function buildProbe(opa, candidates, work, refused) {
  const dir = mkdtempSync(join(work, 'probe-'));
  writeFileSync(join(dir, 'probe.rego'), probeModule(candidates));
  try {
    run(opa, ['build', '-t', 'wasm', '-e', 'probe', '-o', 'bundle.tar.gz', 'probe.rego'], dir);
    return [{ candidates, wasm: wasmFromBundle(readFileSync(join(dir, 'bundle.tar.gz'))) }];
  } catch (err) {
    if (candidates.length === 1) {
      refused.set(candidates[0].name, String(err.message).split('\n').slice(0, 3).join(' '));
      return [];
    }
    const mid = Math.ceil(candidates.length / 2);
    return [
      ...buildProbe(opa, candidates.slice(0, mid), work, refused),
      ...buildProbe(opa, candidates.slice(mid), work, refused),
    ];
  }
}

/** Names the module asks the host for, plus its ABI version, read through the SDK. */
async function inspectWasm(wasm) {
  const { loadPolicy } = await import('@open-policy-agent/opa-wasm');
  const policy = await loadPolicy(wasm);
  const inst = policy.wasmInstance;
  const addr = inst.exports.opa_json_dump(inst.exports.builtins());
  const mem = new Uint8Array(policy.mem.buffer);
  let end = addr;
  while (mem[end] !== 0) end++;
  const imported = Object.keys(JSON.parse(Buffer.from(mem.subarray(addr, end)).toString('utf8')));
  const global = (g) => (typeof g === 'number' ? g : g?.value);
  const abi = {
    version: global(inst.exports.opa_wasm_abi_version),
    minor_version: global(inst.exports.opa_wasm_abi_minor_version),
  };
  return { imported, abi };
}

/** Names of the builtins the SDK implements in JavaScript (src/builtins/*.js). */
function sdkBuiltins() {
  const require = createRequire(import.meta.url);
  // The package's "exports" field hides src/; resolve the package root from its main entry.
  const main = require.resolve('@open-policy-agent/opa-wasm');
  const dir = join(dirname(main), 'builtins');
  const names = new Set();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.js') && f !== 'index.js').sort()) {
    for (const name of Object.keys(require(join(dir, file)))) names.add(name);
  }
  return names;
}

function sortKeysDeep(value) {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeysDeep(value[k])]),
    );
  }
  return value;
}

export async function generate(opa) {
  const current = JSON.parse(run(opa, ['capabilities', '--current']));
  const all = current.builtins;

  const refused = new Map(); // name -> reason
  const candidates = [];
  const kept = new Set();
  for (const b of all) {
    if (b.deprecated) refused.set(b.name, 'deprecated (rejected by Rego v1)');
    else if (DENY.has(b.name)) refused.set(b.name, `denied: ${DENY.get(b.name)}`);
    else if (isNondeterministic(b)) refused.set(b.name, 'denied: flagged nondeterministic by OPA');
    else if (ALWAYS_NATIVE.has(b.name)) kept.add(b.name);
    else candidates.push(b);
  }

  const work = mkdtempSync(join(tmpdir(), 'gatehouse-caps-'));
  let abi;
  try {
    const js = sdkBuiltins();
    for (const { candidates: batch, wasm } of buildProbe(opa, candidates, work, refused)) {
      const inspected = await inspectWasm(wasm);
      abi ??= inspected.abi;
      const imported = new Set(inspected.imported);
      for (const b of batch) {
        if (!imported.has(b.name) || js.has(b.name)) kept.add(b.name);
        else refused.set(b.name, 'not implemented by the OPA WASM compiler nor by opa-wasm');
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (!abi) throw new Error('no probe module could be built');

  const builtins = all
    .filter((b) => kept.has(b.name))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map(sortKeysDeep);

  // Language features that compile to a builtin we could not keep must go too,
  // or the type checker would accept policies that cannot be built.
  const features = [...(current.features ?? [])]
    .filter((f) => f !== 'template_strings' || kept.has('internal.template_string'))
    .sort();

  const doc = {
    builtins,
    future_keywords: [...(current.future_keywords ?? [])].sort(),
    features,
    wasm_abi_versions: [abi],
  };
  return { doc, refused };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const { doc, refused } = await generate(opts.opa);
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  if (opts.out === '-') process.stdout.write(text);
  else {
    writeFileSync(opts.out, text);
    console.error(`wrote ${opts.out}: ${doc.builtins.length} builtins kept, ${refused.size} left out`);
  }
  if (process.env.GEN_CAPS_VERBOSE) {
    for (const [name, why] of [...refused].sort()) console.error(`  - ${name}: ${why}`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
