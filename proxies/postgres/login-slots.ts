import { Tally } from './tally.js';

/**
 * Caps the connections that have not logged in yet. Logging in needs no
 * token until the password message, so without a cap one address could
 * hold every descriptor the gateway has, for as long as the login timeout
 * lets each one live. Logged-in sessions are not counted: each one cost a
 * valid token.
 */
export class LoginSlots {
  private readonly all = new Tally();
  private readonly bySource = new Tally();

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerSource: number,
  ) {}

  /** A slot for a new connection (its release, safe to call more than once), or why there is none. */
  take(source: string): { release(): void } | { refused: string } {
    if (this.bySource.get(source) >= this.maxPerSource) {
      return { refused: `too many connections from ${source} are logging in (listeners.postgres.max_logins_per_source is ${this.maxPerSource})` };
    }
    if (this.all.get('') >= this.maxTotal) return { refused: `too many connections are logging in (listeners.postgres.max_logins is ${this.maxTotal})` };
    const releases = [this.all.take(''), this.bySource.take(source)];
    return { release: () => releases.forEach((release) => release()) };
  }
}
