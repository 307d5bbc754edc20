/**
 * A mask rule the gateway cannot enforce: an unknown detector, a hash rule
 * without a key. Rules are compiled before any row is read, so the caller
 * turns this into a deny of the statement, never into unmasked data.
 */
export class MaskRuleError extends Error {
  override name = 'MaskRuleError';
}

/** The rule names detectors this gateway does not have (a typo in policy, or a newer policy). */
export class UnknownDetectorError extends MaskRuleError {
  override name = 'UnknownDetectorError';

  constructor(
    readonly unknown: readonly string[],
    known: readonly string[],
  ) {
    super(`unknown mask detector${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => JSON.stringify(n)).join(', ')} (known: ${known.join(', ')})`);
  }
}
