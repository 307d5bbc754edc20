import { describe, expect, it } from 'vitest';
import { withoutUrlCredentials } from '../../engine/masking/url-credentials.js';

const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl';

describe('withoutUrlCredentials', () => {
  it('redacts credential-named parameters and any JWT, and keeps everything else byte for byte', () => {
    expect(withoutUrlCredentials('/api/customers?limit=2&access_token=s3cr3t&sort=name%20asc'))
      .toBe('/api/customers?limit=2&access_token=[REDACTED]&sort=name%20asc');
    expect(withoutUrlCredentials(`/api?jwt=${JWT}&Bearer=x`)).toBe('/api?jwt=[REDACTED]&Bearer=[REDACTED]');
    expect(withoutUrlCredentials(`/api?q=${JWT}&page=eyJub3QiOiJhIGp3dCJ9`)).toBe('/api?q=[REDACTED]&page=eyJub3QiOiJhIGp3dCJ9');
  });

  it('redacts parameters named with a credential word in them, also after ";"', () => {
    expect(withoutUrlCredentials('/api?auth_token=a1&api-token=a2&private_token=a3&token[]=a4&access-token=a5&x=1;session_id=a6&sort_by=name'))
      .toBe('/api?auth_token=[REDACTED]&api-token=[REDACTED]&private_token=[REDACTED]&token[]=[REDACTED]&access-token=[REDACTED]&x=1;session_id=[REDACTED]&sort_by=name');
    // A word only as a whole part of the name.
    expect(withoutUrlCredentials('/api?tokenizer=wordpiece&authors=3&sessions_count=2')).toBe('/api?tokenizer=wordpiece&authors=3&sessions_count=2');
  });

  it('redacts a JWT in the path itself, with or without a query', () => {
    expect(withoutUrlCredentials(`/customers/${JWT}`)).toBe('/customers/[REDACTED]');
    expect(withoutUrlCredentials(`/verify/token=${JWT}/x?limit=2`)).toBe('/verify/token=[REDACTED]/x?limit=2');
    // Looks like one, is not one (no JSON header with "alg"): kept.
    expect(withoutUrlCredentials('/page/eyJub3QiOiJhIGp3dCJ9.eyJ4IjoxfQ.c2ln')).toBe('/page/eyJub3QiOiJhIGp3dCJ9.eyJ4IjoxfQ.c2ln');
  });

  it('leaves a path without a query alone and drops a fragment', () => {
    expect(withoutUrlCredentials('/api/customers/42')).toBe('/api/customers/42');
    expect(withoutUrlCredentials('/api?a=1#token=x')).toBe('/api?a=1');
  });
});
