/**
 * HTTP exchanges (format "gatehouse.http-exchange.v1"): one entry per
 * request the ExternalProcessor saw, with Gatehouse's fields (decision, audit
 * link, masking counts) and the exchange as a HAR 1.2 entry, so a session
 * exports as a HAR file that browsers' devtools and HAR viewers open.
 *
 * The bodies arrive masked (the caller's job, see types.ts); this format
 * checks every field's type, keeps the first MAX_BODY_CHARS of a body (and
 * says so), and drops the well-known credential headers again whatever the
 * caller passed: a recording must never hold a secret.
 *
 * What the agent (or the upstream) chose is normalised, never a reason to
 * refuse the entry: a refused entry is an exchange that ran unrecorded. The
 * method is kept as sent, its characters outside printable ASCII written as
 * \u{…} and cut at MAX_METHOD_CHARS; the first MAX_HEADERS headers of a
 * request or response are kept. Each cut is marked on the entry
 * (`*_truncated`, under `_gatehouse` in an exported HAR) and in the HAR
 * request's or response's `comment`. What only a bug in the gateway could
 * pass (a field of the wrong type, a header name that is not a token, which
 * Envoy and Node refuse on the wire) still refuses the entry.
 */
import { isCredentialHeader } from '../masking/credential-headers.js';
import { STATUS_CODES } from 'node:http';
import type { RecordingFormat } from './format.js';
import type { HarEntry, HarHeader, HttpExchangeEntry, HttpExchangeRecord, MaskCount, RecordedBody } from './types.js';

export const HTTP_EXCHANGE = 'gatehouse.http-exchange.v1';

/** Bodies are kept up to here (UTF-16 code units, about 64 KiB of ASCII) and marked *_body_truncated. */
export const MAX_BODY_CHARS = 65_536;
const MAX_URL_CHARS = 8192;
const MAX_HEADER_CHARS = 8192;
export const MAX_HEADERS = 200;
/** A method is recorded up to here (after escaping): the longest registered one has 17 characters. */
export const MAX_METHOD_CHARS = 32;
const MAX_ERROR_CHARS = 500;
const MAX_NAME_CHARS = 256;


const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isId = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_NAME_CHARS;
const isDuration = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/** Checks one exchange and copies its known fields into an entry; or says what is wrong. */
export function httpExchangeEntry(input: HttpExchangeRecord, seq: number): HttpExchangeEntry | { invalid: string } {
  if (input === null || typeof input !== 'object') return { invalid: 'the entry is not an object' };
  if (typeof input.started_at !== 'number' || !Number.isFinite(input.started_at)) return { invalid: 'started_at is not a number of ms' };
  if (!isDuration(input.duration_ms)) return { invalid: 'duration_ms is not a duration' };
  if (input.wait_ms !== null && !isDuration(input.wait_ms)) return { invalid: 'wait_ms is not a duration or null' };
  if (!isId(input.decision_id)) return { invalid: 'decision_id is missing' };
  const audit = input.audit;
  if (audit !== null && (typeof audit !== 'object' || !isId(audit.stream) || !isCount(audit.seq) || audit.seq < 1)) {
    return { invalid: 'audit is not {stream, seq} or null' };
  }
  const error = input.error ?? null;
  if (error !== null && typeof error !== 'string') return { invalid: 'error is not a string or null' };
  const masked = copyMasked(input.masked);
  if (!masked) return { invalid: 'masked is not a list of {column, detector, count}' };

  const req = input.request;
  if (req === null || typeof req !== 'object') return { invalid: 'request is missing' };
  if (typeof req.method !== 'string' || req.method.length === 0) return { invalid: 'request.method is missing' };
  const method = recordedMethod(req.method);
  if (typeof req.url !== 'string' || req.url.length === 0) return { invalid: 'request.url is missing' };
  if (typeof req.http_version !== 'string' || req.http_version.length > 16) return { invalid: 'request.http_version is not a version' };
  const requestHeaders = copyHeaders(req.headers);
  if (!requestHeaders) return { invalid: 'request.headers is not a list of {name, value}' };
  const requestBody = copyBody(req.body);
  if (requestBody === undefined) return { invalid: 'request.body is not {mime_type, size, text?} or null' };

  const res = input.response;
  if (res !== null && (typeof res !== 'object' || !Number.isInteger(res.status) || res.status < 100 || res.status > 999)) {
    return { invalid: 'response is not {status, …} or null' };
  }
  if (res !== null && (typeof res.http_version !== 'string' || res.http_version.length > 16)) return { invalid: 'response.http_version is not a version' };
  const responseHeaders = res === null ? { headers: [], omitted: 0 } : copyHeaders(res.headers);
  if (!responseHeaders) return { invalid: 'response.headers is not a list of {name, value}' };
  const responseBody = res === null ? null : copyBody(res.body);
  if (responseBody === undefined) return { invalid: 'response.body is not {mime_type, size, text?} or null' };

  const wait = input.wait_ms ?? input.duration_ms;
  const url = req.url.length > MAX_URL_CHARS ? req.url.slice(0, MAX_URL_CHARS) : req.url;
  const har: HarEntry = {
    startedDateTime: new Date(input.started_at).toISOString(),
    time: input.duration_ms,
    request: {
      method: method.text,
      url,
      httpVersion: req.http_version,
      cookies: [],
      headers: requestHeaders.headers,
      queryString: queryString(url),
      headersSize: -1,
      bodySize: requestBody === null ? 0 : requestBody.size,
    },
    response: {
      status: res?.status ?? 0,
      statusText: res ? (STATUS_CODES[res.status] ?? '') : '',
      httpVersion: res?.http_version ?? '',
      cookies: [],
      headers: responseHeaders.headers,
      content: { size: responseBody?.size ?? 0, mimeType: responseBody?.mime_type ?? '' },
      redirectURL: '',
      headersSize: -1,
      bodySize: res === null ? -1 : (responseBody?.size ?? 0),
    },
    cache: {},
    timings: { send: 0, wait, receive: Math.max(0, input.duration_ms - wait) },
  };
  if (requestBody?.text !== undefined) har.request.postData = { mimeType: requestBody.mime_type, text: requestBody.text };
  if (responseBody?.text !== undefined) har.response.content.text = responseBody.text;
  const requestCuts = [
    ...(method.truncated ? [`the method is cut at ${MAX_METHOD_CHARS} characters`] : []),
    ...(requestHeaders.omitted > 0 ? [omittedHeaders(requestHeaders.omitted)] : []),
  ];
  if (requestCuts.length > 0) har.request.comment = `gatehouse: ${requestCuts.join('; ')}`;
  if (responseHeaders.omitted > 0) har.response.comment = `gatehouse: ${omittedHeaders(responseHeaders.omitted)}`;

  const entry: HttpExchangeEntry = {
    seq,
    time: input.started_at,
    decision: 'allow',
    decision_id: input.decision_id,
    audit: audit === null ? null : { stream: audit.stream, seq: audit.seq },
    masked,
    error: error === null ? null : error.slice(0, MAX_ERROR_CHARS),
    har,
  };
  if (method.truncated) entry.request_method_truncated = true;
  if (requestHeaders.omitted > 0) entry.request_headers_truncated = true;
  if (responseHeaders.omitted > 0) entry.response_headers_truncated = true;
  if (requestBody?.truncated) entry.request_body_truncated = true;
  if (responseBody?.truncated) entry.response_body_truncated = true;
  return entry;
}

const omittedHeaders = (n: number) => `${n} header line${n === 1 ? '' : 's'} after the first ${MAX_HEADERS} ${n === 1 ? 'is' : 'are'} not recorded`;

/** Printable ASCII but the backslash: a method's character kept as it is. */
const METHOD_CHAR = /^[!-[\]-~]$/;

/**
 * A method as recorded: as sent (a token such as `get` or `FOO_BAR` is kept
 * as it is), each character outside printable ASCII, and the backslash,
 * written as \u{…} so the text shows what was sent and cannot act on a
 * terminal; cut at MAX_METHOD_CHARS, never inside an escape.
 */
export function recordedMethod(sent: string, max = MAX_METHOD_CHARS): { text: string; truncated: boolean } {
  let text = '';
  for (const c of sent) {
    const piece = METHOD_CHAR.test(c) ? c : `\\u{${c.codePointAt(0)!.toString(16)}}`;
    if (text.length + piece.length > max) return { text, truncated: true };
    text += piece;
  }
  return { text, truncated: false };
}

/**
 * Whether a recorded method is the one a decision's audit event names (the
 * audit event has the method upper-cased, unescaped and uncut): the same
 * text whatever its case, or its start when the recording cut it.
 */
export function sameMethod(recorded: string, truncated: boolean, decided: string): boolean {
  const kept = recorded.toLowerCase();
  const expected = recordedMethod(decided, Infinity).text.toLowerCase();
  return truncated ? expected.startsWith(kept) : expected === kept;
}

function copyMasked(list: readonly MaskCount[]): MaskCount[] | null {
  if (!Array.isArray(list)) return null;
  const out: MaskCount[] = [];
  for (const m of list) {
    if (m === null || typeof m !== 'object' || !isId(m.column) || (m.detector !== null && !isId(m.detector)) || !isCount(m.count)) return null;
    out.push({ column: m.column, detector: m.detector, count: m.count });
  }
  return out;
}

/**
 * Copies name/value pairs, lower-casing names and leaving out credential
 * headers; the first MAX_HEADERS are kept, and how many more were left out
 * is counted.
 */
function copyHeaders(list: readonly HarHeader[]): { headers: HarHeader[]; omitted: number } | null {
  if (!Array.isArray(list)) return null;
  const headers: HarHeader[] = [];
  let omitted = 0;
  for (const h of list) {
    if (h === null || typeof h !== 'object' || typeof h.name !== 'string' || typeof h.value !== 'string') return null;
    const name = h.name.toLowerCase();
    if (!HTTP_TOKEN.test(name)) return null;
    // The ExternalProcessor also drops the header Check injected the target's credential in, whatever its name.
    if (isCredentialHeader(name, h.value)) continue;
    if (headers.length === MAX_HEADERS) {
      omitted += 1;
      continue;
    }
    headers.push({ name, value: h.value.length > MAX_HEADER_CHARS ? h.value.slice(0, MAX_HEADER_CHARS) : h.value });
  }
  return { headers, omitted };
}

/** The body, its text cut to MAX_BODY_CHARS; null for none; undefined when malformed. */
function copyBody(body: RecordedBody | null): (RecordedBody & { truncated: boolean }) | null | undefined {
  if (body === null || body === undefined) return null;
  if (typeof body !== 'object' || typeof body.mime_type !== 'string' || !isCount(body.size)) return undefined;
  const mime = body.mime_type.slice(0, MAX_NAME_CHARS);
  if (body.text === undefined) return { mime_type: mime, size: body.size, truncated: false };
  if (typeof body.text !== 'string') return undefined;
  if (body.text.length <= MAX_BODY_CHARS) return { mime_type: mime, size: body.size, text: body.text, truncated: false };
  return { mime_type: mime, size: body.size, text: cut(body.text, MAX_BODY_CHARS), truncated: true };
}

/** The first `max` code units, without splitting a surrogate pair. */
function cut(text: string, max: number): string {
  const code = text.charCodeAt(max - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

function queryString(url: string): HarHeader[] {
  const q = url.indexOf('?');
  if (q === -1) return [];
  const hash = url.indexOf('#', q);
  return [...new URLSearchParams(url.slice(q + 1, hash === -1 ? undefined : hash))].map(([name, value]) => ({ name, value }));
}

export const httpExchange: RecordingFormat<'http'> = {
  protocol: 'http',
  id: HTTP_EXCHANGE,
  unit: 'exchanges',
  entry: (input, seq) => httpExchangeEntry(input, seq),
  decision: (entry) => entry.decision,
  time: (entry) => entry.time,
  render: renderHttpExchange,
};

/**
 * One exchange as text, e.g.
 * `[+0.012s] ALLOW  GET https://crm.internal/customers?limit=2 → 200 OK  (1.2 KiB application/json, 35 ms; masked customers[*].email×2)`.
 */
export function renderHttpExchange(entry: HttpExchangeEntry, startedAt: number): string {
  const { request, response } = entry.har;
  const offset = `[+${((entry.time - startedAt) / 1000).toFixed(3)}s]`;
  const status = response.status === 0 ? 'no response' : `${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
  const parts: string[] = [];
  if (response.status !== 0) parts.push(`${formatSize(response.content.size)}${response.content.mimeType ? ` ${response.content.mimeType}` : ''}`);
  parts.push(`${Math.round(entry.har.time)} ms`);
  let detail = parts.join(', ');
  const masked = entry.masked.filter((m) => m.count > 0);
  if (masked.length) detail += `; masked ${masked.map((m) => `${m.column}${m.detector ? `[${m.detector}]` : ''}×${m.count}`).join(', ')}`;
  if (entry.response_body_truncated) detail += '; body recorded in part';
  const cut = [
    ...(entry.request_method_truncated ? ['method'] : []),
    ...(entry.request_headers_truncated ? ['request headers'] : []),
    ...(entry.response_headers_truncated ? ['response headers'] : []),
  ];
  if (cut.length > 0) detail += `; ${cut.join(', ')} recorded in part`;
  if (entry.error) detail += `; ${entry.error}`;
  return `${offset} ALLOW  ${request.method} ${request.url} → ${status}  (${detail})`;
}

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

const TRUNCATION_MARKS = [
  'request_method_truncated', 'request_headers_truncated', 'response_headers_truncated', 'request_body_truncated', 'response_body_truncated',
] as const;

/** HAR's `creator`, for an exported log. */
export const HAR_CREATOR = { name: 'Gatehouse', version: '0.1.0' } as const;

/**
 * An entry as it goes into an exported HAR log: the HAR entry, with
 * Gatehouse's fields under `_gatehouse` (HAR allows custom fields that start
 * with "_"), so the file still says which decision and audit event each
 * exchange belongs to.
 */
export function harLogEntry(entry: HttpExchangeEntry): HarEntry & { _gatehouse: Record<string, unknown> } {
  const gatehouse: Record<string, unknown> = {
    seq: entry.seq,
    decision: entry.decision,
    decision_id: entry.decision_id,
    audit: entry.audit,
    masked: entry.masked,
    error: entry.error,
  };
  for (const mark of TRUNCATION_MARKS) if (entry[mark]) gatehouse[mark] = true;
  return { ...entry.har, _gatehouse: gatehouse };
}
