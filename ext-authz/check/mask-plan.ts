/**
 * Whether the ExternalProcessor can apply a decision's mask rules, asked
 * before the allow is audited (AuthorizeHooks.enforce): a plan that cannot
 * be applied (a field path that does not parse, an unknown detector, a hash
 * rule without a key) turns the allow into an audited deny instead of a
 * failed response later.
 */
import { compileFieldMasks, type FieldMaskRule } from '../../engine/masking/json-fields.js';
import { MaskRuleError } from '../../engine/masking/errors.js';
import type { HashKey } from '../../engine/masking/strategies.js';
import type { MaskRule } from '../../engine/policy/decision.js';

/**
 * Answers by the rules' text: a policy gives the same few plans to every
 * request of a caller and target, and compiling one to check it costs about
 * 10 µs (detectors, paths, a hasher) on every allowed Check. The hash key is
 * fixed for the service's life, so the text alone decides the answer.
 */
export class MaskPlanCheck {
  private readonly answers = new Map<string, string | null>();

  constructor(private readonly hashKey: HashKey | undefined, private readonly maxPlans = 256) {}

  problem(rules: readonly MaskRule[]): string | null {
    if (rules.length === 0) return null;
    const text = JSON.stringify(rules);
    const known = this.answers.get(text);
    if (known !== undefined) return known;
    const answer = fieldMaskProblem(rules, this.hashKey);
    if (this.answers.size >= this.maxPlans) this.answers.delete(this.answers.keys().next().value!);
    this.answers.set(text, answer);
    return answer;
  }
}

export function fieldMaskProblem(rules: readonly MaskRule[], hashKey: HashKey | undefined): string | null {
  const fields: FieldMaskRule[] = [];
  for (const rule of rules) {
    if (rule.field === undefined) {
      return `mask rule for column "${rule.column}" cannot apply to an HTTP response; HTTP masks name a "field"`;
    }
    fields.push({ field: rule.field, strategy: rule.strategy, detectors: rule.detectors });
  }
  try {
    compileFieldMasks(fields, { hashKey });
  } catch (err) {
    if (err instanceof MaskRuleError) return `the mask plan cannot be applied: ${err.message}`;
    throw err;
  }
  return null;
}
