import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { parseBundle, readBundleFiles, type BundleVerification } from '../../engine/bundle/bundle.js';
import { BundleError } from '../../engine/bundle/errors.js';
import { readConfig } from '../config.js';
import { describeSignature, verificationOf } from '../../engine/engine.js';
import { printJson, UsageError } from '../io.js';

interface InspectOptions {
  config?: string;
  key?: string;
  alg: string;
  keyId: string;
  json?: boolean;
}

export function bundleCommand(): Command {
  const bundle = new Command('bundle').description('Work with policy bundles.');
  bundle
    .command('inspect')
    .description('Print a bundle\'s revision and entrypoints, and whether its signature verifies.')
    .argument('<path>', 'bundle .tar.gz file or directory')
    .option('-c, --config <file>', 'verify with the keys in this gatehouse.yaml')
    .option('-k, --key <pem>', 'verify with this public key file (or HMAC secret file)')
    .option('--alg <alg>', 'algorithm of --key', 'RS256')
    .option('--key-id <id>', 'key id of --key, as signed into the bundle', 'default')
    .option('--json', 'print JSON')
    .action(async (path: string, options: InspectOptions) => {
      const verification = verificationFrom(options);
      const files = await readBundleFiles(path);
      let report: Record<string, unknown>;
      try {
        const b = await parseBundle(files, verification);
        report = {
          revision: b.revision,
          entrypoints: [...b.entrypoints.keys()],
          roots: b.roots.map((r) => (r === '' ? '(whole data tree)' : r)),
          signature: describeSignature(b.signature),
          files: files.size,
          digest: b.digest,
        };
      } catch (err) {
        if (!(err instanceof BundleError)) throw err;
        report = { signature: `INVALID (${err.kind}): ${err.message}`, files: files.size };
        process.exitCode = 1;
      }
      if (options.json) printJson(report);
      else for (const [key, value] of Object.entries(report)) console.log(`${key.padEnd(12)} ${Array.isArray(value) ? value.join(', ') : String(value)}`);
    });
  return bundle;
}

function verificationFrom(options: InspectOptions): BundleVerification | undefined {
  if (options.key && options.config) throw new UsageError('give --key or --config, not both');
  if (options.config) return verificationOf(readConfig(options.config).policy);
  if (!options.key) return undefined;
  let key: string;
  try {
    key = readFileSync(options.key, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read key ${options.key}: ${(err as NodeJS.ErrnoException).code}`);
  }
  return { required: true, keys: [{ id: options.keyId, algorithm: options.alg, key }] };
}
