import { randomInt } from 'node:crypto';

/** What a CancelRequest reaches: the session that handed out the key. */
export interface Cancellable {
  cancel(): void;
}

/**
 * Gatehouse's own BackendKeyData: random process ids and secrets, so a
 * client learns nothing about the upstream server's keys and one client
 * cannot cancel another's query by guessing. Each session maps its key to
 * the upstream key it holds.
 */
export class CancelKeys {
  private readonly sessions = new Map<string, Cancellable>();

  issue(session: Cancellable): { processId: number; secretKey: number; release(): void } {
    let processId: number;
    let secretKey: number;
    let key: string;
    do {
      processId = randomInt(1, 2 ** 31 - 1);
      secretKey = randomInt(-(2 ** 31), 2 ** 31 - 1);
      key = `${processId}:${secretKey}`;
    } while (this.sessions.has(key));
    this.sessions.set(key, session);
    return { processId, secretKey, release: () => this.sessions.delete(key) };
  }

  /** True when the key belonged to a live session (the protocol gives the client no answer either way). */
  cancel(processId: number, secretKey: Buffer): boolean {
    if (secretKey.length !== 4) return false;
    const session = this.sessions.get(`${processId}:${secretKey.readInt32BE(0)}`);
    session?.cancel();
    return session !== undefined;
  }
}
