/**
 * Keys from local files: a jwks_file issuer rotated by replacing the file,
 * and the dev issuer (its key file, minting, and being trusted only when
 * enabled).
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { IdentityConfig } from '../../engine/config/schema.js';
import { devIssuerWarning, ensureDevIssuerKey, mintDevToken, type DevIssuerConfig } from '../../engine/identity/dev-issuer.js';
import { TokenError, type TokenRejection, type TokenVerifier } from '../../engine/identity/identity.js';
import { createTokenVerifier } from '../../engine/identity/verifier.js';
import { identityConfig, jwksOf, testKey, tokenFrom } from '../helpers/tokens.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-identity-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function reasonOf(v: TokenVerifier, token: string): Promise<TokenRejection | 'accepted'> {
  return v.verify(token).then(
    () => 'accepted' as const,
    (err: unknown) => {
      if (err instanceof TokenError) return err.reason;
      throw err;
    },
  );
}

describe('jwks_file', () => {
  it('rotates keys when the file is replaced, without a restart', async () => {
    const [k1, k2] = [testKey('ES256', 'k1'), testKey('ES256', 'k2')];
    const file = join(dir, 'jwks.json');
    writeFileSync(file, JSON.stringify(jwksOf(k1)));
    // Looked at on every token here; the default is once a second (next test).
    const v = createTokenVerifier(identityConfig({ jwks_file: file }), { keyFileRecheckMs: 0 });

    expect(await reasonOf(v, tokenFrom(k1))).toBe('accepted');
    expect(await reasonOf(v, tokenFrom(k2))).toBe('unknown_key');

    // Atomic replacement, as an operator should do it.
    writeFileSync(`${file}.tmp`, JSON.stringify(jwksOf(k2)));
    renameSync(`${file}.tmp`, file);
    expect(await reasonOf(v, tokenFrom(k2))).toBe('accepted');
    expect(await reasonOf(v, tokenFrom(k1))).toBe('unknown_key'); // a removed key is gone at once

    // Rewritten in place too.
    writeFileSync(file, JSON.stringify(jwksOf(k1, k2)));
    expect(await reasonOf(v, tokenFrom(k1))).toBe('accepted');
  });

  it('looks at the file at most once per keyFileRecheckMs, so a cached token costs no syscall', async () => {
    const [k1, k2] = [testKey('ES256', 'k1'), testKey('ES256', 'k2')];
    const file = join(dir, 'jwks.json');
    writeFileSync(file, JSON.stringify(jwksOf(k1)));
    const v = createTokenVerifier(identityConfig({ jwks_file: file }), { keyFileRecheckMs: 300 });
    const token = tokenFrom(k1);
    expect(await reasonOf(v, token)).toBe('accepted');
    writeFileSync(`${file}.tmp`, JSON.stringify(jwksOf(k2)));
    renameSync(`${file}.tmp`, file);
    // Within the window the file is not looked at: the key set is the one read before.
    expect(await reasonOf(v, token)).toBe('accepted');
    await new Promise((r) => setTimeout(r, 400));
    expect(await reasonOf(v, token)).toBe('unknown_key');
  });

  it('once it has seen the file gone or broken, refuses every token until it is good again, within the recheck window too', async () => {
    const k1 = testKey('ES256', 'k1');
    const file = join(dir, 'jwks.json');
    writeFileSync(file, JSON.stringify(jwksOf(k1)));
    const v = createTokenVerifier(identityConfig({ jwks_file: file }), { keyFileRecheckMs: 300 });
    const token = tokenFrom(k1);
    expect(await reasonOf(v, token)).toBe('accepted');
    await new Promise((r) => setTimeout(r, 400));
    writeFileSync(file, '{"keys": not json');
    expect(await reasonOf(v, token)).toBe('jwks_unavailable');
    // Within the window: the old keys are not used again.
    expect(await reasonOf(v, token)).toBe('jwks_unavailable');
    await new Promise((r) => setTimeout(r, 400));
    rmSync(file);
    expect(await reasonOf(v, token)).toBe('jwks_unavailable');
    expect(await reasonOf(v, token)).toBe('jwks_unavailable');
  });

  it('fails closed while the file is missing or not a key set', async () => {
    const k1 = testKey('ES256', 'k1');
    const file = join(dir, 'jwks.json');
    const v = createTokenVerifier(identityConfig({ jwks_file: file }));
    expect(await reasonOf(v, tokenFrom(k1))).toBe('jwks_unavailable');

    writeFileSync(file, '{"keys": [');
    expect(await reasonOf(v, tokenFrom(k1))).toBe('jwks_unavailable');

    writeFileSync(file, JSON.stringify(jwksOf(k1)));
    expect(await reasonOf(v, tokenFrom(k1))).toBe('accepted');
  });
});

describe('dev issuer', () => {
  const devConfig = (enabled = true): DevIssuerConfig => ({
    enabled,
    key_file: join(dir, 'keys', 'dev-issuer.jwk.json'),
    issuer: 'urn:gatehouse:dev',
    audience: 'gatehouse',
  });
  const identityWith = (dev: DevIssuerConfig): IdentityConfig => ({ issuers: [], max_token_bytes: 8192, dev_issuer: dev });

  it('creates a private ES256 JWK, mode 0600, whose kid is its RFC 7638 thumbprint, once', async () => {
    const { key_file } = devConfig();
    const first = await ensureDevIssuerKey(key_file);
    expect(statSync(key_file).mode & 0o777).toBe(0o600);

    const jwk = JSON.parse(readFileSync(key_file, 'utf8')) as Record<string, string>;
    expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' });
    expect(jwk['d']).toEqual(expect.any(String));
    // RFC 7638 §3.2: the required members in lexicographic order, no whitespace.
    const canonical = JSON.stringify({ crv: jwk['crv'], kty: jwk['kty'], x: jwk['x'], y: jwk['y'] });
    expect(first.kid).toBe(createHash('sha256').update(canonical).digest('base64url'));
    expect(jwk['kid']).toBe(first.kid);

    expect((await ensureDevIssuerKey(key_file)).kid).toBe(first.kid);
  });

  it('refuses a key file others can read', async () => {
    const { key_file } = devConfig();
    await ensureDevIssuerKey(key_file);
    chmodSync(key_file, 0o644);
    await expect(ensureDevIssuerKey(key_file)).rejects.toThrow(/readable by others \(mode 644\); run chmod 600/);
  });

  it('mints tokens the verifier accepts: an agent, a human, and an agent acting for a human', async () => {
    const dev = devConfig();
    const v = createTokenVerifier(identityWith(dev));

    const agent = await v.verify(await mintDevToken(dev, { sub: 'agent-1', groups: ['analysts'], ttlSeconds: 60 }));
    expect(agent).toMatchObject({ sub: 'agent-1', iss: 'urn:gatehouse:dev', groups: ['analysts'], agent: true, act: null });

    const human = await v.verify(await mintDevToken(dev, { sub: 'bob', groups: [], ttlSeconds: 60, agent: false }));
    expect(human).toMatchObject({ sub: 'bob', agent: false, act: null });

    const token = await mintDevToken(dev, { sub: 'agent-1', groups: ['analysts', 'oncall'], act: 'alice', ttlSeconds: 900 });
    const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    expect(payload).toMatchObject({ sub: 'alice', act: { sub: 'agent-1' }, aud: 'gatehouse' });
    expect((payload['exp'] as number) - (payload['iat'] as number)).toBe(900);
    expect(await v.verify(token)).toMatchObject({ sub: 'agent-1', act: { sub: 'alice' }, agent: true, groups: ['analysts', 'oncall'] });
  });

  it('is not trusted unless enabled', async () => {
    const token = await mintDevToken(devConfig(), { sub: 'agent-1', groups: [], ttlSeconds: 60 });
    expect(await reasonOf(createTokenVerifier(identityWith(devConfig(false))), token)).toBe('unknown_issuer');
    expect(await reasonOf(createTokenVerifier({ issuers: [], max_token_bytes: 8192 }), token)).toBe('unknown_issuer');
  });

  it('does not trust a dev token after the key is replaced', async () => {
    const dev = devConfig();
    const v = createTokenVerifier(identityWith(dev), { keyFileRecheckMs: 0 });
    const old = await mintDevToken(dev, { sub: 'agent-1', groups: [], ttlSeconds: 60 });
    expect(await reasonOf(v, old)).toBe('accepted');
    rmSync(dev.key_file);
    await mintDevToken(dev, { sub: 'agent-1', groups: [], ttlSeconds: 60 });
    expect(await reasonOf(v, old)).toBe('unknown_key');
  });

  it('refuses to mint when disabled, or with a bad ttl', async () => {
    await expect(mintDevToken(devConfig(false), { sub: 'a', groups: [], ttlSeconds: 60 })).rejects.toThrow(/not enabled/);
    await expect(mintDevToken(undefined, { sub: 'a', groups: [], ttlSeconds: 60 })).rejects.toThrow(/not enabled/);
    for (const ttlSeconds of [0, -5, 1.5, 86_401]) {
      await expect(mintDevToken(devConfig(), { sub: 'a', groups: [], ttlSeconds })).rejects.toThrow(/ttl must be/);
    }
  });

  it('gives the serve command a warning only when enabled', () => {
    expect(devIssuerWarning(identityWith(devConfig()))).toMatch(/ENABLED.*never enable identity\.dev_issuer in production/);
    expect(devIssuerWarning(identityWith(devConfig(false)))).toBeUndefined();
    expect(devIssuerWarning({ issuers: [], max_token_bytes: 8192 })).toBeUndefined();
  });
});
