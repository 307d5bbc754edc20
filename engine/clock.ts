/**
 * The gateway's clock for `input.now_ns`. Policies take time from input so
 * that a decision can be replayed. Millisecond resolution is what wall clocks
 * give anyway; the product is an integer, so it serialises as one.
 */
export function nowNs(): number {
  return Date.now() * 1e6;
}
