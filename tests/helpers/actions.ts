import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './opa.js';

/** One of examples/actions/*.json: what an integration sends as the action of authorize(). */
export function exampleAction(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(repoRoot, 'examples/actions', name), 'utf8')) as Record<string, unknown>;
}
