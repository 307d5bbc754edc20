/**
 * Caps the connections that have not logged in yet. Logging in needs no
 * token until the password message, so without a cap one address could
 * hold every descriptor the gateway has, for as long as the login timeout
 * lets each one live. Logged-in sessions are not counted: each one cost a
 * valid token.
 */
export class LoginSlots {
  private total = 0;
  private readonly bySource = new Map<string, number>();

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerSource: number,
  ) {}

  /** A slot for a new connection (its release, safe to call more than once), or why there is none. */
  take(source: string): { release(): void } | { refused: string } {
    const fromSource = this.bySource.get(source) ?? 0;
    if (fromSource >= this.maxPerSource) {
      return { refused: `too many connections from ${source} are logging in (listeners.postgres.max_logins_per_source is ${this.maxPerSource})` };
    }
    if (this.total >= this.maxTotal) return { refused: `too many connections are logging in (listeners.postgres.max_logins is ${this.maxTotal})` };
    this.total += 1;
    this.bySource.set(source, fromSource + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total -= 1;
        const left = this.bySource.get(source)! - 1;
        if (left === 0) this.bySource.delete(source);
        else this.bySource.set(source, left);
      },
    };
  }
}
