/**
 * The literal shape of a SQL text: the text with each numeric and string
 * constant replaced by a marker of its token class, everything else
 * (whitespace included: 'a'<newline>'b' is one constant, 'a' 'b' two)
 * copied. Two texts with the same shape lex to the same tokens but for
 * constant values, and the grammar reads no constant's value (FLOAT(p),
 * the one place in a query that does, gives null); so a parse whose facts
 * read no constant (analyse.ts) holds for both. `null` means "not sure":
 * the caller then uses the exact text.
 *
 * A lexer for the common, certain cases only (PostgreSQL 16+ rules, as
 * libpg-query lexes): anything whose token boundaries or class could depend
 * on session settings, server version or a constant's value gives null.
 *
 * Markers start with NUL, which no analysed text contains (analyse.ts
 * refuses it, and so does this scanner), so a marker cannot also be text.
 * ICONST and FCONST get distinct markers: the grammar takes an integer
 * where it refuses a float (`int[3]`).
 */

const INTEGER_MARKER = '\0i';
const FLOAT_MARKER = '\0f';
const STRING_MARKER = '\0s';

/** Longer texts are rare and not worth a memo entry per shape. */
const MAX_LENGTH = 16 * 1024;
const INT32_MAX = 2147483647;
const PREFIX_LETTERS = 'xXoObB';

/** PostgreSQL 16+ numeric tokens (scan.l: hex/oct/bin integers, decinteger, numeric, real). */
const NUMBER = /0[xX](?:_?[0-9A-Fa-f])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][-+]?\d(?:_?\d)*)?/y;

const QUOTE = 39; // '
const DOUBLE_QUOTE = 34; // "
const DOLLAR = 36;
const DOT = 46;
const MINUS = 45;
const SLASH = 47;
const STAR = 42;
const BACKSLASH = 92;
const AMPERSAND = 38;

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** PostgreSQL's ident_start, with every non-ASCII char (a high-bit byte in UTF-8). */
function isIdentStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 0x80;
}

/** PostgreSQL's ident_cont. */
function isIdentChar(c: number): boolean {
  return isIdentStart(c) || isDigit(c) || c === DOLLAR;
}

/** The lexer's class of a numeric token: ICONST for an integer (any base, `_` allowed) that fits int32, else FCONST. */
function numberMarker(token: string): string {
  const prefixed = token.length > 2 && token.charCodeAt(0) === 48 && PREFIX_LETTERS.includes(token[1] as string);
  if (!prefixed && /[.eE]/.test(token)) return FLOAT_MARKER;
  const digits = token.includes('_') ? token.replaceAll('_', '') : token;
  // Number() reads 0x/0o/0b; rounding a long value cannot bring it under 2^31.
  return Number(digits.toLowerCase()) <= INT32_MAX ? INTEGER_MARKER : FLOAT_MARKER;
}

export function literalShape(sql: string): string | null {
  const length = sql.length;
  // A NUL could pass for a marker (and analyse.ts refuses the text anyway).
  if (length > MAX_LENGTH || sql.includes('\0')) return null;
  let shape = '';
  let copied = 0; // sql[copied, i) is still to be appended to shape
  let i = 0;
  while (i < length) {
    const c = sql.charCodeAt(i);
    if (isIdentStart(c)) {
      // A whole identifier or keyword: digits and $ inside it are not literals or parameters.
      const start = i;
      do i++;
      while (i < length && isIdentChar(sql.charCodeAt(i)));
      // FLOAT(p) is float4 or float8 or an error depending on p's value: the grammar reads that constant.
      if (i - start === 5 && sql.slice(start, i).toLowerCase() === 'float') return null;
      continue;
    }
    if (isDigit(c) || (c === DOT && isDigit(sql.charCodeAt(i + 1)))) {
      // Identifier runs and parameters take their digits: only a `.5` gets here after one (t.5, $1.5), too odd to reason about.
      if (i > 0 && isIdentChar(sql.charCodeAt(i - 1))) return null;
      NUMBER.lastIndex = i;
      const token = NUMBER.exec(sql)?.[0] as string; // always matches at a digit or .digit
      const end = i + token.length;
      const next = sql.charCodeAt(end);
      // 123abc and 1.2.3: PostgreSQL versions lex these differently (or not at all).
      if (isIdentChar(next) || next === DOT) return null;
      shape += sql.slice(copied, i) + numberMarker(token);
      copied = i = end;
      continue;
    }
    switch (c) {
      case QUOTE: {
        // E'', B'', X'', N'' (an identifier char before the quote) and U&'' are other tokens.
        const before = sql.charCodeAt(i - 1);
        if (isIdentChar(before) || before === AMPERSAND) return null;
        let end = i + 1;
        for (;; end++) {
          if (end >= length) return null; // unterminated
          const s = sql.charCodeAt(end);
          // With standard_conforming_strings off, a backslash escapes: the server would lex another token.
          if (s === BACKSLASH) return null;
          if (s !== QUOTE) continue;
          if (sql.charCodeAt(end + 1) !== QUOTE) break;
          end++; // '' inside the string
        }
        shape += sql.slice(copied, i) + STRING_MARKER;
        copied = i = end + 1;
        continue;
      }
      case DOUBLE_QUOTE: {
        // U&"…" UESCAPE '…': the string's value decides the identifier.
        if (sql.charCodeAt(i - 1) === AMPERSAND) return null;
        let end = i + 1;
        for (;;) {
          end = sql.indexOf('"', end);
          if (end < 0) return null;
          if (sql.charCodeAt(end + 1) !== DOUBLE_QUOTE) break;
          end += 2;
        }
        i = end + 1; // copied verbatim
        continue;
      }
      case DOLLAR: {
        // $1 is a parameter; anything else here opens a dollar-quoted string.
        let end = i + 1;
        while (isDigit(sql.charCodeAt(end))) end++;
        if (end === i + 1 || isIdentChar(sql.charCodeAt(end))) return null;
        i = end;
        continue;
      }
      case MINUS:
        if (sql.charCodeAt(i + 1) === MINUS) return null; // comment
        break;
      case SLASH:
        if (sql.charCodeAt(i + 1) === STAR) return null; // comment
        break;
    }
    i++;
  }
  return copied === 0 ? sql : shape + sql.slice(copied);
}
