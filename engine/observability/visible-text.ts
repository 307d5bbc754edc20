/**
 * Text that came from agents (SQL, paths, reasons that quote them) as a
 * human reads it in a terminal or a chat message. Control characters would
 * act instead of show: ESC starts sequences that move the cursor and
 * rewrite lines already printed (a transcript entry could be made to read
 * ALLOW where it said DENY), CR returns to the line's start, C1 controls
 * include a one-byte CSI. Format characters reorder (bidi overrides) or
 * hide (zero-width) what is shown. Each is written as \u{…}, so what is
 * shown is what was sent. Newlines and tabs stay.
 */
// eslint-disable-next-line no-control-regex -- the control characters are what is looked for
const INVISIBLE_OR_ACTING = /[\0-\x08\x0b-\x1f\x7f-\x9f\p{Cf}\u2028\u2029]/gu;

export function visibleText(text: string): string {
  return text.replace(INVISIBLE_OR_ACTING, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}
