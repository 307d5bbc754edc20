import { randomUUID } from 'node:crypto';
import type { Evaluation } from '../policy/evaluator.js';

/**
 * Decisions remembered per bundle revision, under a key the front end
 * builds from exactly the inputs the decision depends on (for Postgres: the
 * parser's query fingerprint, target, database, role and the caller's
 * groups). The front end vouches for the key; the cache only refuses what
 * could never be reused: approvals (they depend on the store), engine
 * failures, and decisions of another revision.
 */
export class DecisionCache {
  private revision: string | null = null;
  private readonly entries = new Map<string, Evaluation>();

  constructor(private readonly capacity = 10_000) {}

  /** A cached decision with a fresh decision id, or undefined. */
  get(key: string, revision: string | null): Evaluation | undefined {
    if (revision === null || revision !== this.revision) return undefined;
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    return { decision: hit.decision, metadata: { ...hit.metadata, decision_id: randomUUID(), eval_ns: 0 } };
  }

  set(key: string, evaluation: Evaluation): void {
    const { decision, metadata } = evaluation;
    if (decision.action === 'approve' || metadata.failure || metadata.bundle_revision === null) return;
    if (metadata.bundle_revision !== this.revision) {
      this.entries.clear();
      this.revision = metadata.bundle_revision;
    }
    // Oldest first: a Map iterates in insertion order.
    if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, evaluation);
  }

  get size(): number {
    return this.entries.size;
  }
}
