import { describe, expect, it } from 'vitest';
import { formatById, FORMATS } from '../../engine/recording/formats.js';
import { harLogEntry, HTTP_EXCHANGE, httpExchange, MAX_BODY_CHARS, MAX_HEADERS, MAX_METHOD_CHARS, renderHttpExchange, sameMethod } from '../../engine/recording/http-exchange.js';
import type { HttpExchangeEntry, HttpExchangeRecord } from '../../engine/recording/types.js';

const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);

function record(overrides: Partial<HttpExchangeRecord> = {}): HttpExchangeRecord {
  return {
    started_at: T0,
    duration_ms: 35,
    wait_ms: 30,
    decision_id: 'dec-1',
    audit: { stream: 'gw-1', seq: 7 },
    request: {
      method: 'GET',
      url: 'https://crm.internal/customers?limit=2&q=a%20b',
      http_version: 'HTTP/1.1',
      headers: [
        { name: 'Accept', value: 'application/json' }, { name: 'authorization', value: 'Bearer upstream-secret' }, { name: 'Cookie', value: 'sid=1' },
        { name: 'X-Auth-Token', value: 'tok-1' }, { name: 'private-token', value: 'tok-2' }, { name: 'X-Vault-Token', value: 'tok-3' },
      ],
      body: null,
    },
    response: {
      status: 200,
      http_version: 'HTTP/1.1',
      headers: [{ name: 'content-type', value: 'application/json' }, { name: 'set-cookie', value: 'sid=2' }, { name: 'x-subject-token', value: 'tok-4' }],
      body: { mime_type: 'application/json', size: 1300, text: '{"customers":[{"email":"j***@example.com"}]}' },
    },
    masked: [{ column: 'customers[*].email', detector: null, count: 2 }],
    ...overrides,
  };
}

function entry(input: HttpExchangeRecord = record(), seq = 1): HttpExchangeEntry {
  const out = httpExchange.entry(input, seq, T0 + 1000);
  if ('invalid' in out) throw new Error(out.invalid);
  return out;
}

describe('http exchange format', () => {
  it('is the http protocol\'s format, found by its id', () => {
    expect(FORMATS.http).toBe(httpExchange);
    expect(formatById(HTTP_EXCHANGE)).toBe(httpExchange);
    expect(httpExchange.unit).toBe('exchanges');
  });

  it('stores Gatehouse\'s fields at the top and a HAR 1.2 entry', () => {
    const e = entry();
    expect(e).toMatchObject({ seq: 1, time: T0, decision: 'allow', decision_id: 'dec-1', audit: { stream: 'gw-1', seq: 7 }, error: null });
    expect(httpExchange.decision(e)).toBe('allow');
    expect(httpExchange.time(e)).toBe(T0);
    expect(e.har).toEqual({
      startedDateTime: '2025-06-01T12:00:00.000Z',
      time: 35,
      request: {
        method: 'GET',
        url: 'https://crm.internal/customers?limit=2&q=a%20b',
        httpVersion: 'HTTP/1.1',
        cookies: [],
        headers: [{ name: 'accept', value: 'application/json' }],
        queryString: [{ name: 'limit', value: '2' }, { name: 'q', value: 'a b' }],
        headersSize: -1,
        bodySize: 0,
      },
      response: {
        status: 200,
        statusText: 'OK',
        httpVersion: 'HTTP/1.1',
        cookies: [],
        headers: [{ name: 'content-type', value: 'application/json' }],
        content: { size: 1300, mimeType: 'application/json', text: '{"customers":[{"email":"j***@example.com"}]}' },
        redirectURL: '',
        headersSize: -1,
        bodySize: 1300,
      },
      cache: {},
      timings: { send: 0, wait: 30, receive: 5 },
    });
  });

  it('drops credential headers whatever the caller passed', () => {
    const text = JSON.stringify(entry());
    expect(text).not.toContain('upstream-secret');
    expect(text).not.toContain('sid=');
  });

  it('copies only known fields', () => {
    const wide = { ...record(), row_values: ['jane@example.com'] } as HttpExchangeRecord;
    const wideRequest = { ...record(), request: { ...record().request, raw: 'secret' } } as HttpExchangeRecord;
    expect(JSON.stringify(entry(wide))).not.toContain('jane@');
    expect(JSON.stringify(entry(wideRequest))).not.toContain('secret');
  });

  it('keeps the first MAX_BODY_CHARS of a body and says so; a request body becomes postData', () => {
    const long = 'x'.repeat(MAX_BODY_CHARS + 10);
    const e = entry(record({
      request: { ...record().request, method: 'POST', body: { mime_type: 'text/plain', size: 5, text: 'hello' } },
      response: { ...record().response!, body: { mime_type: 'text/plain', size: long.length, text: long } },
    }));
    expect(e.har.request.postData).toEqual({ mimeType: 'text/plain', text: 'hello' });
    expect(e.har.request.bodySize).toBe(5);
    expect(e.har.response.content.text).toHaveLength(MAX_BODY_CHARS);
    expect(e.har.response.content.size).toBe(MAX_BODY_CHARS + 10);
    expect(e.response_body_truncated).toBe(true);
    expect(e.request_body_truncated).toBeUndefined();
  });

  it('records a binary body by size and type only, and a missing response as status 0', () => {
    const binary = entry(record({ response: { ...record().response!, body: { mime_type: 'image/png', size: 10 } } }));
    expect(binary.har.response.content).toEqual({ size: 10, mimeType: 'image/png' });
    const none = entry(record({ response: null, wait_ms: null, error: 'no response was seen' }));
    expect(none.har.response).toMatchObject({ status: 0, statusText: '', bodySize: -1 });
    expect(none.har.timings).toEqual({ send: 0, wait: 35, receive: 0 });
    expect(none.error).toBe('no response was seen');
  });

  it.each([
    ['no decision id', { decision_id: '' }, /decision_id/],
    ['a bad audit ref', { audit: { stream: 'gw', seq: 0 } }, /audit/],
    ['a negative duration', { duration_ms: -1 }, /duration_ms/],
    ['no method', { request: { ...record().request, method: '' } }, /method/],
    ['a method that is not a string', { request: { ...record().request, method: 7 } }, /method/],
    ['a bad header', { request: { ...record().request, headers: [{ name: 'a b', value: 'x' }] } }, /headers/],
    ['a bad status', { response: { ...record().response!, status: 42 } }, /response/],
    ['a bad body', { response: { ...record().response!, body: { mime_type: 'x', size: -1 } } }, /body/],
    ['bad counts', { masked: [{ column: 'a', detector: null, count: -1 }] }, /masked/],
  ])('refuses %s', (_what, overrides, problem) => {
    const out = httpExchange.entry(record(overrides as Partial<HttpExchangeRecord>), 1, T0);
    expect('invalid' in out && out.invalid).toMatch(problem);
  });

  it('records any method the agent sent, as sent but escaped and cut, and says when it was cut', () => {
    const method = (sent: string) => entry(record({ request: { ...record().request, method: sent } }));
    for (const sent of ['get', 'FOO_BAR', 'M-SEARCH', 'A'.repeat(MAX_METHOD_CHARS)]) {
      const e = method(sent);
      expect(e.har.request.method, sent).toBe(sent);
      expect(e.request_method_truncated, sent).toBeUndefined();
      expect(e.har.request.comment, sent).toBeUndefined();
    }
    const long = method('A'.repeat(40));
    expect(long.har.request.method).toBe('A'.repeat(MAX_METHOD_CHARS));
    expect(long.request_method_truncated).toBe(true);
    expect(long.har.request.comment).toBe(`gatehouse: the method is cut at ${MAX_METHOD_CHARS} characters`);
    expect(harLogEntry(long)._gatehouse).toMatchObject({ request_method_truncated: true });
    expect(renderHttpExchange(long, T0)).toContain('; method recorded in part');
    // What would act on a terminal, or hide, is written as an escape (never cut in half); so is a backslash, so the escape is unambiguous.
    expect(method('G\x1b[2K\r\\ x').har.request.method).toBe('G\\u{1b}[2K\\u{d}\\u{5c}\\u{20}x');
    expect(method('GET\u202e').har.request.method).toBe('GET\\u{202e}');
    const escapes = method('\x1b'.repeat(10));
    expect(escapes.har.request.method).toBe('\\u{1b}'.repeat(5));
    expect(escapes.request_method_truncated).toBe(true);
    // A huge method is cut, not read whole into the entry.
    expect(method('X'.repeat(1_000_000)).har.request.method).toHaveLength(MAX_METHOD_CHARS);
  });

  it('matches a recorded method to the audit event\'s (upper-cased, unescaped, uncut)', () => {
    expect(sameMethod('get', false, 'GET')).toBe(true);
    expect(sameMethod('FOO_BAR', false, 'FOO_BAR')).toBe(true);
    expect(sameMethod('A'.repeat(MAX_METHOD_CHARS), true, 'A'.repeat(40))).toBe(true);
    expect(sameMethod('GET\\u{1b}', false, 'GET\x1b')).toBe(true);
    expect(sameMethod('GET', false, 'POST')).toBe(false);
    expect(sameMethod('GE', false, 'GET')).toBe(false);
    expect(sameMethod('A'.repeat(MAX_METHOD_CHARS), true, 'B'.repeat(40))).toBe(false);
  });

  it('keeps the first MAX_HEADERS header lines of a request or response and says how many more there were', () => {
    const lines = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => ({ name: `${prefix}-${i}`, value: 'v' }));
    const e = entry(record({
      // Credential headers are left out before the count: they are never recorded.
      request: { ...record().request, headers: [{ name: 'authorization', value: 'Bearer upstream-secret' }, ...lines(MAX_HEADERS + 1, 'x-req')] },
      response: { ...record().response!, headers: lines(MAX_HEADERS + 3, 'x-res') },
    }));
    expect(e.har.request.headers).toHaveLength(MAX_HEADERS);
    expect(e.har.request.headers.at(-1)).toEqual({ name: `x-req-${MAX_HEADERS - 1}`, value: 'v' });
    expect(e.har.response.headers).toHaveLength(MAX_HEADERS);
    expect(e).toMatchObject({ request_headers_truncated: true, response_headers_truncated: true });
    expect(e.har.request.comment).toBe(`gatehouse: 1 header line after the first ${MAX_HEADERS} is not recorded`);
    expect(e.har.response.comment).toBe(`gatehouse: 3 header lines after the first ${MAX_HEADERS} are not recorded`);
    expect(JSON.stringify(e)).not.toContain('upstream-secret');
    expect(harLogEntry(e)._gatehouse).toMatchObject({ request_headers_truncated: true, response_headers_truncated: true });
    expect(renderHttpExchange(e, T0)).toContain('; request headers, response headers recorded in part');
    const exact = entry(record({ request: { ...record().request, headers: lines(MAX_HEADERS, 'x-req') } }));
    expect(exact.har.request.headers).toHaveLength(MAX_HEADERS);
    expect(exact.request_headers_truncated).toBeUndefined();
    expect(exact.har.request.comment).toBeUndefined();
  });

  it('renders one line per exchange', () => {
    expect(renderHttpExchange(entry(), T0 - 12)).toBe(
      '[+0.012s] ALLOW  GET https://crm.internal/customers?limit=2&q=a%20b → 200 OK  (1.3 KiB application/json, 35 ms; masked customers[*].email×2)',
    );
    const refused = entry(record({ response: { status: 502, http_version: '', headers: [], body: { mime_type: 'application/json', size: 60, text: '{}' } }, error: 'the gateway answered 502: the body is declared as JSON but is not valid JSON', masked: [] }));
    expect(renderHttpExchange(refused, T0)).toBe('[+0.000s] ALLOW  GET https://crm.internal/customers?limit=2&q=a%20b → 502 Bad Gateway  (60 B application/json, 35 ms; the gateway answered 502: the body is declared as JSON but is not valid JSON)');
  });

  it('exports as a HAR log entry with Gatehouse\'s fields under _gatehouse', () => {
    const e = entry();
    const har = harLogEntry(e);
    expect(har.request).toEqual(e.har.request);
    expect(har._gatehouse).toEqual({ seq: 1, decision: 'allow', decision_id: 'dec-1', audit: { stream: 'gw-1', seq: 7 }, masked: e.masked, error: null });
  });
});
