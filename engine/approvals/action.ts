import { createHash } from 'node:crypto';
import { canonicalJson } from '../audit/canonical.js';

export interface CanonicalAction {
  /** Canonical JSON (RFC 8785) of {target, action}. */
  text: string;
  /** SHA-256 of text, hex. */
  hash: string;
}

/**
 * The exact action an approval covers. Approvals bind to this hash, so an
 * approval for `DELETE … WHERE id = 1` can never be replayed for
 * `DELETE … WHERE id = 2`, nor against another target. Only the request is
 * hashed: identity, session and clock are checked separately or vary by
 * design between the request and its approved retry.
 */
export function canonicalAction(target: string, action: Record<string, unknown>): CanonicalAction {
  const text = canonicalJson({ target, action });
  return { text, hash: actionHash(text) };
}

/** SHA-256 (hex) of an action's canonical text: what approval records keep as action_hash. */
export function actionHash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
