/**
 * Caps the sessions one identity (issuer and subject) holds at once. Each
 * session holds a connection to its target's database server, which has
 * only so many (max_connections, shared by every database on it): without
 * a cap, one agent's valid read-only token could take them all and lock
 * every other caller out of every target on that server.
 */
import { Tally } from './tally.js';

export class IdentitySessions {
  private readonly held = new Tally();

  constructor(private readonly maxPerIdentity: number) {}

  /** A slot for one more session of the identity (its release, safe to call more than once), or why there is none. */
  take(identity: { iss: string; sub: string }): { release(): void } | { refused: string } {
    const key = `${identity.iss}\0${identity.sub}`;
    const held = this.held.get(key);
    if (held >= this.maxPerIdentity) {
      return { refused: `${identity.sub} already holds ${held} sessions through this gateway (listeners.postgres.max_sessions_per_identity); close one first` };
    }
    return { release: this.held.take(key) };
  }
}
