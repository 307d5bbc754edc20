/**
 * A CheckRequest as policy input: the OPA-Envoy plugin's input document, so
 * a policy written for the plugin reads the same fields here. The plugin
 * takes the request's protojson form as `attributes` and adds
 * `parsed_path`, `parsed_query`, `parsed_body` and `truncated_body`; the
 * Check service is loaded with protojson's names and encodings
 * (envoy-protos.ts), so only Timestamp and Struct are converted here.
 */
import { structToJson } from '../struct.js';
import { isJsonType } from '../media-type.js';

/** The CheckRequest's attributes as the Check service decodes them (JSON names). */
export interface CheckAttributes {
  request?: {
    time?: { seconds?: string; nanos?: number } | string;
    http?: {
      id?: string;
      method?: string;
      headers?: Record<string, string>;
      path?: string;
      host?: string;
      body?: string;
      rawBody?: string;
    };
  };
  contextExtensions?: Record<string, string>;
  metadataContext?: MetadataJson;
  routeMetadataContext?: MetadataJson;
  [other: string]: unknown;
}

interface MetadataJson {
  filterMetadata?: Record<string, unknown>;
  [other: string]: unknown;
}

/** What policy sees under the common fields (the design brief's `http` input). */
export interface EnvoyInput {
  attributes: CheckAttributes;
  parsed_path: string[];
  parsed_query: Record<string, string[]>;
  parsed_body: unknown;
  truncated_body: boolean;
  version: { ext_authz: 'v3'; encoding: 'protojson' };
}

const VERSION = { ext_authz: 'v3', encoding: 'protojson' } as const;

/** Builds the input; a request the plugin could not turn into input (a bad path, a JSON body that does not parse) is `{invalid}`. */
export function envoyInput(attributes: CheckAttributes): EnvoyInput | { invalid: string } {
  const http = attributes.request?.http ?? {};
  const location = parsePathAndQuery(http.path ?? '');
  if ('invalid' in location) return location;
  const body = parseBody(http.headers ?? {}, http.body ?? '', http.rawBody ?? '');
  if ('invalid' in body) return body;
  const time = attributes.request?.time;
  const rfcTime = time === undefined || typeof time === 'string' ? time : rfc3339(time);
  if (rfcTime === null) return { invalid: 'the request time (attributes.request.time) is not a Timestamp: seconds must fall in years 1 to 9999, nanos in 0 to 999,999,999' };
  return {
    attributes: protojsonAttributes(attributes, rfcTime),
    parsed_path: location.path,
    parsed_query: location.query,
    parsed_body: body.parsed,
    truncated_body: body.truncated,
    version: VERSION,
  };
}

/**
 * As the plugin does it (Go's url.Parse): the path is percent-decoded as a
 * whole, leading slashes trimmed, then split on "/" ("/" gives [""]); query
 * values are lists, decoded with "+" as a space.
 */
function parsePathAndQuery(raw: string): { path: string[]; query: Record<string, string[]> } | { invalid: string } {
  const queryAt = raw.indexOf('?');
  const pathPart = (queryAt < 0 ? raw : raw.slice(0, queryAt)).split('#')[0]!;
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathPart);
  } catch {
    return { invalid: 'the request path is not valid percent-encoding' };
  }
  const query: Record<string, string[]> = {};
  if (queryAt >= 0) {
    for (const [key, value] of new URLSearchParams(raw.slice(queryAt + 1).split('#')[0])) (query[key] ??= []).push(value);
  }
  return { path: decoded.replace(/^\/+/, '').split('/'), query };
}

/**
 * JSON bodies only, as the plugin (which knows fewer JSON types): empty is null; a body Envoy cut short
 * (content-length larger than what was sent, or Envoy's partial-body
 * header) is `truncated_body`, whatever its type, with no parsed_body; one
 * that does not parse cannot be decided.
 */
function parseBody(headers: Record<string, string>, body: string, rawBody: string): { parsed: unknown; truncated: boolean } | { invalid: string } {
  const declared = Number(headers['content-length']);
  // raw_body (bytes, base64 in protojson) when the body is not UTF-8 or Envoy packs it as bytes.
  const received = body !== '' ? Buffer.byteLength(body) : Buffer.byteLength(rawBody, 'base64');
  const truncated = (Number.isFinite(declared) && declared > received) || headers['x-envoy-auth-partial-body'] === 'true';
  if (truncated) return { parsed: null, truncated: true };
  // The plugin matches "application/json" case-sensitively; upstreams also parse Application/JSON, text/json, +json.
  // Content-Type twice arrives joined with ","; an upstream may read either: JSON if any says so (media-type.ts).
  if (!isJsonType(headers['content-type'] ?? '') || body === '') return { parsed: null, truncated: false };
  try {
    return { parsed: JSON.parse(body), truncated: false };
  } catch {
    return { invalid: 'the request body says application/json but is not valid JSON' };
  }
}

/** Timestamp (already written: `time`) and Struct in their protojson forms; everything else already is. */
function protojsonAttributes(attributes: CheckAttributes, time: string | undefined): CheckAttributes {
  const converted: CheckAttributes = { ...attributes };
  if (time !== attributes.request?.time) converted.request = { ...attributes.request, time };
  if (attributes.metadataContext) converted.metadataContext = metadataJson(attributes.metadataContext);
  if (attributes.routeMetadataContext) converted.routeMetadataContext = metadataJson(attributes.routeMetadataContext);
  return converted;
}

function metadataJson(metadata: MetadataJson): MetadataJson {
  if (!metadata.filterMetadata) return metadata;
  const filterMetadata: Record<string, unknown> = {};
  for (const [namespace, struct] of Object.entries(metadata.filterMetadata)) filterMetadata[namespace] = structToJson(struct);
  return { ...metadata, filterMetadata };
}

// Requests arrive many to a second: the date part is formatted once per second.
let lastSecond = Number.NaN;
let lastWhole = '';

/** Timestamp's range (google/protobuf/timestamp.proto): 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z. */
const MIN_SECONDS = -62_135_596_800;
const MAX_SECONDS = 253_402_300_799;

/**
 * protojson's Timestamp: UTC, with 0, 3, 6 or 9 fractional digits; null
 * for one outside Timestamp's range, which protojson (and so the OPA-Envoy
 * plugin) refuses to write, and Date cannot (a RangeError) or writes as no
 * RFC 3339 time ("+010000-…"). Envoy sends the time the request began; a
 * CheckRequest from anyone else may send any int64.
 */
function rfc3339(time: { seconds?: string; nanos?: number }): string | null {
  const seconds = Number(time.seconds ?? 0);
  const nanos = time.nanos ?? 0;
  if (!(seconds >= MIN_SECONDS && seconds <= MAX_SECONDS) || !Number.isInteger(seconds)) return null;
  if (!(nanos >= 0 && nanos <= 999_999_999) || !Number.isInteger(nanos)) return null;
  if (seconds !== lastSecond) {
    lastWhole = new Date(seconds * 1000).toISOString().slice(0, 19);
    lastSecond = seconds;
  }
  const whole = lastWhole;
  if (nanos === 0) return `${whole}Z`;
  const digits = String(nanos).padStart(9, '0');
  const fraction = nanos % 1_000_000 === 0 ? digits.slice(0, 3) : nanos % 1000 === 0 ? digits.slice(0, 6) : digits;
  return `${whole}.${fraction}Z`;
}
