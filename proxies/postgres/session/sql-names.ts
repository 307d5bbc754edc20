/**
 * The cursors and prepared statements a session made with SQL (DECLARE,
 * PREPARE), and the policy bundle revision each was decided under. What
 * one returns was chosen when it was made: a cursor declared over
 * `upper(name)` before a reload that masks `name` returns the values in
 * clear, with no origin a mask plan could follow. So a masked caller's
 * FETCH, MOVE or EXECUTE of one made under another revision is refused.
 *
 * The proxy sees what is sent, not what the server did with it: a DECLARE
 * of a name still open fails, and a CLOSE after an error in its message or
 * transaction never runs. So a name keeps the revision it was first made
 * under for the whole session, whatever follows; after a reload, a cursor
 * or statement of a new name is decided under the policy of now.
 */
import type { StatementFacts } from '../sql/analyse.js';

export class SqlNames {
  /** "portal:name" or "statement:name" → the revision (null: no bundle said). */
  private readonly madeUnder = new Map<string, string | null>();

  /** Follows a statement sent to run, decided under `revision`: DECLARE and PREPARE make a name. */
  replaces(statement: StatementFacts, revision: string | null): void {
    if (statement.kind !== 'declare' && statement.kind !== 'prepare') return;
    const name = statement.session_names?.portal ?? statement.session_names?.statement;
    if (name === undefined || name === '*') return;
    const key = `${statement.kind === 'declare' ? 'portal' : 'statement'}:${name}`;
    if (!this.madeUnder.has(key)) this.madeUnder.set(key, revision);
  }

  /** Why the statements may not read what a name made under another revision returns, or null. */
  decidedUnderOtherPolicy(statements: readonly StatementFacts[], revision: string | null): string | null {
    for (const statement of statements) {
      const [kind, name] = statement.cursor !== undefined ? ['portal', statement.cursor] : ['statement', statement.executes];
      if (name === undefined) continue;
      const key = `${kind}:${name}`;
      if (this.madeUnder.has(key) && this.madeUnder.get(key) !== revision) {
        const what = kind === 'portal' ? `cursor "${name}" was declared` : `prepared statement "${name}" was prepared`;
        return `${what} under a policy that has since been replaced, and returns what was decided then; make it again under another name, or in a new session`;
      }
    }
    return null;
  }
}
