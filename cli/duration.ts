const UNIT_SECONDS = { s: 1, m: 60, h: 3600 } as const;

/** "90s", "15m", "1h" → seconds; undefined for anything else, so the caller can name the option. */
export function parseDurationSeconds(text: string): number | undefined {
  const match = /^(\d{1,6})(s|m|h)$/.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * UNIT_SECONDS[match[2] as keyof typeof UNIT_SECONDS];
}
