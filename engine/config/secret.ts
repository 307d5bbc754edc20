import { inspect } from 'node:util';

const REDACTED = '[secret]';

/**
 * A credential taken from the config. It prints as `[secret]` through every
 * path a value can leak by (String(), JSON, util.inspect, pino), so a secret
 * reaches a log, an error or a response only if code calls reveal().
 */
export class Secret {
  readonly #value: string;

  constructor(
    value: string,
    /** Where it came from, e.g. `env:ORDERS_DB_PASSWORD`; safe to show. */
    readonly origin: string,
  ) {
    this.#value = value;
  }

  reveal(): string {
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
