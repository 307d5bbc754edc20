/**
 * The digests OPA records for bundle files in `.signatures.json`, reproduced
 * byte for byte. References are to github.com/open-policy-agent/opa, v1/bundle
 * and v1/util:
 *
 * - Files whose base name is `data.json`, `data.yaml`, `.manifest` or
 *   `signatures.json` (bundle.go, IsStructuredDoc) are parsed (util.Unmarshal:
 *   strip a UTF-8 BOM; JSON if valid JSON, numbers kept as written; otherwise
 *   YAML 1.1 converted to JSON) and hashed over a canonical encoding (hash.go,
 *   walk): objects as `{key:value,...}` with keys sorted bytewise, arrays as
 *   `[...]`, scalars as Go's encoding/json writes them without HTML escaping.
 * - Every other file (policy.wasm, *.rego, data.yml, other .json files) is
 *   hashed over its raw bytes. OPA's tools write SHA-256.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { parseDocument, type DocumentOptions, type ParseOptions, type SchemaOptions, type Tags } from 'yaml';

/** File digest algorithms OPA defines (hash.go), mapped to node:crypto names. MD5/SHA-1 are refused. */
export const HASH_ALGORITHMS: ReadonlyMap<string, string> = new Map([
  ['SHA-224', 'sha224'],
  ['SHA-256', 'sha256'],
  ['SHA-384', 'sha384'],
  ['SHA-512', 'sha512'],
  ['SHA-512-224', 'sha512-224'],
  ['SHA-512-256', 'sha512-256'],
]);

/** Base names OPA parses before hashing (bundle.go, IsStructuredDoc). */
const STRUCTURED_BASENAMES = new Set(['data.json', 'data.yaml', 'signatures.json', '.manifest']);

/**
 * The digest OPA records for a bundle file, as lowercase hex.
 * @param algorithm an OPA hashing algorithm name, e.g. "SHA-256"
 */
export function hashBundleFile(path: string, body: Buffer, algorithm = 'SHA-256'): string {
  const nodeName = HASH_ALGORITHMS.get(algorithm);
  if (!nodeName) throw new Error(`unsupported hash algorithm "${algorithm}"`);
  const hash = createHash(nodeName);
  if (STRUCTURED_BASENAMES.has(posix.basename(path))) {
    const parts: string[] = [];
    canonicalWalk(parseStructured(body), parts);
    hash.update(parts.join(''), 'utf8');
  } else {
    hash.update(body);
  }
  return hash.digest('hex');
}

// ---------------------------------------------------------------------------
// Structured documents: Go's util.Unmarshal + bundle.hasher.walk, reproduced.

/** A JSON number kept as written (Go json.Number). */
class JsonNumber {
  constructor(readonly text: string) {}
}
type GoValue = null | boolean | string | JsonNumber | GoValue[] | Map<string, GoValue>;

const MAX_DEPTH = 10_000; // Go encoding/json's nesting limit

export function stripBom(body: Buffer): Buffer {
  return body.length > 2 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? body.subarray(3) : body;
}

/** util.Unmarshal: JSON when the bytes are valid JSON, YAML (via YAML→JSON) otherwise. */
function parseStructured(raw: Buffer): GoValue {
  const body = stripBom(raw);
  const json = parseGoJson(body);
  if (json.ok) return json.value;
  return yamlToGo(body);
}

/** Strict RFC 8259 parser on bytes with Go encoding/json string semantics. */
function parseGoJson(buf: Buffer): { ok: true; value: GoValue } | { ok: false } {
  let i = 0;
  const fail = (): never => {
    throw new SyntaxError('invalid JSON');
  };
  const ws = () => {
    while (i < buf.length) {
      const c = buf[i];
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const literal = (word: string, value: GoValue): GoValue => {
    if (buf.toString('latin1', i, i + word.length) !== word) fail();
    i += word.length;
    return value;
  };
  const number = (): JsonNumber => {
    const start = i;
    if (buf[i] === 0x2d) i++;
    if (buf[i] === 0x30) i++;
    else if (isDigit(buf[i], true)) while (isDigit(buf[i])) i++;
    else fail();
    if (buf[i] === 0x2e) {
      i++;
      if (!isDigit(buf[i])) fail();
      while (isDigit(buf[i])) i++;
    }
    if (buf[i] === 0x65 || buf[i] === 0x45) {
      i++;
      if (buf[i] === 0x2b || buf[i] === 0x2d) i++;
      if (!isDigit(buf[i])) fail();
      while (isDigit(buf[i])) i++;
    }
    return new JsonNumber(buf.toString('latin1', start, i));
  };
  const string = (): string => {
    i++; // opening quote
    let out = '';
    let runStart = i;
    const flush = (end: number) => {
      if (end > runStart) out += goDecodeUtf8(buf.subarray(runStart, end));
    };
    for (;;) {
      const c = buf[i];
      if (c === undefined || c < 0x20) fail();
      if (c === 0x22) {
        flush(i);
        i++;
        return out;
      }
      if (c !== 0x5c) {
        i++;
        continue;
      }
      flush(i);
      const e = buf[i + 1];
      i += 2;
      switch (e) {
        case 0x22: out += '"'; break;
        case 0x5c: out += '\\'; break;
        case 0x2f: out += '/'; break;
        case 0x62: out += '\b'; break;
        case 0x66: out += '\f'; break;
        case 0x6e: out += '\n'; break;
        case 0x72: out += '\r'; break;
        case 0x74: out += '\t'; break;
        case 0x75: {
          const hi = hex4(buf, i);
          if (hi < 0) fail();
          i += 4;
          if (hi >= 0xd800 && hi < 0xe000) {
            // Go: a valid surrogate pair is combined; anything else becomes U+FFFD.
            const lo = buf[i] === 0x5c && buf[i + 1] === 0x75 ? hex4(buf, i + 2) : -1;
            if (hi < 0xdc00 && lo >= 0xdc00 && lo < 0xe000) {
              out += String.fromCharCode(hi, lo);
              i += 6;
            } else {
              out += '\ufffd';
            }
          } else {
            out += String.fromCharCode(hi);
          }
          break;
        }
        default:
          fail();
      }
      runStart = i;
    }
  };
  const value = (depth: number): GoValue => {
    if (depth > MAX_DEPTH) fail();
    ws();
    const c = buf[i];
    if (c === 0x7b) {
      i++;
      const obj = new Map<string, GoValue>();
      ws();
      if (buf[i] === 0x7d) {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (buf[i] !== 0x22) fail();
        const k = string();
        ws();
        if (buf[i] !== 0x3a) fail();
        i++;
        obj.delete(k); // last duplicate wins, as in Go
        obj.set(k, value(depth + 1));
        ws();
        if (buf[i] === 0x2c) i++;
        else if (buf[i] === 0x7d) {
          i++;
          return obj;
        } else fail();
      }
    }
    if (c === 0x5b) {
      i++;
      const arr: GoValue[] = [];
      ws();
      if (buf[i] === 0x5d) {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (buf[i] === 0x2c) i++;
        else if (buf[i] === 0x5d) {
          i++;
          return arr;
        } else fail();
      }
    }
    if (c === 0x22) return string();
    if (c === 0x74) return literal('true', true);
    if (c === 0x66) return literal('false', false);
    if (c === 0x6e) return literal('null', null);
    return number();
  };
  try {
    const v = value(0);
    ws();
    if (i !== buf.length) return { ok: false };
    return { ok: true, value: v };
  } catch (err) {
    if (err instanceof SyntaxError) return { ok: false };
    throw err;
  }
}

function isDigit(c: number | undefined, nonZero = false): boolean {
  return c !== undefined && c >= (nonZero ? 0x31 : 0x30) && c <= 0x39;
}

function hex4(buf: Buffer, at: number): number {
  if (at + 4 > buf.length) return -1;
  const s = buf.toString('latin1', at, at + 4);
  return /^[0-9a-fA-F]{4}$/.test(s) ? parseInt(s, 16) : -1;
}

/** UTF-8 decoding as Go does it: each byte of an invalid sequence becomes U+FFFD. */
function goDecodeUtf8(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const b0 = bytes[i] as number;
    if (b0 < 0x80) {
      // Fast path for ASCII runs.
      let j = i + 1;
      while (j < bytes.length && (bytes[j] as number) < 0x80) j++;
      out += Buffer.from(bytes.buffer, bytes.byteOffset + i, j - i).toString('latin1');
      i = j;
      continue;
    }
    const cont = (k: number, lo = 0x80, hi = 0xbf) => {
      const b = bytes[i + k];
      return b !== undefined && b >= lo && b <= hi ? b & 0x3f : -1;
    };
    let cp = -1;
    let size = 1;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      const c1 = cont(1);
      if (c1 >= 0) [cp, size] = [((b0 & 0x1f) << 6) | c1, 2];
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      const c1 = cont(1, b0 === 0xe0 ? 0xa0 : 0x80, b0 === 0xed ? 0x9f : 0xbf);
      const c2 = c1 >= 0 ? cont(2) : -1;
      if (c2 >= 0) [cp, size] = [((b0 & 0x0f) << 12) | (c1 << 6) | c2, 3];
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      const c1 = cont(1, b0 === 0xf0 ? 0x90 : 0x80, b0 === 0xf4 ? 0x8f : 0xbf);
      const c2 = c1 >= 0 ? cont(2) : -1;
      const c3 = c2 >= 0 ? cont(3) : -1;
      if (c3 >= 0) [cp, size] = [((b0 & 0x07) << 18) | (c1 << 12) | (c2 << 6) | c3, 4];
    }
    out += cp < 0 ? '\ufffd' : String.fromCodePoint(cp);
    i += cp < 0 ? 1 : size;
  }
  return out;
}

/** YAML 1.1 types as go-yaml v2 resolves them: timestamps and sexagesimal numbers stay strings there. */
const yaml11Tags = (tags: Tags): Tags =>
  tags.filter((t) => typeof t === 'string' || (t.tag !== 'tag:yaml.org,2002:timestamp' && t.format !== 'TIME'));

/** How OPA reads YAML data documents (go-yaml v2: YAML 1.1, merge keys). */
export const OPA_YAML_OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = {
  version: '1.1',
  schema: 'yaml-1.1',
  customTags: yaml11Tags,
  merge: true,
  prettyErrors: false,
};

/**
 * sigs.k8s.io/yaml YAMLToJSON followed by a UseNumber JSON decode. Best effort:
 * anything whose Go rendering is not reproduced exactly (floats as map keys,
 * integers outside int64/uint64, non-finite floats) is refused, which fails closed.
 */
function yamlToGo(body: Buffer): GoValue {
  const doc = parseDocument(goDecodeUtf8(body), { ...OPA_YAML_OPTIONS, intAsBigInt: true, uniqueKeys: false });
  if (doc.errors.length > 0) throw new Error(`not JSON and not YAML: ${doc.errors[0]?.message ?? 'parse error'}`);
  return fromYaml(doc.toJS({ mapAsMap: true, maxAliasCount: 1000 }), 0);
}

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

function fromYaml(v: unknown, depth: number): GoValue {
  if (depth > MAX_DEPTH) throw new Error('document nested too deeply');
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'bigint') {
    if (v < INT64_MIN || v > UINT64_MAX) throw new Error('integer out of 64-bit range');
    return new JsonNumber(v.toString());
  }
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error('non-finite number');
    return new JsonNumber(Object.is(v, -0) ? '-0' : String(v));
  }
  if (v instanceof Uint8Array) return goDecodeUtf8(v); // !!binary: Go keeps the raw bytes as a string
  if (Array.isArray(v)) return v.map((e) => fromYaml(e, depth + 1));
  if (v instanceof Map) {
    const out = new Map<string, GoValue>();
    for (const [k, val] of v) {
      const key = yamlKey(k);
      out.delete(key);
      out.set(key, fromYaml(val, depth + 1));
    }
    return out;
  }
  throw new Error(`unsupported YAML value of type ${Object.prototype.toString.call(v)}`);
}

function yamlKey(k: unknown): string {
  if (typeof k === 'string') return k;
  if (typeof k === 'bigint') return k.toString();
  if (typeof k === 'boolean') return k ? 'true' : 'false';
  if (typeof k === 'number' && Number.isInteger(k)) return String(k);
  throw new Error(`unsupported YAML map key ${String(k)}`);
}

/** bundle.hasher.walk: the canonical byte stream that is hashed. */
function canonicalWalk(v: GoValue, out: string[]): void {
  if (v instanceof Map) {
    out.push('{');
    const keys = [...v.keys()].sort(compareUtf8);
    keys.forEach((k, idx) => {
      if (idx > 0) out.push(',');
      out.push(goQuote(k), ':');
      canonicalWalk(v.get(k) as GoValue, out);
    });
    out.push('}');
  } else if (Array.isArray(v)) {
    out.push('[');
    v.forEach((e, idx) => {
      if (idx > 0) out.push(',');
      canonicalWalk(e, out);
    });
    out.push(']');
  } else if (v instanceof JsonNumber) {
    out.push(v.text);
  } else if (typeof v === 'string') {
    out.push(goQuote(v));
  } else {
    out.push(v === null ? 'null' : v ? 'true' : 'false');
  }
}

/** Go's sort.Strings order: bytewise on UTF-8. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** encoding/json string encoding with SetEscapeHTML(false) (Go ≥ 1.22 writes \b and \f). */
function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0) as number;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (cp < 0x20) {
      switch (ch) {
        case '\b': out += '\\b'; break;
        case '\f': out += '\\f'; break;
        case '\n': out += '\\n'; break;
        case '\r': out += '\\r'; break;
        case '\t': out += '\\t'; break;
        default: out += `\\u00${cp.toString(16).padStart(2, '0')}`;
      }
    } else if (cp === 0x2028 || cp === 0x2029) out += `\\u${cp.toString(16)}`;
    else if (cp >= 0xd800 && cp < 0xe000) out += '\\ufffd'; // lone surrogate: invalid UTF-8 to Go
    else out += ch;
  }
  return `${out}"`;
}
