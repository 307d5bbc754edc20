import { describe, expect, it } from 'vitest';
import { compileFieldMasks } from '../../engine/masking/json-fields.js';
import { authorityWithoutCredentials } from '../../engine/masking/url-credentials.js';
import { recordableHeaders, type HeaderList } from '../../ext-authz/process/headers.js';
import { recordedUrl } from '../../ext-authz/process/url.js';

const JWT = 'eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZ2VudDpzdXBwb3J0LWJvdCJ9.c2lnbmF0dXJlc2lnbmF0dXJl';

const request = (authority: string, path = '/api/customers?limit=2'): HeaderList => [
  { name: ':method', value: 'GET' }, { name: ':scheme', value: 'https' }, { name: ':authority', value: authority }, { name: ':path', value: path },
];

describe('recordedUrl: the authority', () => {
  it('drops any userinfo, a token before "@" or user:password', () => {
    expect(recordedUrl(request(`${JWT}@crm.internal`))).toBe('https://crm.internal/api/customers?limit=2');
    expect(recordedUrl(request('svc:hunter2@crm.internal:8443'))).toBe('https://crm.internal:8443/api/customers?limit=2');
    expect(recordedUrl(request('a@b@crm.internal'))).toBe('https://crm.internal/api/customers?limit=2');
    expect(recordedUrl(request('crm.internal:8443'))).toBe('https://crm.internal:8443/api/customers?limit=2');
  });

  it('redacts a JWT left in the host', () => {
    const url = recordedUrl(request(`${JWT}.crm.internal`));
    expect(url).toMatch(/^https:\/\/\[REDACTED\][^/]*\/api\/customers\?limit=2$/);
    expect(url).not.toContain(JWT.split('.')[1]);
    expect(authorityWithoutCredentials(`x@${JWT}`)).toBe('[REDACTED]');
  });

  it('reads the Host header the same way when there is no :authority, and records a Host header without userinfo', () => {
    const viaHost: HeaderList = [{ name: ':path', value: '/' }, { name: 'host', value: 'svc:hunter2@crm.internal' }];
    expect(recordedUrl(viaHost)).toBe('http://crm.internal/');
    expect(recordableHeaders(viaHost)).toEqual([{ name: 'host', value: 'crm.internal' }]);
  });
});

describe('recordedUrl: the query under "$" detector rules', () => {
  const masks = compileFieldMasks([{ field: '$', detectors: ['email', 'payment_card'], strategy: 'redact' }]);
  const scan = (text: string) => masks.scanText(text).value;

  it('scans each query name and value as a server decodes it, and keeps the rest byte for byte', () => {
    expect(recordedUrl(request('crm.internal', '/api/customers?email=jane.doe@example.com&card=4111111111111111&sort=name%20asc'), scan))
      .toBe('https://crm.internal/api/customers?email=[REDACTED:email]&card=[REDACTED:payment_card]&sort=name%20asc');
    expect(recordedUrl(request('crm.internal', '/api?who=jane.doe%40example.com;jane%2Bx@example.org&n=4111+1111+1111+1111'), scan))
      .toBe('https://crm.internal/api?who=[REDACTED:email];[REDACTED:email]&n=[REDACTED:payment_card]');
    // The path is what replay matches to the audit event: kept.
    expect(recordedUrl(request('crm.internal', '/users/jane.doe@example.com?x=1'), scan)).toBe('https://crm.internal/users/jane.doe@example.com?x=1');
    expect(recordedUrl(request('crm.internal', '/api?limit=2&access_token=s3cr3t'), scan)).toBe('https://crm.internal/api?limit=2&access_token=[REDACTED]');
  });

  it('encodes what a masking strategy wrote so the query still parses, and drops a value a "null" rule removes', () => {
    const partial = compileFieldMasks([{ field: '$', detectors: ['email'], strategy: 'partial' }]);
    expect(recordedUrl(request('crm.internal', '/api?e=jane.doe%40example.com&x=a%26b'), (t) => partial.scanText(t).value))
      .toBe('https://crm.internal/api?e=j***@example.com&x=a%26b');
    expect(recordedUrl(request('crm.internal', '/api?e=jane@example.com&x=1'), (t) => (t.includes('@') ? null : t))).toBe('https://crm.internal/api?e=&x=1');
  });
});
