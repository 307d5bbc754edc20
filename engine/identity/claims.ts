/**
 * From a verified claim set to input.identity.
 *
 * Delegation follows RFC 8693 §4.1: a token {sub: "alice", act: {sub:
 * "agent-1"}} is agent-1 acting for alice. Policy asks "who is doing this, and
 * for whom", so the actor becomes identity.sub and the human identity.act:
 * {sub: "agent-1", act: {sub: "alice"}, agent: true}. In a nested chain
 * (act: {sub: "agent-2", act: {sub: "agent-1"}}) the outermost act is the
 * current actor and the nested ones are prior actors; they stay visible in
 * identity.claims.act, which like every claim is passed through unchanged.
 */
import type { JWTPayload } from 'jose';
import { hasLoneSurrogate } from '../audit/canonical.js';
import { TokenError, type Identity } from './identity.js';

export interface ClaimRules {
  iss: string;
  groupsClaim: string;
}

export function toIdentity(claims: JWTPayload, rules: ClaimRules): Identity {
  // JSON's \ud800 escape decodes to a lone surrogate, which has no canonical JSON form: every audit event naming
  // the caller would fail, and its decisions go unrecorded (or, under audit.fail_open, stand unaudited).
  if (holdsLoneSurrogate(claims, 0)) throw new TokenError('invalid_claim', 'a claim holds a lone surrogate (text that is not valid Unicode), which the audit trail cannot record');
  const subject = claims.sub as unknown;
  if (typeof subject !== 'string' || subject === '') throw new TokenError('invalid_claim', 'sub must be a non-empty string');
  const groups = groupsOf(claims[rules.groupsClaim], rules.groupsClaim);

  if (claims['act'] !== undefined) {
    const [actor] = actorChain(claims['act']);
    return { sub: actor!, iss: rules.iss, groups, agent: true, act: { sub: subject }, claims };
  }
  const agent = claims['agent'];
  if (agent !== undefined && typeof agent !== 'boolean') throw new TokenError('invalid_claim', 'agent must be true or false');
  return { sub: subject, iss: rules.iss, groups, agent: agent === true, act: null, claims };
}

/**
 * The earlier actors of a verified identity's act chain (nested act claims, outermost first), whom
 * identity.sub and identity.act do not name: they had a hand in what the caller does now.
 */
export function priorActors(identity: Pick<Identity, 'claims'>): string[] {
  const act = identity.claims['act'];
  return act === undefined ? [] : actorChain(act).slice(1);
}

/** Validates every link of the act chain and returns its actors, the current (outermost) one first. */
function actorChain(act: unknown): string[] {
  const actors: string[] = [];
  for (let link = act, depth = 0; link !== undefined; depth++) {
    if (typeof link !== 'object' || link === null || Array.isArray(link)) {
      throw new TokenError('invalid_claim', `act${'.act'.repeat(depth)} must be an object with a sub`);
    }
    const { sub, act: prior } = link as { sub?: unknown; act?: unknown };
    if (typeof sub !== 'string' || sub === '') {
      throw new TokenError('invalid_claim', `act${'.act'.repeat(depth)}.sub must be a non-empty string`);
    }
    actors.push(sub);
    link = prior;
  }
  return actors;
}

/** Whether a claim's text (a key or a string, at any depth jose parsed) holds a lone surrogate. */
function holdsLoneSurrogate(value: unknown, depth: number): boolean {
  if (typeof value === 'string') return hasLoneSurrogate(value);
  if (typeof value !== 'object' || value === null || depth > 64) return false;
  if (Array.isArray(value)) return value.some((item) => holdsLoneSurrogate(item, depth + 1));
  return Object.entries(value).some(([key, item]) => hasLoneSurrogate(key) || holdsLoneSurrogate(item, depth + 1));
}

/** Groups as an array of strings, or one space-separated string (as OAuth's `scope`). */
function groupsOf(value: unknown, claim: string): string[] {
  if (value === undefined) return [];
  if (typeof value === 'string') return value.split(' ').filter((g) => g !== '');
  if (Array.isArray(value) && value.every((g) => typeof g === 'string')) return [...value];
  throw new TokenError('invalid_claim', `${claim} must be an array of strings or a space-separated string`);
}

/**
 * jose only looks at iat when a maximum token age is set; a token "issued" in
 * the future means a skewed or forging issuer, so it is refused here.
 */
export function checkIssuedAt(claims: JWTPayload, nowSeconds: number, skewSeconds: number): void {
  if (claims.iat !== undefined && claims.iat > nowSeconds + skewSeconds) {
    throw new TokenError('issued_in_future', `token iat is more than ${skewSeconds}s in the future`);
  }
}
