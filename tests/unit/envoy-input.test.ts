import { describe, expect, it } from 'vitest';
import { envoyInput, type CheckAttributes, type EnvoyInput } from '../../ext-authz/check/envoy-input.js';

function input(http: NonNullable<NonNullable<CheckAttributes['request']>['http']>, extra: Partial<CheckAttributes> = {}): EnvoyInput {
  const result = envoyInput({ request: { http }, ...extra });
  if ('invalid' in result) throw new Error(result.invalid);
  return result;
}

describe('envoyInput (the OPA-Envoy input document)', () => {
  it('splits and decodes the path as the plugin does, with query values as lists', () => {
    const doc = input({ method: 'GET', path: '/people/J%C3%BCrgen%2Fx/?q=a+b&q=c&empty=#frag' });
    expect(doc.parsed_path).toEqual(['people', 'Jürgen', 'x', '']);
    expect(doc.parsed_query).toEqual({ q: ['a b', 'c'], empty: [''] });
    expect(input({ path: '/' }).parsed_path).toEqual(['']);
    expect(input({ path: '//a' }).parsed_path).toEqual(['a']);
    expect(doc.version).toEqual({ ext_authz: 'v3', encoding: 'protojson' });
  });

  it('parses JSON bodies only, marks a body Envoy cut short as truncated, and refuses one that does not parse', () => {
    const json = { 'content-type': 'application/json; charset=utf-8' };
    expect(input({ headers: json, body: '{"a":[1,2]}' }).parsed_body).toEqual({ a: [1, 2] });
    expect(input({ headers: { 'content-type': 'text/plain' }, body: '{"a":1}' }).parsed_body).toBeNull();
    // What upstream frameworks parse as JSON, policy reads as JSON (the plugin matches "application/json" only).
    for (const type of ['Application/JSON', 'text/json', 'application/merge-patch+json', 'application/vnd.api+json; charset=utf-8', 'application/json,text/plain', 'text/plain,application/json']) {
      expect(input({ headers: { 'content-type': type }, body: '{"a":1}' }).parsed_body, type).toEqual({ a: 1 });
    }
    const cut = input({ headers: { ...json, 'content-length': '100' }, body: '{"a":' });
    expect([cut.parsed_body, cut.truncated_body]).toEqual([null, true]);
    // Bytes, not UTF-16 units, are what content-length counts.
    expect(input({ headers: { ...json, 'content-length': '8' }, body: '{"é":1}' }).truncated_body).toBe(false);
    // A body of bytes (raw_body, base64 in protojson) is measured in bytes too.
    const bytes = Buffer.from([0xff, 0x41, 0x41, 0x41]).toString('base64');
    expect(input({ headers: { 'content-length': '4' }, rawBody: bytes }).truncated_body).toBe(false);
    expect(input({ headers: { 'content-length': '5' }, rawBody: bytes }).truncated_body).toBe(true);
    expect(envoyInput({ request: { http: { headers: json, body: '{"a":' } } })).toEqual({ invalid: 'the request body says application/json but is not valid JSON' });
    expect(envoyInput({ request: { http: { path: '/%E0%A4%A' } } })).toEqual({ invalid: 'the request path is not valid percent-encoding' });
  });

  it('gives Timestamp and Struct their protojson forms and leaves the rest as Envoy sent it', () => {
    const doc = envoyInput({
      request: { time: { seconds: '1700000000', nanos: 5_000_000 }, http: { path: '/' } },
      metadataContext: { filterMetadata: { ns: { fields: { a: { stringValue: 'b' }, n: { numberValue: 2 } } } } },
      contextExtensions: { target: 'crm-api' },
    }) as EnvoyInput;
    expect(doc.attributes.request?.time).toBe('2023-11-14T22:13:20.005Z');
    expect(doc.attributes.metadataContext).toEqual({ filterMetadata: { ns: { a: 'b', n: 2 } } });
    expect(doc.attributes.contextExtensions).toEqual({ target: 'crm-api' });
    const nanos = (n: number) => (envoyInput({ request: { time: { seconds: '1700000000', nanos: n }, http: { path: '/' } } }) as EnvoyInput).attributes.request?.time;
    expect([nanos(0), nanos(123_456_000), nanos(123_456_789)]).toEqual(['2023-11-14T22:13:20Z', '2023-11-14T22:13:20.123456Z', '2023-11-14T22:13:20.123456789Z']);
  });

  it('refuses, as input it cannot write, a time outside Timestamp\'s range (years 1 to 9999) rather than throw on it', () => {
    const at = (seconds: string, nanos = 0) => envoyInput({ request: { time: { seconds, nanos }, http: { path: '/' } } });
    const invalid = { invalid: 'the request time (attributes.request.time) is not a Timestamp: seconds must fall in years 1 to 9999, nanos in 0 to 999,999,999' };
    // Date throws a RangeError past ±8.64e12 s, and writes years past 9999 as "+010000-…", which is no RFC 3339 time.
    for (const seconds of ['99999999999999', '-99999999999999', '253402300800', '-62135596801', '9223372036854775807']) expect(at(seconds), seconds).toEqual(invalid);
    expect(at('0', -1)).toEqual(invalid);
    expect(at('0', 1_000_000_000)).toEqual(invalid);
    expect((at('253402300799', 999_999_999) as EnvoyInput).attributes.request?.time).toBe('9999-12-31T23:59:59.999999999Z');
    expect((at('-62135596800') as EnvoyInput).attributes.request?.time).toBe('0001-01-01T00:00:00Z');
  });
});
