/**
 * The token verifier against a real HTTP JWKS endpoint: good tokens and how
 * they map to input.identity, key rotation and the refetch rate limit, and
 * one test per attack, each asserting the precise reason.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { TokenError, type TokenRejection, type TokenVerifier } from '../../engine/identity/identity.js';
import { createTokenVerifier } from '../../engine/identity/verifier.js';
import { EngineMetrics } from '../../engine/observability/metrics.js';
import {
  AUDIENCE,
  claims,
  hmacSigner,
  identityConfig,
  ISSUER,
  jwksOf,
  now,
  rawToken,
  startJwksServer,
  testKey,
  tokenFrom,
  type JwksServer,
  type TestKey,
} from '../helpers/tokens.js';

let rsa: TestKey;
let ec: TestKey;
let jwks: JwksServer;
let verifier: TokenVerifier;

beforeAll(async () => {
  rsa = testKey('RS256', 'rsa-1');
  ec = testKey('ES256', 'ec-1');
  jwks = await startJwksServer(jwksOf(rsa, ec));
  verifier = createTokenVerifier(identityConfig({ jwks_uri: jwks.url }), { jwksCooldownMs: 0 });
});
afterAll(() => jwks.close());

async function rejection(token: string, v: TokenVerifier = verifier): Promise<TokenError> {
  const err: unknown = await v.verify(token).then(
    (identity) => new Error(`token was accepted as ${JSON.stringify(identity)}`),
    (e: unknown) => e,
  );
  if (!(err instanceof TokenError)) throw err;
  // One line, no stack: it is shown to the caller and recorded.
  expect(err.message).not.toMatch(/\n/);
  return err;
}

async function expectRefused(token: string, reason: TokenRejection, v?: TokenVerifier): Promise<void> {
  const err = await rejection(token, v);
  expect({ reason: err.reason, message: err.message }).toMatchObject({ reason });
}

describe('good tokens', () => {
  it('accepts an RS256 token and maps it to input.identity', async () => {
    const payload = claims({ jti: 'j-1', tenant: 'acme' });
    const identity = await verifier.verify(tokenFrom(rsa, payload));
    expect(identity).toEqual({ sub: 'agent-1', iss: ISSUER, groups: ['analysts'], agent: false, act: null, claims: payload });
  });

  it('accepts an ES256 token', async () => {
    expect((await verifier.verify(tokenFrom(ec))).sub).toBe('agent-1');
  });

  it('reads groups given as a space-separated string', async () => {
    const identity = await verifier.verify(tokenFrom(rsa, claims({ groups: 'analysts  oncall' })));
    expect(identity.groups).toEqual(['analysts', 'oncall']);
  });

  it('reads groups from the configured claim', async () => {
    const v = createTokenVerifier(identityConfig({ jwks_uri: jwks.url, groups_claim: 'roles' }));
    expect((await v.verify(tokenFrom(rsa, claims({ roles: ['dba'] })))).groups).toEqual(['dba']);
  });

  it('takes agent from the agent claim when nobody is acted for', async () => {
    expect((await verifier.verify(tokenFrom(rsa, claims({ agent: true })))).agent).toBe(true);
  });

  it('puts the actor in sub and the human in act for an RFC 8693 delegation', async () => {
    const identity = await verifier.verify(tokenFrom(rsa, claims({ sub: 'alice', act: { sub: 'agent-1' } })));
    expect(identity).toMatchObject({ sub: 'agent-1', act: { sub: 'alice' }, agent: true, groups: ['analysts'] });
  });

  it('takes the outermost act of a chain as the actor and keeps the chain in claims', async () => {
    const act = { sub: 'agent-2', act: { sub: 'agent-1' } };
    const identity = await verifier.verify(tokenFrom(rsa, claims({ sub: 'alice', act })));
    expect(identity).toMatchObject({ sub: 'agent-2', act: { sub: 'alice' }, agent: true });
    expect(identity.claims['act']).toEqual(act);
  });

  it('accepts an iat in the future within the clock skew', async () => {
    expect((await verifier.verify(tokenFrom(rsa, claims({ iat: now() + 20 })))).sub).toBe('agent-1');
  });
});

describe('refused tokens', () => {
  it.each(['none', 'None', 'NONE'])('alg %s', async (alg) => {
    const err = await rejection(rawToken({ alg, typ: 'JWT' }, claims()));
    expect(err).toMatchObject({ reason: 'algorithm_not_allowed', message: 'unsigned tokens (alg "none") are refused' });
  });

  it('HS256 signed with the RSA public key as HMAC secret (key confusion)', async () => {
    const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' });
    await expectRefused(rawToken({ alg: 'HS256', typ: 'JWT', kid: rsa.kid }, claims(), hmacSigner(pem)), 'algorithm_not_allowed');
  });

  it('an algorithm the issuer does not allow', async () => {
    const rsOnly = createTokenVerifier(identityConfig({ jwks_uri: jwks.url, algorithms: ['RS256'] }));
    await expectRefused(tokenFrom(ec), 'algorithm_not_allowed', rsOnly);
  });

  it('an issuer nobody trusts', async () => {
    await expectRefused(tokenFrom(rsa, claims({ iss: 'https://evil.example.test' })), 'unknown_issuer');
  });

  it('a trusted issuer name signed by someone else\'s key under a trusted kid', async () => {
    const forger = testKey('RS256', rsa.kid);
    await expectRefused(tokenFrom(forger), 'bad_signature');
  });

  it('a payload changed after signing', async () => {
    const [header, , signature] = tokenFrom(rsa).split('.');
    const forged = Buffer.from(JSON.stringify(claims({ groups: ['admins'] }))).toString('base64url');
    await expectRefused(`${header}.${forged}.${signature}`, 'bad_signature');
  });

  it('a wrong audience', async () => {
    await expectRefused(tokenFrom(rsa, claims({ aud: 'another-service' })), 'wrong_audience');
  });

  it('expired beyond the clock skew', async () => {
    await expectRefused(tokenFrom(rsa, claims({ iat: now() - 600, exp: now() - 60 })), 'expired');
  });

  it('nbf in the future beyond the clock skew', async () => {
    await expectRefused(tokenFrom(rsa, claims({ nbf: now() + 120 })), 'not_yet_valid');
  });

  it('iat in the future beyond the clock skew', async () => {
    await expectRefused(tokenFrom(rsa, claims({ iat: now() + 120 })), 'issued_in_future');
  });

  it('an unknown kid, after one refetch of the key set', async () => {
    const before = jwks.fetches;
    await expectRefused(tokenFrom(testKey('ES256', 'kid-nobody-published')), 'unknown_key');
    expect(jwks.fetches).toBe(before + 1);
  });

  it('a kid that looks like a path', async () => {
    await expectRefused(tokenFrom(ec, claims(), { kid: '../../dev/null' }), 'unknown_key');
  });

  it('the kid of a key of another type', async () => {
    await expectRefused(tokenFrom(ec, claims(), { kid: rsa.kid }), 'unknown_key');
  });

  it('a kid that is not a string', async () => {
    await expectRefused(tokenFrom(rsa, claims(), { kid: { $ne: 1 } }), 'malformed');
  });

  it.each(['jwk', 'jku', 'x5u', 'x5c'])('a token that carries its own key in %s', async (header) => {
    const attacker = testKey('RS256', 'attacker');
    const value = { jwk: attacker.jwk, jku: 'https://evil.example.test/jwks', x5u: 'https://evil.example.test/cert', x5c: ['MIIB'] }[header];
    // Signed with a trusted key: the header alone must be enough to refuse it.
    await expectRefused(tokenFrom(rsa, claims(), { [header]: value }), 'embedded_key');
  });

  it('a crit header', async () => {
    await expectRefused(tokenFrom(rsa, claims(), { crit: ['exp'] }), 'unsupported_header');
  });

  it('a token over max_token_bytes, before parsing', async () => {
    await expectRefused(tokenFrom(rsa, claims({ padding: 'x'.repeat(9000) })), 'too_large');
    await expectRefused('x'.repeat(9000), 'too_large');
  });

  it.each(['', 'abc', 'a.b', 'a.b.c.d', '!!!.@@@.###', `${Buffer.from('[1]').toString('base64url')}.e30.`])('malformed %j', async (token) => {
    await expectRefused(token, 'malformed');
  });

  it.each(['sub', 'exp', 'iss'])('a token without %s', async (claim) => {
    await expectRefused(tokenFrom(rsa, claims({ [claim]: undefined })), 'missing_claim');
  });

  it('a token without a claim the issuer requires', async () => {
    const strict = createTokenVerifier(identityConfig({ jwks_uri: jwks.url, required_claims: ['tenant'] }));
    await expectRefused(tokenFrom(rsa), 'missing_claim', strict);
    expect((await strict.verify(tokenFrom(rsa, claims({ tenant: 'acme' })))).sub).toBe('agent-1');
  });

  it.each([42, ['agent-1'], { id: 'agent-1' }, ''])('a sub of %j', async (sub) => {
    await expectRefused(tokenFrom(rsa, claims({ sub })), 'invalid_claim');
  });

  it.each([42, [1, 2], { a: 1 }, [['analysts']]])('groups of %j', async (groups) => {
    await expectRefused(tokenFrom(rsa, claims({ groups })), 'invalid_claim');
  });

  it.each([{ sub: 42 }, 'agent-1', { sub: 'agent-2', act: { name: 'x' } }])('act of %j', async (act) => {
    await expectRefused(tokenFrom(rsa, claims({ act })), 'invalid_claim');
  });

  // Red-team round 26: canonical JSON has no form for a lone surrogate, so no audit event could name the caller.
  it.each([{ sub: 'agent-\ud800' }, { groups: ['analysts', 'ops\udc00'] }, { act: { sub: 'agent-2', act: { sub: '\ud83d' } } }, { tenant: { 'k\ud800': 1 } }])('a lone surrogate in %j', async (extra) => {
    await expectRefused(tokenFrom(rsa, claims(extra)), 'invalid_claim');
  });

  it('a non-boolean agent claim', async () => {
    await expectRefused(tokenFrom(rsa, claims({ agent: 'yes' })), 'invalid_claim');
  });

  it('counts rejections by reason', async () => {
    const metrics = new EngineMetrics();
    const counted = createTokenVerifier(identityConfig({ jwks_uri: jwks.url }), { metrics });
    await expectRefused(tokenFrom(rsa, claims({ aud: 'x' })), 'wrong_audience', counted);
    await expectRefused(tokenFrom(rsa, claims({ aud: 'y' })), 'wrong_audience', counted);
    await expectRefused('abc', 'malformed', counted);
    const text = await metrics.registry.metrics();
    expect(text).toContain('gatehouse_token_rejections_total{reason="wrong_audience"} 2');
    expect(text).toContain('gatehouse_token_rejections_total{reason="malformed"} 1');
  });
});

describe('JWKS rotation and the refetch rate limit', () => {
  let server: JwksServer;
  afterEach(async () => {
    vi.useRealTimers();
    await server.close();
  });

  it('picks up a key published later without a restart', async () => {
    const [k1, k2] = [testKey('ES256', 'k1'), testKey('ES256', 'k2')];
    server = await startJwksServer(jwksOf(k1));
    const v = createTokenVerifier(identityConfig({ jwks_uri: server.url }), { jwksCooldownMs: 0 });

    await expect(v.verify(tokenFrom(k1))).resolves.toMatchObject({ sub: 'agent-1' });
    await expect(v.verify(tokenFrom(k1))).resolves.toMatchObject({ sub: 'agent-1' });
    expect(server.fetches).toBe(1); // cached

    server.keys = jwksOf(k1, k2);
    await expect(v.verify(tokenFrom(k2))).resolves.toMatchObject({ sub: 'agent-1' });
    expect(server.fetches).toBe(2);
  });

  it('refetches for unknown kids at most once per cooldown', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const [k1, k2] = [testKey('ES256', 'k1'), testKey('ES256', 'k2')];
    server = await startJwksServer(jwksOf(k1));
    const v = createTokenVerifier(identityConfig({ jwks_uri: server.url }), { jwksCooldownMs: 60_000 });

    await v.verify(tokenFrom(k1));
    expect(server.fetches).toBe(1);

    server.keys = jwksOf(k1, k2);
    const flood = Array.from({ length: 20 }, (_, i) => tokenFrom(k1, claims(), { kid: `made-up-${i}` }));
    for (const token of [tokenFrom(k2), ...flood]) await expectRefused(token, 'unknown_key', v);
    expect(server.fetches).toBe(1);

    vi.setSystemTime(Date.now() + 60_001);
    // Tokens are made after the clock moved, so they are fresh in its eyes.
    await expect(v.verify(tokenFrom(k2, claims()))).resolves.toMatchObject({ sub: 'agent-1' });
    expect(server.fetches).toBe(2);
  });

  it('refuses with jwks_unavailable when the key set cannot be fetched, and does not retry within the cooldown', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const k1 = testKey('ES256', 'k1');
    server = await startJwksServer(jwksOf(k1));
    server.failWith = 500;
    const v = createTokenVerifier(identityConfig({ jwks_uri: server.url }), { jwksCooldownMs: 60_000 });

    await expectRefused(tokenFrom(k1), 'jwks_unavailable', v);
    await expectRefused(tokenFrom(k1), 'jwks_unavailable', v);
    expect(server.fetches).toBe(1);

    server.failWith = undefined;
    vi.setSystemTime(Date.now() + 60_001);
    await expect(v.verify(tokenFrom(k1, claims()))).resolves.toMatchObject({ sub: 'agent-1' });
    expect(server.fetches).toBe(2);
  });
});

describe('configuration', () => {
  it('refuses to trust one issuer twice', () => {
    const config = identityConfig({ jwks_uri: 'http://127.0.0.1:1/jwks' });
    const [issuer] = config.issuers;
    expect(() => createTokenVerifier({ ...config, issuers: [issuer!, issuer!] })).toThrow(/trusted twice/);
  });

  it('refuses an HMAC algorithm even if a config gets past the schema', () => {
    const config = identityConfig({ jwks_uri: 'http://127.0.0.1:1/jwks', algorithms: ['HS256' as never] });
    expect(() => createTokenVerifier(config)).toThrow(/only asymmetric/);
  });

  it('checks the audience the issuer is configured with', async () => {
    const v = createTokenVerifier(identityConfig({ jwks_uri: jwks.url, audience: ['gw-a', 'gw-b'] }));
    expect((await v.verify(tokenFrom(rsa, claims({ aud: ['other', 'gw-b'] })))).sub).toBe('agent-1');
    await expectRefused(tokenFrom(rsa, claims({ aud: AUDIENCE })), 'wrong_audience', v);
  });
});
