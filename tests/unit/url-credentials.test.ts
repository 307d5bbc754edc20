import { describe, expect, it } from 'vitest';
import { withoutJwts, withoutUrlCredentials } from '../../engine/masking/url-credentials.js';

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

  it('redacts a JWT whose header has whitespace in its JSON (base64url "eyA…", "ewo…"), as the detector reads one', () => {
    const spaced = `${Buffer.from('{ "alg": "ES256" }').toString('base64url')}.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl`;
    expect(withoutUrlCredentials(`/customers/${spaced}?q=${spaced}`)).toBe('/customers/[REDACTED]?q=[REDACTED]');
  });

  it('leaves a path without a query alone and drops a fragment', () => {
    expect(withoutUrlCredentials('/api/customers/42')).toBe('/api/customers/42');
    expect(withoutUrlCredentials('/api?a=1#token=x')).toBe('/api?a=1');
  });
});

describe('withoutJwts (a policy reason, or any text)', () => {
  it('redacts every JWT in the text and keeps the rest byte for byte', () => {
    expect(withoutJwts(`group g has read-only access to api; POST /reset/${JWT}?x=1#y with x-http-method-override: ${JWT} needs write access`))
      .toBe('group g has read-only access to api; POST /reset/[REDACTED]?x=1#y with x-http-method-override: [REDACTED] needs write access');
    expect(withoutJwts('GET /page/eyJub3QiOiJhIGp3dCJ9.eyJ4IjoxfQ.c2ln needs write access')).toBe('GET /page/eyJub3QiOiJhIGp3dCJ9.eyJ4IjoxfQ.c2ln needs write access');
  });

  it('redacts a JWT a reason\'s clip cut short once its payload has begun (text.clip adds "...")', () => {
    for (const cut of [JWT.indexOf('.') + 2, JWT.lastIndexOf('.') - 1, JWT.lastIndexOf('.') + 3]) {
      expect(withoutJwts(`POST /reset/${JWT.slice(0, cut)}... needs write access`), String(cut)).toMatch(/^POST \/reset\/\[REDACTED\]\.* needs write access$/);
    }
  });
});
