import { Command } from 'commander';
import { loadBundle } from '../../engine/bundle/bundle.js';
import { nowNs } from '../../engine/clock.js';
import { readConfig } from '../config.js';
import { verificationOf } from '../../engine/engine.js';
import { CompiledPolicy } from '../../engine/policy/compiled-policy.js';
import { PolicyEvaluator } from '../../engine/policy/evaluator.js';
import { callApi, expectJson } from '../api-client.js';
import { printJson, readJsonInput, UsageError } from '../io.js';

interface EvalOptions {
  entrypoint: string;
  input: string;
  bundle?: string;
  config?: string;
  server?: string;
}

export function policyCommand(): Command {
  const policy = new Command('policy').description('Work with policy decisions.');
  policy
    .command('eval')
    .description('Evaluate one decision with the compiled bundle (the same WASM the gateway runs) and print it with its metadata.')
    .requiredOption('-e, --entrypoint <path>', 'entrypoint, e.g. gatehouse/postgres/decision')
    .requiredOption('-i, --input <file>', 'input document as JSON, or - for standard input')
    .option('-b, --bundle <path>', 'bundle file or directory (default: the config\'s bundle, else build/bundle.tar.gz)')
    .option('-c, --config <file>', 'take the bundle source and signature keys from this gatehouse.yaml')
    .option('-s, --server <url>', 'ask a running gateway instead, e.g. http://127.0.0.1:8181')
    .addHelpText('after', `
The input gets now_ns (the gateway's clock) when it has none.

Examples:
  gatehouse policy eval -e gatehouse/postgres/decision -i examples/inputs/analyst-select.json
  gatehouse policy eval -e gatehouse/postgres/decision -i - --server http://127.0.0.1:8181 < input.json`)
    .action(async (options: EvalOptions) => {
      const input = await readJsonInput(options.input);
      if (typeof input !== 'object' || input === null || Array.isArray(input)) {
        throw new UsageError('the input must be a JSON object');
      }
      const withClock = { now_ns: nowNs(), ...input };
      printJson(options.server ? await evalOnServer(options.server, options.entrypoint, withClock) : await evalLocally(options, withClock));
    });
  return policy;
}

async function evalLocally(options: EvalOptions, input: unknown): Promise<unknown> {
  const config = options.config ? readConfig(options.config) : undefined;
  const source = config?.policy.bundle.source;
  if (source?.kind === 'http' && !options.bundle) {
    throw new UsageError(`the config's bundle comes from ${source.url}; pass --bundle or --server`);
  }
  const path = options.bundle ?? (source?.kind === 'file' ? source.path : 'build/bundle.tar.gz');
  const bundle = await loadBundle(path, config ? verificationOf(config.policy) : undefined);
  const evaluator = new PolicyEvaluator({ timeoutMs: config?.policy.timeout_ms ?? 1000 });
  evaluator.activate(await CompiledPolicy.load(bundle));
  return evaluator.evaluate(options.entrypoint, input);
}

async function evalOnServer(server: string, entrypoint: string, input: unknown): Promise<unknown> {
  return expectJson(await callApi({ server, method: 'POST', path: `/v1/eval/${entrypoint.replace(/^\/+/, '')}`, body: { input } }));
}
