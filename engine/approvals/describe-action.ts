import { requestFacts } from '../authorize/request-facts.js';
import type { HttpRequestFacts } from '../audit/events.js';
import type { TargetConfig } from '../config/schema.js';
import { isCredentialHeader, URL_HEADERS } from '../masking/credential-headers.js';
import { withoutUrlCredentials } from '../masking/url-credentials.js';

/** Enough of a body to judge it; the approval binds all of it, and `gatehouse approvals show` has it. */
const BODY_CHARS = 500;
/** One long header or query value must not push the body out of the description. */
const VALUE_CHARS = 200;

/**
 * What an approval request asks, in a few lines an approver can judge
 * without opening the record: the statement and its bound values, the
 * HTTP request (line, query, headers, body), or the SSH command. The
 * approval binds the whole action by hash; this is only its reading, cut at
 * `maxChars`.
 */
export function describeAction(action: unknown, maxChars: number): string {
  const kind = kindOf(action);
  if (!kind) return '(an action of unknown shape: see gatehouse approvals show)';
  const { request } = requestFacts(kind, action as Record<string, unknown>);
  let text: string;
  switch (request.protocol) {
    case 'postgres':
      text = [request.text, ...parameterLines((action as { postgres?: { parameters?: unknown } | null }).postgres?.parameters)].join('\n');
      break;
    case 'http':
      text = httpLines(request, (action as { attributes?: { request?: { http?: unknown } } }).attributes?.request?.http).join('\n');
      break;
    case 'ssh':
      // On one line: a command of many lines must not push what it does out of the approver's view.
      text = request.command ? `${request.request}: ${oneLine(request.command)}` : request.request;
      break;
  }
  return text.length > maxChars ? `${cut(text, maxChars)}… (${text.length - maxChars} more characters: gatehouse approvals show)` : text;
}

/** The front ends' action shapes (action-input.ts): each protocol under its own key. */
function kindOf(action: unknown): TargetConfig['kind'] | null {
  if (typeof action !== 'object' || action === null) return null;
  if ('postgres' in action) return 'postgres';
  if ('ssh' in action) return 'ssh';
  if ('attributes' in action) return 'http';
  return null;
}

/** `$1 = 'text'`, as bound-values.ts shows them: text, hex, or a digest for large values. */
function parameterLines(parameters: unknown): string[] {
  if (!Array.isArray(parameters)) return [];
  return parameters.map((value: unknown, i) => {
    const p = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
    const shown = p.sha256 !== undefined ? `(${String(p.bytes)} bytes, sha256 ${String(p.sha256)})`
      : p.hex !== undefined ? `'\\x${String(p.hex)}'`
        : p.value === null ? 'NULL' : `'${String(p.value).replace(/'/g, "''")}'`;
    return `$${i + 1} = ${shown}`;
  });
}

/**
 * An HTTP request as an approval binds it (action-input.ts): the request
 * line, the query one parameter a line and decoded (percent-encoding hides
 * what a value says), the headers, and the start of the body. Every header
 * kept there is bound because it can change what the request does
 * (X-HTTP-Method-Override), so all are shown but credentials: the record
 * holds none (only their digest), and a header that is one by its name or
 * value is left out here all the same, as the query's are redacted.
 */
function httpLines(request: HttpRequestFacts, http: unknown): string[] {
  const fields = record(http);
  const at = request.path.indexOf('?'); // request-facts.ts has already redacted credentials in it
  const lines = [`${request.method} ${request.host ?? ''}${at === -1 ? request.path : request.path.slice(0, at)}`];
  const query = at === -1 ? [] : [...new URLSearchParams(request.path.slice(at + 1))];
  if (query.length > 0) lines.push('query:', ...query.map(([name, value]) => `  ${oneLine(name)} = ${oneLine(clip(value, VALUE_CHARS))}`));
  lines.push(...headerLines(record(fields.headers)));
  if (fields.withheld_sha256 !== undefined) lines.push('credentials: not shown (the approval binds them by their SHA-256)');
  lines.push(...bodyLines(fields));
  return lines;
}

function headerLines(headers: Record<string, unknown>): string[] {
  const lines: string[] = [];
  let withheld = 0;
  for (const [name, value] of Object.entries(headers)) {
    if (isCredentialHeader(name, value)) {
      withheld += 1;
      continue;
    }
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    const shown = URL_HEADERS.has(name.toLowerCase()) ? withoutUrlCredentials(text) : text;
    lines.push(`  ${oneLine(name)}: ${oneLine(clip(shown, VALUE_CHARS))}`);
  }
  if (withheld > 0) lines.push(`  (${withheld} credential header${withheld === 1 ? '' : 's'} not shown)`);
  return lines.length > 0 ? ['headers:', ...lines] : [];
}

/**
 * Text as sent, its lines indented so that none can pass for a line of the
 * description; bytes that are not UTF-8 (raw_body, base64) only counted.
 */
function bodyLines(http: Record<string, unknown>): string[] {
  const body = typeof http.body === 'string' ? http.body : http.body === undefined || http.body === null ? '' : JSON.stringify(http.body);
  if (body !== '') {
    const size = `${Buffer.byteLength(body)} bytes`;
    const head = body.length > BODY_CHARS ? `body (${size}, the first ${BODY_CHARS} characters):` : `body (${size}):`;
    return [head, ...clip(body, BODY_CHARS).split('\n').map((line) => `  ${line}`)];
  }
  const raw = [http.rawBody, http.raw_body].find((b): b is string => typeof b === 'string' && b !== '');
  return raw === undefined ? [] : [`body: ${Buffer.byteLength(raw, 'base64')} bytes, not shown (not UTF-8 text)`];
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function clip(text: string, max: number): string {
  return text.length > max ? `${cut(text, max)}…` : text;
}

/** The first `max` UTF-16 units, less the first half of a character cut in two. */
function cut(text: string, max: number): string {
  const head = text.slice(0, max);
  return /[\uD800-\uDBFF]$/.test(head) ? head.slice(0, -1) : head;
}

/** A value on one line: a newline in a header or query value would start a line of its own making. Written as visible-text.ts writes controls. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]/g, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}
