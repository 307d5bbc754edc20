import { describe, expect, it } from 'vitest';
import { withoutCredentialParams } from '../../engine/masking/url-credentials.js';

const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl';

describe('withoutCredentialParams', () => {
  it('redacts credential-named parameters and any JWT, and keeps everything else byte for byte', () => {
    expect(withoutCredentialParams('/api/customers?limit=2&access_token=s3cr3t&sort=name%20asc'))
      .toBe('/api/customers?limit=2&access_token=[REDACTED]&sort=name%20asc');
    expect(withoutCredentialParams(`/api?jwt=${JWT}&Bearer=x`)).toBe('/api?jwt=[REDACTED]&Bearer=[REDACTED]');
    expect(withoutCredentialParams(`/api?q=${JWT}&page=eyJub3QiOiJhIGp3dCJ9`)).toBe('/api?q=[REDACTED]&page=eyJub3QiOiJhIGp3dCJ9');
  });

  it('leaves a path without a query alone and drops a fragment', () => {
    expect(withoutCredentialParams('/api/customers/42')).toBe('/api/customers/42');
    expect(withoutCredentialParams('/api?a=1#token=x')).toBe('/api?a=1');
  });
});
