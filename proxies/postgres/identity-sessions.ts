/**
 * Caps the sessions one identity (issuer and subject) holds at once. Each
 * session holds a connection to its target's database server, which has
 * only so many (max_connections, shared by every database on it): without
 * a cap, one agent's valid read-only token could take them all and lock
 * every other caller out of every target on that server.
 */
export class IdentitySessions {
  private readonly held = new Map<string, number>();

  constructor(private readonly maxPerIdentity: number) {}

  /** A slot for one more session of the identity (its release, safe to call more than once), or why there is none. */
  take(identity: { iss: string; sub: string }): { release(): void } | { refused: string } {
    const key = `${identity.iss}\0${identity.sub}`;
    const held = this.held.get(key) ?? 0;
    if (held >= this.maxPerIdentity) {
      return { refused: `${identity.sub} already holds ${held} sessions through this gateway (listeners.postgres.max_sessions_per_identity); close one first` };
    }
    this.held.set(key, held + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        const left = this.held.get(key)! - 1;
        if (left === 0) this.held.delete(key);
        else this.held.set(key, left);
      },
    };
  }
}
