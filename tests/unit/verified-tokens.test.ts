import { describe, expect, it } from 'vitest';
import type { Identity } from '../../engine/identity/identity.js';
import { VerifiedTokens } from '../../engine/identity/verified-tokens.js';

const yes = async (): Promise<boolean> => true;

function identity(sub: string, exp: number | undefined): Identity {
  return { sub, iss: 'urn:test', groups: ['g'], agent: false, act: null, claims: exp === undefined ? {} : { exp } };
}

describe('VerifiedTokens', () => {
  it('keeps a token until its exp and not a millisecond longer', () => {
    const tokens = new VerifiedTokens();
    tokens.set('t', identity('a', 1000), yes);
    expect(tokens.get('t', 999_999)?.identity.sub).toBe('a');
    expect(tokens.get('t', 1_000_000)).toBeUndefined();
    // Gone for good once seen expired.
    expect(tokens.get('t', 999_999)).toBeUndefined();
  });

  it('keeps the check that the verifying key still stands, for the caller to ask on a hit', async () => {
    const tokens = new VerifiedTokens();
    let stands = true;
    tokens.set('t', identity('a', 2e9), async () => stands);
    expect(await tokens.get('t', 0)?.stillValid()).toBe(true);
    stands = false;
    expect(await tokens.get('t', 0)?.stillValid()).toBe(false);
  });

  it('never keeps a token without a numeric exp', () => {
    const tokens = new VerifiedTokens();
    tokens.set('t', identity('a', undefined), yes);
    expect(tokens.get('t', 0)).toBeUndefined();
  });

  it('drops the oldest entry when full, and keeps nothing with a size of 0', () => {
    const tokens = new VerifiedTokens(2);
    tokens.set('one', identity('1', 2e9), yes);
    tokens.set('two', identity('2', 2e9), yes);
    tokens.set('three', identity('3', 2e9), yes);
    expect(tokens.get('one', 0)).toBeUndefined();
    expect(tokens.get('two', 0)?.identity.sub).toBe('2');
    expect(tokens.get('three', 0)?.identity.sub).toBe('3');

    const none = new VerifiedTokens(0);
    none.set('one', identity('1', 2e9), yes);
    expect(none.get('one', 0)).toBeUndefined();
  });

  it('hands out an identity no request can change', () => {
    const tokens = new VerifiedTokens();
    tokens.set('t', identity('a', 2e9), yes);
    const shared = tokens.get('t', 0)!.identity;
    expect(() => shared.groups.push('admins')).toThrow(TypeError);
    expect(() => { (shared as { sub: string }).sub = 'root'; }).toThrow(TypeError);
  });
});
