import { UsageError } from './io.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * A time bound from the command line, in ms since the epoch: an ISO 8601
 * time (2025-01-31T12:00:00Z, or a date) or a duration back from `now`
 * (90s, 15m, 2h, 7d).
 */
export function parseTimeArg(value: string, option: string, now = Date.now()): number {
  const relative = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(value.trim());
  if (relative) return now - Math.round(Number(relative[1]) * UNITS[relative[2]!]!);
  // Date.parse also accepts forms like "March 7"; only ISO 8601 is promised.
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value.trim())) {
    const time = Date.parse(value);
    if (!Number.isNaN(time)) return time;
  }
  throw new UsageError(`${option} ${JSON.stringify(value)}: expected an ISO time (2025-01-31T12:00:00Z) or a duration back from now (15m, 2h, 7d)`);
}
