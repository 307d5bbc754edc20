import type { Identity } from './identity.js';

/**
 * Tokens this process has verified, kept until they expire. An HTTP agent
 * sends the same bearer token with every request; checking its signature
 * once instead of per request takes the most expensive step off the Check
 * path. Only a token that passed every check is kept, under its exact text,
 * and never past its `exp` (the clock-skew allowance is not extended to it).
 *
 * A hit skips parsing and the signature, but still asks the issuer's key
 * set for the token's key and counts only if it is the very key that
 * verified the token (`stillValid`), so a rotated or removed key ends it.
 */
export interface VerifiedToken {
  identity: Identity;
  /** Whether the issuer's key set still gives the key that verified the token (cheap: jose keeps imported keys). */
  stillValid(): Promise<boolean>;
  expiresAtMs: number;
}

export class VerifiedTokens {
  private readonly entries = new Map<string, VerifiedToken>();

  constructor(private readonly maxEntries = 10_000) {}

  get(token: string, nowMs: number): VerifiedToken | undefined {
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    if (nowMs >= entry.expiresAtMs) {
      this.entries.delete(token);
      return undefined;
    }
    return entry;
  }

  /** `stillValid` is asked on every hit: a hit counts only while it says yes. */
  set(token: string, identity: Identity, stillValid: () => Promise<boolean>): void {
    if (this.maxEntries === 0) return;
    const exp = identity.claims.exp;
    if (typeof exp !== 'number') return;
    if (this.entries.size >= this.maxEntries) {
      // Oldest first: Map keeps insertion order. Expired entries go the same way.
      this.entries.delete(this.entries.keys().next().value!);
    }
    // Shared by every request that presents the token: nothing may change it.
    this.entries.set(token, { identity: freeze(identity), stillValid, expiresAtMs: exp * 1000 });
  }
}

function freeze(identity: Identity): Identity {
  Object.freeze(identity.groups);
  if (identity.act) Object.freeze(identity.act);
  return Object.freeze(identity);
}
