/**
 * A strict decoder for Envoy bootstrap files, for machines without an Envoy
 * binary: it checks a YAML document against Envoy's own protos (the ones
 * @grpc/grpc-js-xds ships, see ext-authz/envoy-protos.ts) the way Envoy's
 * proto3 JSON parser reads its config, and reports every problem with its YAML
 * path and line.
 *
 * protobufjs' own fromObject cannot do this job: it skips unknown keys and
 * coerces wrong types. So this walks the document against the reflection types
 * itself. What it enforces, as Envoy does:
 *  - field names: the .proto name (snake_case) or its JSON name (lowerCamelCase);
 *    anything else is an error, with a "did you mean" when one is close;
 *  - scalars: bool, string, 32/64-bit integers (as numbers or decimal strings,
 *    range-checked), floats, bytes as base64; enums by name or number;
 *  - repeated fields as lists, maps as objects with valid keys;
 *  - at most one member of a oneof;
 *  - the proto3 JSON well-known types: Duration as "0.5s", Timestamp as
 *    RFC 3339, wrappers as plain values, Struct/Value/ListValue as any JSON,
 *    Empty as {}, FieldMask as a string;
 *  - Any: its "@type" must name a message in Envoy's protos (the .proto that
 *    defines it is found and loaded on demand) and the rest is checked as that
 *    message. Where the .proto marks the field with an extension category
 *    (`[#extension-category: envoy.filters.http]`), the type must belong to it,
 *    so a network filter's config under http_filters is an error.
 *
 * What it does not do: protoc-gen-validate rules (required fields, ranges) and
 * references between parts of the file (cluster names) are Envoy's own checks
 * at startup. conftest covers the properties Gatehouse relies on.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import protobuf from 'protobufjs';
import { LineCounter, parseDocument } from 'yaml';
import { ENVOY_PROTO_DIRS } from '../../ext-authz/envoy-protos.js';

export const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';
const BOOTSTRAP_PROTO = 'envoy/config/bootstrap/v3/bootstrap.proto';

export type PathSegment = string | number;

export interface DecodeIssue {
  /** Where, as a dotted path: `static_resources.listeners[0].name`. */
  path: string;
  /** 1-based line in the YAML source, when the decoder was given source text. */
  line?: number;
  message: string;
}

/**
 * Which Any types an extension category admits, by package prefix. Only the
 * categories a Gatehouse bootstrap uses are listed; an Any field of any other
 * category is checked for a known type only.
 */
const CATEGORY_PACKAGES: Readonly<Record<string, string>> = {
  'envoy.filters.http': 'envoy.extensions.filters.http.',
  'envoy.filters.network': 'envoy.extensions.filters.network.',
  'envoy.filters.listener': 'envoy.extensions.filters.listener.',
  'envoy.access_loggers': 'envoy.extensions.access_loggers.',
  'envoy.transport_sockets.upstream': 'envoy.extensions.transport_sockets.',
  'envoy.transport_sockets.downstream': 'envoy.extensions.transport_sockets.',
};

/** Envoy accepts these in place of any extension's config. */
const TYPED_STRUCTS = new Set(['xds.type.v3.TypedStruct', 'udpa.type.v1.TypedStruct']);

/**
 * Envoy's protos in one protobufjs Root, loaded lazily: the bootstrap first,
 * then each file that defines a type an `@type` names.
 */
class EnvoyTypes {
  private readonly root = new protobuf.Root();
  /** Fully qualified top-level message/enum name → absolute .proto path. */
  private definedIn: Map<string, string> | null = null;

  constructor() {
    // Imports resolve against the include path, as protoc's -I does. The
    // google/protobuf well-known types come from protobufjs' bundled copies.
    this.root.resolvePath = (_origin, target) => {
      if (isAbsolute(target)) return target;
      for (const dir of ENVOY_PROTO_DIRS) {
        const candidate = join(dir, target);
        if (existsSync(candidate)) return candidate;
      }
      return null;
    };
    this.load(this.locate(BOOTSTRAP_PROTO));
  }

  /** The message type called `name` (no leading dot), loading its .proto if needed; null if Envoy has none. */
  messageType(name: string): protobuf.Type | null {
    const found = this.lookup(name);
    if (found) return found;
    const file = this.fileDefining(name);
    if (!file) return null;
    this.load(file);
    return this.lookup(name);
  }

  private lookup(name: string): protobuf.Type | null {
    const found = this.root.lookup(name);
    return found instanceof protobuf.Type ? found : null;
  }

  private load(file: string): void {
    // alternateCommentMode keeps Envoy's `//` comments on fields: the
    // extension-category annotations live there.
    this.root.loadSync(file, { keepCase: true, alternateCommentMode: true });
    this.root.resolveAll();
  }

  private locate(relative: string): string {
    const file = this.root.resolvePath('', relative);
    if (!file) throw new Error(`${relative} is not under any of ${ENVOY_PROTO_DIRS.join(', ')}`);
    return file;
  }

  /** The .proto defining `name`, or (for a nested type) its outermost enclosing message. */
  private fileDefining(name: string): string | null {
    this.definedIn ??= indexTopLevelTypes();
    const parts = name.split('.');
    for (let n = parts.length; n > 0; n--) {
      const file = this.definedIn.get(parts.slice(0, n).join('.'));
      if (file) return file;
    }
    return null;
  }
}

/** Scans every .proto on the include path for its package and top-level messages and enums. */
function indexTopLevelTypes(): Map<string, string> {
  const index = new Map<string, string>();
  const visit = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) visit(path);
      else if (entry.name.endsWith('.proto')) {
        const source = readFileSync(path, 'utf8');
        const pkg = /^package\s+([\w.]+)\s*;/m.exec(source)?.[1];
        if (!pkg) continue;
        // Top-level declarations start at column 0; nested ones are indented.
        for (const m of source.matchAll(/^(?:message|enum)\s+(\w+)/gm)) {
          if (!index.has(`${pkg}.${m[1]}`)) index.set(`${pkg}.${m[1]}`, path);
        }
      }
    }
  };
  for (const dir of ENVOY_PROTO_DIRS) visit(dir);
  return index;
}

let shared: EnvoyTypes | null = null;
/** Parsing the protos takes a moment: one registry per process. */
function envoyTypes(): EnvoyTypes {
  shared ??= new EnvoyTypes();
  return shared;
}

// ---- the walk -----------------------------------------------------------------------

interface Issue {
  path: PathSegment[];
  message: string;
}

const INT32 = { min: -(2n ** 31n), max: 2n ** 31n - 1n };
const UINT32 = { min: 0n, max: 2n ** 32n - 1n };
const INT64 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };
const UINT64 = { min: 0n, max: 2n ** 64n - 1n };
const INTEGER_RANGES: Readonly<Record<string, { min: bigint; max: bigint }>> = {
  int32: INT32, sint32: INT32, sfixed32: INT32,
  uint32: UINT32, fixed32: UINT32,
  int64: INT64, sint64: INT64, sfixed64: INT64,
  uint64: UINT64, fixed64: UINT64,
};

/** proto3 JSON: seconds with up to nine fractional digits, then "s". */
const DURATION = /^-?\d+(\.\d{1,9})?s$/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const shown = (value: unknown): string =>
  value === null ? 'null' : Array.isArray(value) ? 'a list' : isObject(value) ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;

/** The JSON name protoc gives a field: json_name, or the snake_case name in lowerCamelCase. */
function jsonName(field: protobuf.Field): string {
  const explicit = field.options?.['json_name'];
  if (typeof explicit === 'string') return explicit;
  return field.name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * The `[#extension-category: a,b]` annotation of a field, if Envoy's proto has
 * one. Envoy writes it on the field or on the oneof holding it.
 */
function extensionCategories(field: protobuf.Field): string[] {
  for (const comment of [field.comment, field.partOf?.comment]) {
    const match = /\[#extension-category:\s*([^\]]+)\]/.exec(comment ?? '');
    if (match?.[1]) return match[1].split(',').map((c) => c.trim());
  }
  return [];
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

class Walker {
  readonly issues: Issue[] = [];

  constructor(private readonly types: EnvoyTypes) {}

  private fail(path: PathSegment[], message: string): void {
    this.issues.push({ path, message });
  }

  message(type: protobuf.Type, value: unknown, path: PathSegment[], categories: string[] = []): void {
    if (this.wellKnown(type, value, path, categories)) return;
    if (!isObject(value)) {
      this.fail(path, `expected an object (${type.fullName.slice(1)}), got ${shown(value)}`);
      return;
    }
    this.fields(type, value, path);
  }

  /** Checks the keys of an object against a message type's fields. `skip` are keys handled by the caller ("@type"). */
  private fields(type: protobuf.Type, value: Record<string, unknown>, path: PathSegment[], skip: ReadonlySet<string> = new Set()): void {
    const byName = new Map<string, protobuf.Field>();
    for (const field of type.fieldsArray) {
      byName.set(field.name, field);
      byName.set(jsonName(field), field);
    }
    const seen = new Map<protobuf.Field, string>();
    const oneofMembers = new Map<protobuf.OneOf, string[]>();

    for (const [key, fieldValue] of Object.entries(value)) {
      if (skip.has(key)) continue;
      const field = byName.get(key);
      if (!field) {
        this.fail([...path, key], this.unknownField(type, key));
        continue;
      }
      const earlier = seen.get(field);
      if (earlier !== undefined) {
        this.fail([...path, key], `"${key}" sets ${field.name} again (already set as "${earlier}")`);
        continue;
      }
      seen.set(field, key);
      // null means "not set" in proto3 JSON, except for google.protobuf.Value.
      if (fieldValue === null && field.resolvedType?.fullName !== '.google.protobuf.Value') continue;
      if (field.partOf) oneofMembers.set(field.partOf, [...(oneofMembers.get(field.partOf) ?? []), key]);
      this.field(field, fieldValue, [...path, key]);
    }

    for (const [oneof, members] of oneofMembers) {
      if (members.length > 1) {
        this.fail([...path, members[1]!], `${members.join(' and ')} are both set, but they are alternatives (oneof ${oneof.name}): keep one`);
      }
    }
  }

  private unknownField(type: protobuf.Type, key: string): string {
    const names = type.fieldsArray.map((f) => f.name);
    const normalized = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    const close = names
      .map((name) => ({ name, distance: editDistance(normalized, name) }))
      .filter(({ distance }) => distance <= Math.max(2, Math.floor(key.length / 5)))
      .sort((a, b) => a.distance - b.distance)[0];
    const hint = close ? `; did you mean ${close.name}?` : '';
    return `unknown field "${key}" in ${type.fullName.slice(1)}${hint}`;
  }

  private field(field: protobuf.Field, value: unknown, path: PathSegment[]): void {
    const categories = extensionCategories(field);
    if (field instanceof protobuf.MapField) {
      if (!isObject(value)) {
        this.fail(path, `expected a map (object) for ${field.name}, got ${shown(value)}`);
        return;
      }
      for (const [key, entry] of Object.entries(value)) {
        this.mapKey(field.keyType, key, [...path, key]);
        this.single(field, entry, [...path, key], categories);
      }
      return;
    }
    if (field.repeated) {
      if (!Array.isArray(value)) {
        this.fail(path, `expected a list for repeated field ${field.name}, got ${shown(value)}`);
        return;
      }
      value.forEach((item, i) => this.single(field, item, [...path, i], categories));
      return;
    }
    this.single(field, value, path, categories);
  }

  private single(field: protobuf.Field, value: unknown, path: PathSegment[], categories: string[]): void {
    const resolved = field.resolvedType;
    if (resolved instanceof protobuf.Type) this.message(resolved, value, path, categories);
    else if (resolved instanceof protobuf.Enum) this.enumValue(resolved, value, path);
    else this.scalar(field.type, value, path);
  }

  private mapKey(keyType: string, key: string, path: PathSegment[]): void {
    if (keyType === 'bool' && key !== 'true' && key !== 'false') this.fail(path, `map key must be true or false, got "${key}"`);
    else if (keyType in INTEGER_RANGES) this.scalar(keyType, key, path);
  }

  private enumValue(type: protobuf.Enum, value: unknown, path: PathSegment[]): void {
    const names = Object.keys(type.values);
    if (typeof value === 'string' && names.includes(value)) return;
    if (typeof value === 'number' && Object.values(type.values).includes(value)) return;
    this.fail(path, `${shown(value)} is not a value of ${type.fullName.slice(1)} (${names.join(', ')})`);
  }

  private scalar(kind: string, value: unknown, path: PathSegment[]): void {
    const range = INTEGER_RANGES[kind];
    if (range) {
      const text = typeof value === 'number' && Number.isInteger(value) ? String(value) : typeof value === 'string' ? value : null;
      if (text === null || !/^-?\d+$/.test(text)) {
        this.fail(path, `expected an integer (${kind}), got ${shown(value)}`);
      } else if (BigInt(text) < range.min || BigInt(text) > range.max) {
        this.fail(path, `${text} is out of range for ${kind}`);
      }
      return;
    }
    switch (kind) {
      case 'double':
      case 'float':
        if (typeof value === 'number') return;
        if (typeof value === 'string' && (['NaN', 'Infinity', '-Infinity'].includes(value) || (value.trim() !== '' && Number.isFinite(Number(value))))) return;
        this.fail(path, `expected a number (${kind}), got ${shown(value)}`);
        return;
      case 'bool':
        if (typeof value !== 'boolean') this.fail(path, `expected true or false, got ${shown(value)}`);
        return;
      case 'string':
        if (typeof value !== 'string') this.fail(path, `expected a string, got ${shown(value)}`);
        return;
      case 'bytes':
        if (typeof value !== 'string' || !(BASE64.test(value) || (BASE64URL.test(value) && value.length % 4 !== 1))) {
          this.fail(path, `expected base64-encoded bytes, got ${shown(value)}`);
        }
        return;
      default:
        throw new Error(`envoy-bootstrap: no rule for scalar type ${kind}`);
    }
  }

  /** The proto3 JSON forms of google.protobuf.*; false when `type` is an ordinary message. */
  private wellKnown(type: protobuf.Type, value: unknown, path: PathSegment[], categories: string[]): boolean {
    const name = type.fullName.slice(1);
    switch (name) {
      case 'google.protobuf.Any':
        this.any(value, path, categories);
        return true;
      case 'google.protobuf.Duration':
        if (typeof value !== 'string' || !DURATION.test(value)) {
          this.fail(path, `expected a duration string such as "0.5s" or "310s", got ${shown(value)}`);
        }
        return true;
      case 'google.protobuf.Timestamp':
        if (typeof value !== 'string' || !TIMESTAMP.test(value)) {
          this.fail(path, `expected an RFC 3339 timestamp such as "2024-01-01T00:00:00Z", got ${shown(value)}`);
        }
        return true;
      case 'google.protobuf.FieldMask':
        if (typeof value !== 'string') this.fail(path, `expected a field mask string such as "a.b,c", got ${shown(value)}`);
        return true;
      case 'google.protobuf.Empty':
        if (!isObject(value) || Object.keys(value).length > 0) this.fail(path, `expected {} (google.protobuf.Empty), got ${shown(value)}`);
        return true;
      case 'google.protobuf.Struct':
        if (!isObject(value)) this.fail(path, `expected an object (google.protobuf.Struct), got ${shown(value)}`);
        return true;
      case 'google.protobuf.ListValue':
        if (!Array.isArray(value)) this.fail(path, `expected a list (google.protobuf.ListValue), got ${shown(value)}`);
        return true;
      case 'google.protobuf.Value':
        return true; // any JSON value
      case 'google.protobuf.DoubleValue':
      case 'google.protobuf.FloatValue':
      case 'google.protobuf.Int64Value':
      case 'google.protobuf.UInt64Value':
      case 'google.protobuf.Int32Value':
      case 'google.protobuf.UInt32Value':
      case 'google.protobuf.BoolValue':
      case 'google.protobuf.StringValue':
      case 'google.protobuf.BytesValue': {
        // A wrapper is written as the plain value it wraps.
        const inner = type.fields['value'];
        if (!inner) throw new Error(`envoy-bootstrap: ${name} has no value field`);
        this.scalar(inner.type, value, path);
        return true;
      }
      default:
        return false;
    }
  }

  private any(value: unknown, path: PathSegment[], categories: string[]): void {
    if (!isObject(value)) {
      this.fail(path, `expected an object with "@type" (google.protobuf.Any), got ${shown(value)}`);
      return;
    }
    const url = value['@type'];
    if (typeof url !== 'string' || !url.includes('/')) {
      this.fail([...path, '@type'], `google.protobuf.Any needs "@type": type.googleapis.com/<message name>, got ${shown(url ?? null)}`);
      return;
    }
    const name = url.slice(url.lastIndexOf('/') + 1);
    const type = this.types.messageType(name);
    if (!type) {
      this.fail([...path, '@type'], `unknown type ${name}: no message of that name in Envoy's protos`);
      return;
    }
    const allowed = categories.map((c) => CATEGORY_PACKAGES[c]).filter((p): p is string => p !== undefined);
    if (allowed.length > 0 && !TYPED_STRUCTS.has(name) && !allowed.some((prefix) => name.startsWith(prefix))) {
      this.fail([...path, '@type'], `${name} is not an extension of category ${categories.join(' or ')}; this field takes ${allowed.map((p) => `${p}*`).join(' or ')}`);
      return;
    }
    if (type.fullName.startsWith('.google.protobuf.') && this.wellKnown(type, value['value'], [...path, 'value'], [])) {
      // A well-known type inside an Any is {"@type": ..., "value": <its JSON form>}.
      const extra = Object.keys(value).filter((k) => k !== '@type' && k !== 'value');
      for (const key of extra) this.fail([...path, key], `unknown field "${key}" in an Any holding ${name} (only "value")`);
      return;
    }
    this.fields(type, value, path, new Set(['@type']));
  }
}

/** `static_resources.listeners[0].name` */
export function formatPath(path: readonly PathSegment[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : /^[\w@-]+$/.test(p) ? `${i === 0 ? '' : '.'}${p}` : `[${JSON.stringify(p)}]`)).join('');
}

/**
 * Checks a parsed document against an Envoy message type (by default the v3
 * Bootstrap). Returns every problem; an empty list means Envoy's parser would
 * accept the document's shape.
 */
export function checkEnvoyMessage(document: unknown, typeName: string = BOOTSTRAP_TYPE): DecodeIssue[] {
  const types = envoyTypes();
  const type = types.messageType(typeName);
  if (!type) throw new Error(`no message ${typeName} in Envoy's protos`);
  const walker = new Walker(types);
  walker.message(type, document, []);
  return walker.issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message }));
}

/**
 * Parses YAML source (Envoy reads YAML 1.2 into JSON, as the `yaml` package
 * does) and checks it as a Bootstrap; each issue carries its line. A YAML
 * syntax error is an issue at the root.
 */
export function checkEnvoyBootstrapYaml(source: string): DecodeIssue[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(source, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    return doc.errors.map((e) => ({ path: '', line: lineCounter.linePos(e.pos[0]).line, message: `YAML: ${e.message}` }));
  }
  const types = envoyTypes();
  const type = types.messageType(BOOTSTRAP_TYPE);
  if (!type) throw new Error(`no message ${BOOTSTRAP_TYPE} in Envoy's protos`);
  const walker = new Walker(types);
  walker.message(type, doc.toJS({ maxAliasCount: 100 }), []);
  return walker.issues.map((issue) => {
    const node = nearestNode(doc, issue.path);
    const line = node?.range ? lineCounter.linePos(node.range[0]).line : undefined;
    return { path: formatPath(issue.path), message: issue.message, ...(line === undefined ? {} : { line }) };
  });
}

/** The YAML node at `path`, or at its longest existing prefix. */
function nearestNode(doc: ReturnType<typeof parseDocument>, path: readonly PathSegment[]): { range?: [number, number, number] | null } | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] | null } | undefined;
    if (node && typeof node === 'object' && node.range) return node;
  }
  return undefined;
}
