/**
 * One column's mask rule, compiled once per result into a function
 * `string -> string | null` (null is SQL NULL / JSON null), and the counts
 * the audit event needs.
 *
 * Compiling resolves everything a row should not pay for: detector names
 * (an unknown one throws, and the caller denies the statement), the hash
 * key, the redaction markers. Per value, a whole-value rule is one call; a
 * detector rule scans and rebuilds the string only when something matched,
 * and otherwise returns the very same string, so a caller can tell
 * "unchanged" with `===` and keep the original bytes.
 *
 * Counting: a whole-value rule counts values, a detector rule counts spans
 * per detector. Only numbers are kept, never a value. A masker belongs to
 * one result stream: its counters are not shared safely between concurrent
 * ones.
 */
import type { MaskCount } from '../audit/events.js';
import { resolveDetectors, scanSpans, type DetectorName } from './detectors.js';
import { MaskRuleError } from './errors.js';
import { hasEscapes, withoutEscapeSequences } from './escape-sequences.js';
import { createHasher, partial, REDACTED, redactMarker, type HashKey, type Hasher, type MaskStrategy } from './strategies.js';

export interface MaskRuleSpec {
  strategy: MaskStrategy;
  /** Absent or empty: the rule masks the whole value (an empty list masking nothing would fail open). */
  detectors?: readonly string[] | undefined;
}

export interface MaskerOptions {
  /** Required when the strategy is "hash". */
  hashKey?: HashKey | undefined;
}

export type MaskFunction = (value: string) => string | null;

export interface ColumnMasker {
  readonly strategy: MaskStrategy;
  /** The rule's detectors, validated; empty when it masks whole values. */
  readonly detectors: readonly DetectorName[];
  /** Masks one non-NULL value. Returns `value` itself when nothing in it matched. */
  readonly mask: MaskFunction;
  /**
   * Counts a value masked without being read: the caller replaced it itself
   * (a type that cannot hold the marker became NULL, a constant marker was
   * written without decoding the value).
   */
  countValue(): void;
  /** Non-zero counts since creation or the last reset, for the audit event. */
  counts(column: string): MaskCount[];
  reset(): void;
}

/** Throws MaskRuleError (UnknownDetectorError, a missing or short hash key). */
export function compileMasker(rule: MaskRuleSpec, options: MaskerOptions = {}): ColumnMasker {
  const detectors = resolveDetectors(rule.detectors ?? []);
  let hasher: Hasher | null = null;
  if (rule.strategy === 'hash') {
    if (options.hashKey === undefined) throw new MaskRuleError('a "hash" mask rule needs a hash key, and none is configured');
    hasher = createHasher(options.hashKey);
  }
  return new CompiledMasker(rule.strategy, detectors.map((d) => d.name), hasher);
}

class CompiledMasker implements ColumnMasker {
  readonly mask: MaskFunction;
  private values = 0;
  private readonly spans: number[];

  constructor(
    readonly strategy: MaskStrategy,
    readonly detectors: readonly DetectorName[],
    hasher: Hasher | null,
  ) {
    this.spans = detectors.map(() => 0);
    this.mask = detectors.length === 0 ? this.wholeValue(hasher) : this.bySpan(hasher);
  }

  private wholeValue(hasher: Hasher | null): MaskFunction {
    switch (this.strategy) {
      case 'redact':
        return () => { this.values++; return REDACTED; };
      case 'partial':
        return (value) => { this.values++; return partial(value); };
      case 'hash': {
        const hash = hasher!;
        return (value) => { this.values++; return hash(value); };
      }
      case 'null':
        return () => { this.values++; return null; };
    }
  }

  private bySpan(hasher: Hasher | null): MaskFunction {
    const detectors = resolveDetectors(this.detectors);
    const slot = Object.fromEntries(this.detectors.map((d, i) => [d, i])) as Record<DetectorName, number>;
    const markers = Object.fromEntries(this.detectors.map((d) => [d, redactMarker(d)])) as Record<DetectorName, string>;
    const replace: (text: string, detector: DetectorName) => string =
      this.strategy === 'partial' ? partial
        : this.strategy === 'hash' ? hasher!
          : (_text, detector) => markers[detector];
    const isNull = this.strategy === 'null';
    const spans = this.spans;
    return (text) => {
      let value = text;
      let found = scanSpans(value, detectors);
      // Characters written as escapes a client reads back (NDJSON or JSON5 inside a string, markup): "\u0034111…",
      // and escape sequences a terminal or an ISO-2022 decoder shows nothing of ("ada@exa\x1b(Bmple.com"). Read
      // whenever there are any: a match elsewhere in the value must not let them through.
      let read = value.includes('\\') || value.includes('&') ? withPlainEscapesRead(value) : value;
      if (hasEscapes(read)) read = withoutEscapeSequences(read);
      if (read !== value) {
        const inRead = scanSpans(read, detectors);
        if (inRead.length > 0) {
          value = read;
          found = inRead;
        }
      }
      if (found.length === 0) return value;
      for (const s of found) spans[slot[s.detector]]!++;
      if (isNull) return null; // any match nulls the whole value: its remains would still identify it
      let out = '';
      let pos = 0;
      for (const s of found) {
        out += value.slice(pos, s.start) + replace(value.slice(s.start, s.end), s.detector);
        pos = s.end;
      }
      return out + value.slice(pos);
    };
  }

  countValue(): void {
    this.values++;
  }

  counts(column: string): MaskCount[] {
    const out: MaskCount[] = [];
    if (this.values > 0) out.push({ column, detector: null, count: this.values });
    this.detectors.forEach((detector, i) => {
      if (this.spans[i]! > 0) out.push({ column, detector, count: this.spans[i]! });
    });
    return out;
  }

  reset(): void {
    this.values = 0;
    this.spans.fill(0);
  }
}

/**
 * The value with escapes read as a client reads them when it parses what
 * the value holds (a JSON document in a string, an HTML fragment):
 * JSON's and JavaScript's `\u0034`, `\u{34}` and `\x34`, HTML's `&#52;`,
 * `&#x34;` and the named references values are spelled with (`&nbsp;`,
 * `&shy;`, `&period;`, …). Detectors must see what the client sees; they
 * read fullwidth, zero-width and Unicode-space characters themselves.
 * Escapes of what gives the value its shape (quotes, backslashes, `<`,
 * `>`, `&`, control characters but ESC, SO and SI, whose sequences are
 * then taken out) stay, and an escaped backslash is kept whole, so
 * `\\u0034` stays a backslash and "u0034".
 */
function withPlainEscapesRead(value: string): string {
  return value.replace(PLAIN_ESCAPE, (escape: string, braced?: string, u?: string, x?: string, hexRef?: string, decRef?: string, named?: string) => {
    if (named !== undefined) return NAMED[named] ?? escape;
    if (braced === undefined && u === undefined && x === undefined && hexRef === undefined && decRef === undefined) return escape;
    const code = decRef !== undefined ? Number(decRef) : parseInt(braced ?? u ?? x ?? hexRef!, 16);
    if (code > 0x10ffff) return escape;
    const c = String.fromCodePoint(code);
    // An escape or shift character is read too: the escape sequence it starts is taken out after (hasEscapes).
    return SHAPING.test(c) && !hasEscapes(c) ? escape : c;
  });
}

// An escaped backslash first, so that what follows it is not read as an escape.
const PLAIN_ESCAPE = /\\\\|\\u\{0*([0-9a-fA-F]{1,6})\}|\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})|&#[xX]0*([0-9a-fA-F]{1,6});?|&#0*(\d{1,7});?|&([A-Za-z]{2,8});/g;
const SHAPING = /^(?:\p{Cc}|["'\\<>&])$/u;
const NAMED: Record<string, string> = {
  nbsp: '\u00a0', shy: '\u00ad', ensp: '\u2002', emsp: '\u2003', thinsp: '\u2009', zwj: '\u200d', zwnj: '\u200c',
  period: '.', commat: '@', hyphen: '\u2010', dash: '\u2010', ndash: '\u2013', mdash: '\u2014', minus: '\u2212',
  lpar: '(', rpar: ')', plus: '+', colon: ':', lowbar: '_', sol: '/', num: '#',
};
