import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The module a Piscina pool's threads run, and the execArgv they need: the
 * compiled `.js` beside the caller in a build (dist/, production), else its
 * `.ts` source (vitest, tsx) loaded through tsx, since Node 20 applies
 * neither vitest's transform nor the parent's loaders to a worker. Piscina's
 * own entry is JavaScript and imports the module once `--import` has run;
 * a bare Worker whose entry is the `.ts` file would be read before it
 * (sqlite/writer.ts registers tsx from an eval'd entry instead). `what`
 * names the threads in the error when neither can be run.
 */
export function workerModule(compiled: URL, what: string): { url: URL; execArgv: string[] | undefined } {
  if (existsSync(fileURLToPath(compiled))) return { url: compiled, execArgv: undefined };
  const source = new URL(compiled.href.replace(/\.js$/, '.ts'));
  let tsx: string;
  try {
    tsx = import.meta.resolve('tsx');
  } catch (err) {
    throw new Error(`${what} is TypeScript source (${fileURLToPath(source)}) and tsx is not installed; run the compiled build (npm run build)`, { cause: err });
  }
  return { url: source, execArgv: ['--import', tsx] };
}
