/**
 * Terminal and ISO-2022 escape sequences, which the reader of a decoded or
 * printed body does not see: `ESC ( B` switches an ISO-2022-JP decoder to
 * ASCII and leaves nothing (a client that guesses the charset decodes it
 * so; Python's requests does for a body without one), `ESC [ 0 m` resets a
 * terminal's colours. Between the letters of an address or a token, they
 * hide it from every pattern that reads the text as it came.
 *
 * Taken out: CSI (`ESC [` … final byte), OSC (`ESC ]` … BEL or ST), the
 * other escape sequences (`ESC`, intermediate bytes, a final byte: ISO-2022
 * designations and single shifts), and SO/SI. Each part is bounded by
 * characters the next cannot start with: linear.
 */
// eslint-disable-next-line no-control-regex -- the control characters are what is looked for
const ESCAPE_SEQUENCES = /\x1b(?:\[[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[\x20-\x2f]*[\x30-\x7e]?)|[\x0e\x0f]/g;

/** Whether the text holds an escape or shift character. */
export function hasEscapes(text: string): boolean {
  return text.includes('\x1b') || text.includes('\x0e') || text.includes('\x0f');
}

export function withoutEscapeSequences(text: string): string {
  return text.replace(ESCAPE_SEQUENCES, '');
}
