import { describe, expect, it } from 'vitest';
import { parseDurationSeconds } from '../../cli/duration.js';

describe('parseDurationSeconds', () => {
  it.each([['90s', 90], ['15m', 900], ['1h', 3600], [' 2h ', 7200], ['0s', 0]])('%j is %d seconds', (text, seconds) => {
    expect(parseDurationSeconds(text)).toBe(seconds);
  });

  it.each(['15', '1.5h', '1d', '-5m', 'h', '', '1h30m', '15 m'])('refuses %j', (text) => {
    expect(parseDurationSeconds(text)).toBeUndefined();
  });
});
