/**
 * A verified caller, exactly as policy sees it (input.identity, design brief).
 * `sub` is whoever presents the token and acts; `act` is the human it acts
 * for, when the token says so (RFC 8693; see verifier.ts for the mapping).
 */
export interface Identity {
  sub: string;
  iss: string;
  groups: string[];
  agent: boolean;
  act: { sub: string } | null;
  /**
   * The token's verified claims, unchanged (exp, iat, jti and the whole act
   * chain included), for policies that need more than the fields above.
   */
  claims: Record<string, unknown>;
}

/**
 * Whether the caller is a person, not an agent (agent: true) or a token acting for someone (act). Groups that
 * grant oversight (approving, reading every session or request, administering masks) count only for a person:
 * a delegated token often carries its human's groups, and oversight of agents must not pass to them.
 */
export function isHuman(identity: Pick<Identity, 'agent' | 'act'>): boolean {
  return !identity.agent && identity.act === null;
}

/** Why a token was refused: one short reason a caller can act on, never a stack. */
export type TokenRejection =
  | 'malformed'
  | 'too_large'
  | 'unknown_issuer'
  | 'algorithm_not_allowed'
  /** The token names or carries its own key (jwk, jku, x5u, x5c): never trusted. */
  | 'embedded_key'
  /** A `crit` header: no JWS extension is understood, so none may be required. */
  | 'unsupported_header'
  | 'unknown_key'
  | 'bad_signature'
  | 'wrong_audience'
  | 'expired'
  | 'not_yet_valid'
  | 'issued_in_future'
  | 'missing_claim'
  | 'invalid_claim'
  | 'jwks_unavailable';

export class TokenError extends Error {
  constructor(
    readonly reason: TokenRejection,
    message: string,
  ) {
    super(message);
    this.name = 'TokenError';
  }
}

export interface TokenVerifier {
  /** Resolves to the identity, or rejects with a TokenError. */
  verify(token: string): Promise<Identity>;
}
