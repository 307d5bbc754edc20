/** jose's verification errors, translated into the reasons a caller and the audit log see. */
import { errors } from 'jose';
import { TokenError } from './identity.js';
import { isKeyMismatch } from './key-sets.js';
import { quote } from './preflight.js';

export function toTokenError(err: unknown, context: { iss: string; kid: string | undefined }): TokenError {
  if (err instanceof TokenError) return err;
  if (isKeyMismatch(err)) {
    return context.kid === undefined
      ? new TokenError('unknown_key', `token has no kid and no single key of ${quote(context.iss)} fits it`)
      : new TokenError('unknown_key', `no key with kid ${quote(context.kid)} in the key set of ${quote(context.iss)}`);
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
    return new TokenError('algorithm_not_allowed', 'token algorithm is not allowed for this issuer');
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return new TokenError('bad_signature', 'token signature does not verify');
  if (err instanceof errors.JWTExpired) return new TokenError('expired', 'token has expired');
  if (err instanceof errors.JWTClaimValidationFailed) return claimError(err);
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return new TokenError('malformed', `token is malformed: ${err.message}`);
  // Anything else (a key jose refuses to use, e.g. an RSA key under 2048 bits)
  // still fails closed; the message is jose's, which never quotes the token.
  return new TokenError('bad_signature', `token cannot be verified: ${(err as Error).message?.split('\n')[0] ?? 'unknown error'}`);
}

function claimError(err: InstanceType<typeof errors.JWTClaimValidationFailed>): TokenError {
  if (err.reason === 'missing') return new TokenError('missing_claim', `token has no ${err.claim} claim`);
  if (err.reason !== 'check_failed') return new TokenError('invalid_claim', `token ${err.claim} claim is invalid`);
  switch (err.claim) {
    case 'aud':
      return new TokenError('wrong_audience', 'token is not meant for this gateway (aud)');
    case 'nbf':
      return new TokenError('not_yet_valid', 'token is not valid yet (nbf)');
    case 'iss':
      return new TokenError('unknown_issuer', 'token issuer does not match');
    default:
      return new TokenError('invalid_claim', `token ${err.claim} claim is invalid`);
  }
}
