/**
 * The gateway's clock for `input.now_ns`. Policies take time from input so
 * that a decision can be replayed; millisecond resolution is what wall
 * clocks offer anyway, and it stays an exact integer in a JSON number.
 */
export function nowNs(): number {
  return Date.now() * 1e6;
}
