import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { configSchema, type GatehouseConfig } from './schema.js';
import { Secret } from './secret.js';

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: readonly string[],
  ) {
    super(`${file}: invalid configuration\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  /** Leave secrets that cannot be resolved for later (commands that may not need them); see Secret.unresolved. */
  deferUnresolvedSecrets?: boolean;
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env, options: LoadOptions = {}): GatehouseConfig {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
  return parseConfig(text, path, env, options);
}

export function parseConfig(text: string, path: string, env: NodeJS.ProcessEnv = process.env, options: LoadOptions = {}): GatehouseConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, lineCounter: lines });
  if (doc.errors.length > 0) {
    // yaml's messages quote the offending source line, which may hold a
    // secret; keep only the position and the kind of mistake.
    throw new ConfigError(path, doc.errors.map((e) => {
      const { line, col } = lines.linePos(e.pos[0]);
      return `line ${line}, column ${col}: ${e.code} (invalid YAML)`;
    }));
  }
  const result = configSchema({ baseDir: dirname(path), env, ...options }).safeParse(doc.toJS() ?? {});
  if (!result.success) throw new ConfigError(path, result.error.issues.map(describeIssue));
  return result.data;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const key = formatPath(issue.path);
  const message = issue.code === 'unrecognized_keys'
    ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')} (check the spelling; see examples/gatehouse.yaml)`
    : issue.message;
  return `${key || '(top level)'}: ${message}`;
}

/** ['targets', 1, 'credentials', 'password'] → targets[1].credentials.password */
export function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i === 0 ? '' : '.'}${String(part)}`))
    .join('');
}

/** Paths of secrets written literally in the config, for a loud warning at start-up. */
export function findPlaintextSecrets(value: unknown, path: PropertyKey[] = []): string[] {
  if (value instanceof Secret) return value.origin === 'literal' ? [formatPath(path)] : [];
  if (Array.isArray(value)) return value.flatMap((v, i) => findPlaintextSecrets(v, [...path, i]));
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).flatMap(([k, v]) => findPlaintextSecrets(v, [...path, k]));
  }
  return [];
}
