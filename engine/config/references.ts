import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

/** `${env:NAME}` or `${file:path}`; a string that is not a reference is a literal. */
const REFERENCE = /^\$\{(env|file):([^}]+)\}$/;

export interface ReferenceContext {
  /** Relative `${file:…}` paths are relative to the config file's folder. */
  baseDir: string;
  env: NodeJS.ProcessEnv;
  /**
   * Commands other than `serve` set this: a secret they cannot resolve
   * becomes an error only when it is used (Secret.unresolved).
   */
  deferUnresolvedSecrets?: boolean;
}

export type Resolved = { ok: true; value: string; origin: string } | { ok: false; problem: string };

export function isReference(raw: string): boolean {
  return REFERENCE.test(raw);
}

/**
 * Resolves a reference. Problems name the variable or file and never the
 * value, so they are safe to print.
 */
export function resolveReference(raw: string, ctx: ReferenceContext): Resolved {
  const match = REFERENCE.exec(raw.trim());
  if (!match) return { ok: true, value: raw, origin: 'literal' };
  const [, scheme, name] = match as unknown as [string, 'env' | 'file', string];
  if (scheme === 'env') {
    const value = ctx.env[name];
    if (value === undefined || value === '') {
      return { ok: false, problem: `environment variable ${name} is not set (referenced as \${env:${name}})` };
    }
    return { ok: true, value, origin: `env:${name}` };
  }
  const path = isAbsolute(name) ? name : resolve(ctx.baseDir, name);
  try {
    // Files written by editors and `echo` end in a newline that is not part of the secret.
    return { ok: true, value: readFileSync(path, 'utf8').replace(/\r?\n$/, ''), origin: `file:${path}` };
  } catch (err) {
    return { ok: false, problem: `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}), referenced as \${file:${name}}` };
  }
}
