import type { FastifyRequest } from 'fastify';
import { TokenError, type Identity, type TokenVerifier } from '../engine/identity/identity.js';

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/** The caller of an API route that needs an OIDC token; a missing or bad one is a TokenError (401). */
export async function authenticate(request: FastifyRequest, verifier: TokenVerifier): Promise<Identity> {
  const token = bearerToken(request);
  if (!token) throw new TokenError('malformed', 'send an OIDC token: Authorization: Bearer <token>');
  return verifier.verify(token);
}
