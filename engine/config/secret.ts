import { inspect } from 'node:util';

const REDACTED = '[secret]';

/**
 * A credential taken from the config. It prints as `[secret]` through every
 * path a value can leak by (String(), JSON, util.inspect, pino), so a secret
 * reaches a log, an error or a response only if code calls reveal().
 */
export class Secret {
  readonly #value: string;
  /** Why the reference could not be resolved, for a secret whose resolution was deferred. */
  readonly #problem: string | undefined;

  constructor(
    value: string,
    /** Where it came from, e.g. `env:ORDERS_DB_PASSWORD`; safe to show. */
    readonly origin: string,
    problem?: string,
  ) {
    this.#value = value;
    this.#problem = problem;
  }

  /**
   * A secret that a command reading the config does not have, e.g. a
   * target's password in the terminal where an operator runs `gatehouse
   * audit verify`. It fails only if some code actually needs it.
   */
  static unresolved(problem: string): Secret {
    return new Secret('', 'unresolved', problem);
  }

  reveal(): string {
    if (this.#problem !== undefined) throw new UnresolvedSecretError(this.#problem);
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `Secret(${this.origin})`;
  }
}

/** A deferred secret was needed after all; the message names the reference, never a value. */
export class UnresolvedSecretError extends Error {
  constructor(problem: string) {
    super(`a secret this command needs is missing: ${problem}`);
    this.name = 'UnresolvedSecretError';
  }
}
