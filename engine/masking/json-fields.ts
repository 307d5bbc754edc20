/**
 * A decision's field mask rules for JSON documents (HTTP bodies), compiled
 * once per document stream into something that rewrites a parsed document
 * in place and counts what it changed.
 *
 * Each rule is a `field` (json-path.ts: a path or a JSON Pointer) plus the
 * same strategy and detectors as a column rule, and is compiled with
 * compileMasker, so strategies, detectors and counts are the ones every
 * protocol uses. Per matched value:
 *
 *   - a whole-value rule (no detectors) masks any value but null: a string
 *     as itself, a number or boolean as its text (the result is a string, or
 *     null), and an object or array is replaced as a whole (by the marker,
 *     null, or the hash of its JSON; "partial" of a structure has no
 *     meaningful shape and is redacted), so nothing inside it survives.
 *   - a detector rule scans every string at or under the match (an object
 *     where text was expected is searched, not skipped), and with them:
 *       - numbers, as their text ("notes": 4111111111111111 is a card): a
 *         number something matched in becomes the masked string (or null).
 *         A number longer than a double holds (a 19-digit card) is scanned
 *         as the text it came as, when the document was read with
 *         parseJsonExactly (json-numbers.ts).
 *       - member names of the objects at or under the match
 *         ({"ada@example.com": 1}): a name something matched in is renamed
 *         to its masked form, in place and in the same order ("null", which
 *         cannot name a member, names it "[REDACTED]"). Masked names can
 *         collide ("[REDACTED:email]" twice, or a name already there): the
 *         second and later get "#2", "#3", … (the first free), so every
 *         value survives and stays apart. Refusing the document instead
 *         would deny every response keyed by email, a common shape, and the
 *         suffix tells nothing but the order.
 *     Booleans are left alone; so is the member name that selected the match.
 *
 * `$` (no segments) is the whole document: a whole-value rule replaces it,
 * a detector rule scans every string in it. Those rules are also the only
 * ones that apply to a body that is not JSON (`maskText`).
 *
 * Rules run in order, each on the result of the previous one. A path that
 * does not exist in a document masks nothing and is not an error: responses
 * vary, and the rule still applies to the next one that has the field.
 */
import type { MaskCount } from '../audit/events.js';
import { hasDuplicateKeys, MAX_JSON_DEPTH, nestsDeeperThan } from './json-text.js';
import { parseJsonExactly, stringifyJson, taggedNumber } from './json-numbers.js';
import { ANY, DESCENDANTS, parseFieldPath, type PathSegment } from './json-path.js';
import { compileMasker, type ColumnMasker, type MaskerOptions, type MaskRuleSpec } from './masker.js';
import { REDACTED } from './strategies.js';

export interface FieldMaskRule extends MaskRuleSpec {
  /** A JSON path (`customers[*].email`, `$`) or JSON Pointer (`/customers/0/email`). */
  field: string;
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface MaskOutcome<T> {
  /** The masked value: the same reference when the rules replaced no root. */
  value: T;
  /** False when no rule changed anything, so the caller can keep the original bytes. */
  changed: boolean;
}

export interface FieldMasks {
  /** True when there are no rules at all. */
  readonly empty: boolean;
  /** True when some rule is at `$`, and so also covers a body that is not JSON. */
  readonly coversText: boolean;
  /** True when some rule names a field below `$` (so only a JSON document can satisfy it). */
  readonly hasFieldRules: boolean;
  /** The member names the field rules' paths go through (`customers`, `email` of `customers[*].email`). */
  readonly memberNames: ReadonlySet<string>;
  /** Masks a parsed document in place; returns it (or what replaced it, for a `$` rule). */
  maskDocument(document: JsonValue): MaskOutcome<JsonValue>;
  /** Masks text that is not JSON with the `$` rules; null when a "null" rule removed it. */
  maskText(text: string): MaskOutcome<string | null>;
  /** True when some `$` rule has detectors: it also scans text around the document (response header values). */
  readonly scansText: boolean;
  /** Scans text with the `$` rules that have detectors only; whole-value rules are for the document. */
  scanText(text: string): MaskOutcome<string | null>;
  /** Non-zero counts per rule (its field as the column), for the audit event. Never values. */
  counts(): MaskCount[];
  reset(): void;
}

interface CompiledRule {
  readonly field: string;
  readonly path: readonly PathSegment[];
  readonly masker: ColumnMasker;
  readonly scans: boolean;
}

/** Throws MaskRuleError (a field that does not parse, an unknown detector, a hash rule without a key). */
export function compileFieldMasks(rules: readonly FieldMaskRule[], options: MaskerOptions = {}): FieldMasks {
  return new CompiledFieldMasks(rules.map((rule) => {
    const masker = compileMasker(rule, options);
    return { field: rule.field, path: parseFieldPath(rule.field), masker, scans: masker.detectors.length > 0 };
  }));
}

type Container = JsonValue[] | { [key: string]: JsonValue };

class CompiledFieldMasks implements FieldMasks {
  readonly empty: boolean;
  readonly coversText: boolean;
  readonly hasFieldRules: boolean;
  readonly memberNames: ReadonlySet<string>;
  readonly scansText: boolean;
  private readonly rootRules: readonly CompiledRule[];
  /** Set by maskValue when something changed inside a container it rewrote in place. */
  private changedInPlace = false;
  /**
   * Containers scanContainer is inside, across the JSON strings it parsed
   * on the way: each is read only as deep as MAX_JSON_DEPTH leaves room
   * for, and deeper is scanned as text (the recursion would overflow).
   */
  private nesting = 0;

  constructor(private readonly rules: readonly CompiledRule[]) {
    this.empty = rules.length === 0;
    this.rootRules = rules.filter((r) => r.path.length === 0);
    this.coversText = this.rootRules.length > 0;
    this.scansText = this.rootRules.some((r) => r.scans);
    this.hasFieldRules = this.rootRules.length < rules.length;
    this.memberNames = new Set(rules.flatMap((r) => r.path.filter((segment): segment is string => typeof segment === 'string' && !/^(0|[1-9]\d*)$/.test(segment))));
  }

  maskDocument(document: JsonValue): MaskOutcome<JsonValue> {
    let root = document;
    let changed = false;
    for (const rule of this.rules) {
      this.changedInPlace = false;
      if (rule.path.length === 0) {
        const masked = this.maskValue(rule, root);
        if (masked !== root) {
          root = masked;
          changed = true;
        }
        changed ||= this.changedInPlace;
        continue;
      }
      forEachMatch(root, rule.path, 0, (container, key) => {
        const value = getMember(container, key);
        const masked = this.maskValue(rule, value);
        if (masked !== value) {
          setMember(container, key, masked);
          changed = true;
        }
      });
      changed ||= this.changedInPlace;
    }
    return { value: root, changed };
  }

  maskText(text: string): MaskOutcome<string | null> {
    return this.applyRoot(text, () => true);
  }

  scanText(text: string): MaskOutcome<string | null> {
    return this.applyRoot(text, (rule) => rule.scans);
  }

  private applyRoot(text: string, applies: (rule: CompiledRule) => boolean): MaskOutcome<string | null> {
    let value: string | null = text;
    for (const rule of this.rootRules) {
      if (value === null) break;
      if (applies(rule)) value = rule.masker.mask(value);
    }
    return { value, changed: value !== text };
  }

  counts(): MaskCount[] {
    return this.rules.flatMap((r) => r.masker.counts(r.field));
  }

  reset(): void {
    for (const r of this.rules) r.masker.reset();
  }

  /** The masked value; containers a detector rule scans are rewritten in place (and flagged). */
  private maskValue(rule: CompiledRule, value: JsonValue): JsonValue {
    if (value === null) return null;
    const { masker } = rule;
    if (typeof value === 'string') return rule.scans ? this.scanString(masker, value, 0) : maskString(masker, value, false);
    if (rule.scans) {
      if (typeof value === 'number') return scanNumber(masker, value);
      if (typeof value === 'object') this.scanContainer(masker, value);
      return value;
    }
    if (typeof value !== 'object') return masker.mask(String(value));
    // A whole structure: replace it, never let part of it through.
    switch (masker.strategy) {
      case 'hash':
        return masker.mask(stringifyJson(value));
      case 'partial':
        masker.countValue();
        return REDACTED;
      default:
        return masker.mask('');
    }
  }

  /**
   * A string a detector rule scans. One that is itself JSON
   * (`"{\"contact\": \"ada\\u0040example.com\"}"`, common in event and
   * log APIs) is scanned as the document a client gets when it parses it,
   * escapes read, as deep as it is encoded (up to MAX_EMBEDDED), and written
   * back compact when something in it was masked or a key in it repeats.
   */
  private scanString(masker: ColumnMasker, value: string, depth: number): JsonValue {
    if (depth < MAX_EMBEDDED && EMBEDDED_JSON.test(value) && !nestsDeeperThan(value, MAX_JSON_DEPTH - this.nesting)) {
      let inner: unknown;
      try {
        inner = parseJsonExactly(value);
      } catch {
        inner = undefined;
      }
      if (typeof inner === 'string') {
        const masked = this.scanString(masker, inner, depth + 1);
        return masked === inner ? value : JSON.stringify(masked);
      }
      if (inner !== null && typeof inner === 'object') {
        const outer = this.changedInPlace;
        this.changedInPlace = false;
        this.scanContainer(masker, inner as Container);
        const changed = this.changedInPlace;
        this.changedInPlace = outer;
        // The parse kept the last of a repeated key: the raw text would still show the others.
        return changed || hasDuplicateKeys(value) ? stringifyJson(inner) : value;
      }
    }
    return maskString(masker, value, true);
  }

  /** Scans every string, number and member name under `container` (a detector rule), rewriting it in place. */
  private scanContainer(masker: ColumnMasker, container: Container): void {
    this.nesting++;
    try {
      this.scanMembers(masker, container);
    } finally {
      this.nesting--;
    }
  }

  private scanMembers(masker: ColumnMasker, container: Container): void {
    let renamed: Map<string, string> | null = null;
    for (const key of memberKeys(container)) {
      const value = getMember(container, key);
      if (typeof value === 'string' || typeof value === 'number') {
        const masked = typeof value === 'string' ? this.scanString(masker, value, 0) : scanNumber(masker, value);
        if (masked !== value) {
          setMember(container, key, masked);
          this.changedInPlace = true;
        }
      } else if (value !== null && typeof value === 'object') {
        this.scanContainer(masker, value);
      }
      if (typeof key === 'string') {
        const name = masker.mask(key);
        if (name !== key) (renamed ??= new Map()).set(key, name ?? REDACTED);
      }
    }
    if (renamed !== null) {
      renameMembers(container as Record<string, JsonValue>, renamed);
      this.changedInPlace = true;
    }
  }
}

/** An object, an array or a JSON string, perhaps after whitespace. */
const EMBEDDED_JSON = /^\s*["[{]/;
const MAX_EMBEDDED = 4;

/** A number's text, scanned: the masked string (or null) when something matched, else the number itself. */
function scanNumber(masker: ColumnMasker, value: number): JsonValue {
  const text = String(value);
  const masked = masker.mask(text);
  return masked === text ? value : masked;
}

/**
 * A string, or a long number read as its tagged text (json-numbers.ts),
 * which is masked as the number's text. A detector also reads it as
 * JavaScript writes the number (4111111111111111.0 and 4.111111111111111e15
 * are the card 4111111111111111 to any client that parses them).
 */
function maskString(masker: ColumnMasker, value: string, scans: boolean): JsonValue {
  const number = taggedNumber(value);
  if (number === null) return masker.mask(value);
  const masked = masker.mask(number);
  if (!scans || masked !== number) return masked;
  const asRead = String(Number(number));
  const maskedAsRead = masker.mask(asRead);
  return maskedAsRead === asRead ? value : maskedAsRead;
}

/**
 * Renames members in place, keeping their order: each in `renamed` gets
 * its new name, or the first of "name#2", "name#3", … that no other member
 * has (a masked name can equal another's, or a name already there).
 */
function renameMembers(object: Record<string, JsonValue>, renamed: ReadonlyMap<string, string>): void {
  const entries = Object.keys(object).map((key): [string, JsonValue] => [key, object[key]!]);
  const taken = new Set(entries.filter(([key]) => !renamed.has(key)).map(([key]) => key));
  for (const [key] of entries) delete object[key];
  for (const [key, value] of entries) {
    let name = renamed.get(key) ?? key;
    if (renamed.has(key)) {
      const base = name;
      for (let k = 2; taken.has(name); k++) name = `${base}#${k}`;
      taken.add(name);
    }
    setMember(object, name, value);
  }
}

const INDEX = /^(0|[1-9]\d*)$/;

type Visit = (container: Container, key: string | number) => void;

/** Calls `visit(container, key)` for every place `path` (from `depth` on) selects under `node`. */
function forEachMatch(node: JsonValue, path: readonly PathSegment[], depth: number, visit: Visit): void {
  if (node === null || typeof node !== 'object') return;
  const segment = path[depth]!;
  if (segment === DESCENDANTS) {
    forEachDescendantMatch(node, path, depth, visit);
    return;
  }
  const last = depth === path.length - 1;
  const step = (key: string | number) => {
    if (last) visit(node, key);
    else forEachMatch(getMember(node, key), path, depth + 1, visit);
  };
  if (segment === ANY) {
    for (const key of memberKeys(node)) step(key);
  } else if (Array.isArray(node)) {
    if (INDEX.test(segment) && Number(segment) < node.length) step(Number(segment));
  } else if (Object.hasOwn(node, segment)) {
    step(segment);
  }
}

/**
 * `..`: the rest of the path from `node` itself, then from every container
 * below it. A member the last segment matched here is not searched again:
 * it was masked as a whole, or a detector rule already scanned all of it.
 */
function forEachDescendantMatch(node: Container, path: readonly PathSegment[], depth: number, visit: Visit): void {
  const lastHere = depth + 1 === path.length - 1;
  const matched = new Set<string | number>();
  forEachMatch(node, path, depth + 1, (container, key) => {
    if (lastHere && container === node) matched.add(key);
    visit(container, key);
  });
  for (const key of memberKeys(node)) {
    if (matched.has(key)) continue;
    const child = getMember(node, key);
    if (child !== null && typeof child === 'object') forEachDescendantMatch(child, path, depth, visit);
  }
}

function memberKeys(container: Container): (string | number)[] {
  return Array.isArray(container) ? container.map((_, i) => i) : Object.keys(container);
}

function getMember(container: Container, key: string | number): JsonValue {
  return (container as Record<string | number, JsonValue>)[key]!;
}

/**
 * Assignment, except for "__proto__": JSON.parse makes it an own member,
 * but `obj.__proto__ = v` would call the prototype setter and leave the
 * member, unmasked, where it was.
 */
function setMember(container: Container, key: string | number, value: JsonValue): void {
  if (key === '__proto__') Object.defineProperty(container, key, { value, writable: true, enumerable: true, configurable: true });
  else (container as Record<string | number, JsonValue>)[key] = value;
}
