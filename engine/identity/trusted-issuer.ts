/** An issuer the verifier trusts: the rules its tokens must meet and where its keys come from. */
import type { IssuerConfig } from '../config/schema.js';
import { fileKeySet, remoteKeySet, type KeySet } from './key-sets.js';

export type IssuerRules = Omit<IssuerConfig, 'jwks_uri' | 'jwks_file'>;

export interface TrustedIssuer {
  rules: IssuerRules;
  keys: KeySet;
}

export function configuredIssuer(config: IssuerConfig, jwksCooldownMs: number, keyFileRecheckMs = 0): TrustedIssuer {
  const { jwks_uri, jwks_file, ...rules } = config;
  if (jwks_uri !== undefined) return { rules, keys: remoteKeySet(jwks_uri, jwksCooldownMs) };
  if (jwks_file !== undefined) return { rules, keys: fileKeySet(jwks_file, undefined, keyFileRecheckMs) };
  // The schema requires exactly one of the two; this guards hand-built configs.
  throw new Error(`identity issuer ${config.issuer}: give exactly one of jwks_uri or jwks_file`);
}
