/**
 * Verifies the bearer token of a request and turns it into input.identity.
 *
 * The order matters: cheap checks on the raw token first (size, shape, the
 * attacks that live in the header), then the issuer picked by the unverified
 * `iss`, whose own algorithm allowlist, keys, audience and clock skew apply,
 * then jose's signature and claim checks, then the mapping to Identity.
 * Every refusal is a TokenError with one reason and a one-line message.
 */
import { jwtVerify, type JWTPayload } from 'jose';
import type { Logger } from 'pino';
import type { IdentityConfig } from '../config/schema.js';
import type { EngineMetrics } from '../observability/metrics.js';
import { checkIssuedAt, toIdentity } from './claims.js';
import { devIssuerTrust } from './dev-issuer.js';
import { TokenError, type Identity, type TokenVerifier } from './identity.js';
import { preflight, quote } from './preflight.js';
import { toTokenError } from './rejections.js';
import { VerifiedTokens } from './verified-tokens.js';
import type { KeySet } from './key-sets.js';
import { configuredIssuer, type TrustedIssuer } from './trusted-issuer.js';

export interface TokenVerifierOptions {
  /**
   * Least time between two fetches of one issuer's JWKS, whether triggered by
   * an unknown kid or retrying after a failed fetch. Default 30 s.
   */
  jwksCooldownMs?: number;
  /** Rejections are logged at debug level: callers audit them, and a flood of bad tokens must not flood the log. */
  logger?: Logger;
  metrics?: Pick<EngineMetrics, 'recordTokenRejection'>;
  /** How often a jwks_file (or the dev issuer's key file) is looked at for a change. Default 1 s; 0 looks on every token. */
  keyFileRecheckMs?: number;
  /** How many verified tokens to remember until they expire (verified-tokens.ts). Default 10,000; 0 turns it off. */
  maxCachedTokens?: number;
}

/** Claims every token must carry, whatever the issuer's config says: no subject or no expiry, no access. */
const ALWAYS_REQUIRED = ['sub', 'exp'];

/** Defence in depth: the schema allows only these, and an HMAC algorithm would turn a public key into a shared secret. */
const ASYMMETRIC = /^(?:(?:RS|PS|ES)(?:256|384|512)|EdDSA)$/;

/** The key an issuer's key set resolves for a token header now (jose's key sets return the same object while the set is unchanged). */
function currentKey(keys: KeySet, alg: string, kid: string | undefined): Promise<unknown> {
  return Promise.resolve(keys({ alg, ...(kid === undefined ? {} : { kid }) }, { payload: '', signature: '' }));
}

/** Builds the verifier; throws if the identity config is inconsistent (an issuer trusted twice, a non-asymmetric algorithm). */
export function createTokenVerifier(config: IdentityConfig, options: TokenVerifierOptions = {}): TokenVerifier {
  const issuers = trustedIssuers(config, options.jwksCooldownMs ?? 30_000, options.keyFileRecheckMs ?? 1000);
  const { logger, metrics } = options;
  const verified = new VerifiedTokens(options.maxCachedTokens);

  const verify = async (token: string): Promise<Identity> => {
    // A token verified before skips parsing and the signature check, but only
    // while the key that verified it is still the one its issuer's key set
    // gives: rotating or removing the key ends it.
    const known = verified.get(token, Date.now());
    if (known && await known.stillValid()) return known.identity;

    const { alg, kid, iss } = preflight(token, config.max_token_bytes);
    const issuer = issuers.get(iss);
    if (!issuer) throw new TokenError('unknown_issuer', `issuer ${quote(iss)} is not trusted`);
    const { rules } = issuer;
    if (!rules.algorithms.includes(alg as never)) {
      throw new TokenError('algorithm_not_allowed', `alg ${quote(alg)} is not allowed for ${quote(iss)} (allowed: ${rules.algorithms.join(', ')})`);
    }

    let claims: JWTPayload;
    let key: unknown;
    try {
      ({ payload: claims } = await jwtVerify(token, async (header, input) => (key = await issuer.keys(header, input)), {
        algorithms: rules.algorithms,
        issuer: rules.issuer,
        audience: rules.audience,
        clockTolerance: rules.clock_skew_seconds,
        requiredClaims: [...new Set([...ALWAYS_REQUIRED, ...rules.required_claims])],
      }));
    } catch (err) {
      throw toTokenError(err, { iss, kid });
    }
    checkIssuedAt(claims, Math.floor(Date.now() / 1000), rules.clock_skew_seconds);
    const identity = toIdentity(claims, { iss, groupsClaim: rules.groups_claim });
    verified.set(token, identity, () => currentKey(issuer.keys, alg, kid).then((current) => current === key, () => false));
    return identity;
  };

  return {
    async verify(token: string): Promise<Identity> {
      try {
        return await verify(token);
      } catch (err) {
        const rejection = err instanceof TokenError ? err : toTokenError(err, { iss: '', kid: undefined });
        metrics?.recordTokenRejection(rejection.reason);
        logger?.debug({ reason: rejection.reason }, `token refused: ${rejection.message}`);
        throw rejection;
      }
    },
  };
}

function trustedIssuers(config: IdentityConfig, jwksCooldownMs: number, keyFileRecheckMs: number): Map<string, TrustedIssuer> {
  const all = config.issuers.map((issuer) => configuredIssuer(issuer, jwksCooldownMs, keyFileRecheckMs));
  if (config.dev_issuer?.enabled) all.push(devIssuerTrust(config.dev_issuer, keyFileRecheckMs));

  const byIssuer = new Map<string, TrustedIssuer>();
  for (const trusted of all) {
    const { issuer, algorithms } = trusted.rules;
    // Two entries for one iss would make the choice of keys depend on list order.
    if (byIssuer.has(issuer)) throw new Error(`identity: issuer ${quote(issuer)} is trusted twice (issuers or dev_issuer)`);
    const symmetric = algorithms.filter((a) => !ASYMMETRIC.test(a));
    if (symmetric.length > 0) throw new Error(`identity: issuer ${quote(issuer)} allows ${symmetric.join(', ')}; only asymmetric algorithms are accepted`);
    byIssuer.set(issuer, trusted);
  }
  return byIssuer;
}
