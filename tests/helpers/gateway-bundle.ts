/**
 * Builds the project's real policy bundle with `make bundle`, so tests
 * compile exactly what the Makefile ships (entrypoints, capabilities, which
 * folders go in) without restating the flags.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadBundle } from '../../engine/bundle/bundle.js';
import { CompiledPolicy } from '../../engine/policy/compiled-policy.js';
import { PolicyEvaluator } from '../../engine/policy/evaluator.js';
import { repoRoot } from './opa.js';

export interface BundleBuild {
  /** Where to write the bundle. */
  out: string;
  revision?: string;
  /** A policies/ folder to build instead of the project's own (e.g. an edited copy). */
  policySrc?: string;
  signingKey?: string;
  signingAlg?: string;
}

export function makeBundle({ out, revision = 'test', policySrc, signingKey, signingAlg }: BundleBuild): string {
  const vars = [`BUNDLE=${out}`, `REVISION=${revision}`];
  if (policySrc) vars.push(`POLICY_SRC=${policySrc}`);
  if (signingKey) vars.push(`SIGNING_KEY=${signingKey}`, `SIGNING_ALG=${signingAlg ?? 'RS256'}`);
  execFileSync('make', ['-s', '--no-print-directory', 'bundle', ...vars], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] });
  return out;
}

/** An evaluator running the project's bundle, as the gateway would. */
export async function projectEvaluator(out: string): Promise<PolicyEvaluator> {
  const evaluator = new PolicyEvaluator({ timeoutMs: 1000 });
  evaluator.activate(await CompiledPolicy.load(await loadBundle(makeBundle({ out }))));
  return evaluator;
}

/** A copy of policies/ in `dir` whose policies/data/access/data.yaml is `edit`ed (once; later edits apply to the copy). */
export function policiesWithData(dir: string, edit: (data: string, file: string) => string): string {
  const copy = join(dir, 'policies');
  if (!existsSync(copy)) cpSync(join(repoRoot, 'policies'), copy, { recursive: true });
  const file = join(copy, 'data', 'access', 'data.yaml');
  writeFileSync(file, edit(readFileSync(file, 'utf8'), file));
  return copy;
}

/**
 * A copy of policies/ in `dir` whose approval rule `rule` (in
 * policies/data/access/data.yaml) has `mode`: a rule's mode wins over the
 * target's, so tests of the other mode build their bundle from the copy.
 */
export function policiesWithApprovalMode(dir: string, rule: string, mode: 'hold' | 'ticket'): string {
  return policiesWithData(dir, (data, file) => {
    const pattern = new RegExp(`(- name: ${rule}\\n(?:(?!\\n {2}- name:)[\\s\\S])*?\\n {4}mode: )\\w+`);
    if (!pattern.test(data)) throw new Error(`no "mode:" in approval rule ${rule} of ${file}; update policiesWithApprovalMode`);
    return data.replace(pattern, `$1${mode}`);
  });
}
