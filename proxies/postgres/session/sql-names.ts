/**
 * The cursors and prepared statements a session made with SQL (DECLARE,
 * PREPARE), and the policy bundle revision each was decided under. What
 * one returns was chosen when it was made: a cursor declared over
 * `upper(name)` before a reload that masks `name` returns the values in
 * clear, with no origin a mask plan could follow. So a masked caller's
 * FETCH, MOVE or EXECUTE of one made under another revision is refused:
 * made again, it is decided under the policy of now.
 */
import type { StatementFacts } from '../sql/analyse.js';

export class SqlNames {
  /** "portal:name" or "statement:name" → the revision (null: no bundle said). */
  private readonly madeUnder = new Map<string, string | null>();

  /** Follows a statement sent to run: DECLARE and PREPARE make a name, CLOSE, DEALLOCATE and DISCARD ALL drop it. */
  replaces(statement: StatementFacts, revision: string | null): void {
    const names = statement.session_names;
    if (!names) return;
    for (const [kind, name] of [['statement', names.statement], ['portal', names.portal]] as const) {
      if (name === undefined) continue;
      if (name === '*') {
        for (const key of this.madeUnder.keys()) if (key.startsWith(`${kind}:`)) this.madeUnder.delete(key);
      } else if (statement.kind === 'declare' || statement.kind === 'prepare') {
        this.madeUnder.set(`${kind}:${name}`, revision);
      } else {
        this.madeUnder.delete(`${kind}:${name}`);
      }
    }
  }

  /** Why the statements may not read what a name made under another revision returns, or null. */
  decidedUnderOtherPolicy(statements: readonly StatementFacts[], revision: string | null): string | null {
    for (const statement of statements) {
      const [kind, name] = statement.cursor !== undefined ? ['portal', statement.cursor] : ['statement', statement.executes];
      if (name === undefined) continue;
      const key = `${kind}:${name}`;
      if (this.madeUnder.has(key) && this.madeUnder.get(key) !== revision) {
        const what = kind === 'portal' ? `cursor "${name}" was declared` : `prepared statement "${name}" was prepared`;
        return `${what} under a policy that has since been replaced, and returns what was decided then; ${kind === 'portal' ? 'close it and declare it' : 'deallocate it and prepare it'} again`;
      }
    }
    return null;
  }
}
