import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import { visibleText } from '../engine/observability/visible-text.js';

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

/** An ISO time without its milliseconds, for tables. */
export function isoToTheSecond(iso: string): string {
  return iso.replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Rows under a header, each column as wide as its widest cell. Cells may
 * hold what agents or databases named, so they are shown, never acted on
 * by the terminal (visibleText).
 */
export function printTable(header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const row of [header, ...rows]) {
    process.stdout.write(visibleText(`${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')}\n`));
  }
}
