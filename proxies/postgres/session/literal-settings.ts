/**
 * The settings a session's server reads literals under: '01/02/2026' is 2
 * January under DateStyle MDY and 1 February under DMY, a timestamp
 * without a zone is read in TimeZone, and an interval's text follows
 * IntervalStyle. The same SQL under other values does something else, so
 * they are part of what policy sees (`input.postgres.settings`), of what an
 * approver is shown and an approval binds, and of the decision cache key.
 *
 * The server reports each of them at login and whenever one changes
 * (ParameterStatus), however it changed: SET, set_config, a function's
 * own SET, a default of the role or database.
 */
const NAMES = ['DateStyle', 'IntervalStyle', 'TimeZone'] as const;

type Values = Readonly<Partial<Record<(typeof NAMES)[number], string>>>;

export class LiteralSettings {
  /** Replaced, never changed: an action built earlier keeps the values it was decided under. */
  private current: Values = Object.freeze({});
  private currentKey = keyOf(this.current);

  /** A ParameterStatus from the server; other settings are ignored. */
  report(name: string, value: string): void {
    if (!(NAMES as readonly string[]).includes(name) || this.current[name as (typeof NAMES)[number]] === value) return;
    this.current = Object.freeze({ ...this.current, [name]: value });
    this.currentKey = keyOf(this.current);
  }

  get values(): Values {
    return this.current;
  }

  /** The values as a cache key part: equal exactly when the values are. */
  get key(): string {
    return this.currentKey;
  }
}

function keyOf(values: Values): string {
  return NAMES.map((n) => values[n] ?? '').join('\0');
}
