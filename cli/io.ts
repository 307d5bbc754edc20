import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';

/** A mistake in how the command was called; reported without a stack trace. */
export class UsageError extends Error {}

/** Reads JSON from a file, or from standard input when the path is `-`. */
export async function readJsonInput(path: string): Promise<unknown> {
  const raw = path === '-' ? await text(process.stdin) : await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read input ${path}: ${err.code ?? err.message}`);
  });
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new UsageError(`input ${path === '-' ? '(stdin)' : path} is not JSON: ${(err as Error).message}`);
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
