/**
 * What SQL EXECUTE of a name runs: the facts of each PREPARE of that name
 * the session sent, for a masked caller's EXECUTE to be checked against
 * the masks as the database's catalog is now. PREPARE was checked when it
 * was sent, but another connection's DDL since (a view replaced over a
 * masked column) changes what the statement reads; a Bind is checked
 * again for that (Relay.bindRemasked), and EXECUTE is its SQL twin.
 *
 * As with SqlNames, the proxy sees what is sent, not what ran: a PREPARE
 * of a name already held fails, and a DEALLOCATE after an error never
 * runs. So every PREPARE of a name is kept, and every statement the
 * protocol prepared under it that the relay let go of, and EXECUTE is
 * checked against all of them. Kept to `maxBytes` (their facts as JSON); past it,
 * a name's later PREPAREs are not, and what it runs is no longer known.
 */
import type { StatementFacts } from '../sql/analyse.js';

export class SqlPrepared {
  /** Name → the facts of each PREPARE of it, or null once one was not kept. */
  private readonly runs = new Map<string, StatementFacts[] | null>();
  private bytes = 0;

  /** `maxBytes`: listeners.postgres.max_prepared_statement_bytes, counted apart from the protocol's statements. */
  constructor(private readonly maxBytes: number) {}

  /** Follows a statement sent to run: a PREPARE adds what it runs under its name. */
  replaces(statement: StatementFacts): void {
    const name = statement.kind === 'prepare' ? statement.session_names?.statement : undefined;
    if (name !== undefined && name !== '*') this.note(name, [statement]);
  }

  /**
   * What `name` may run, besides: a statement the protocol prepared, which
   * the relay lets go of before the server is known to have (Close,
   * DEALLOCATE, a Parse of its name).
   */
  note(name: string, statements: readonly StatementFacts[]): void {
    const runs = this.runs.get(name);
    if (runs === null) return;
    const bytes = JSON.stringify(statements).length;
    if (this.bytes + bytes > this.maxBytes) {
      this.runs.set(name, null);
      return;
    }
    this.bytes += bytes;
    if (runs) runs.push(...statements);
    else this.runs.set(name, [...statements]);
  }

  /** The facts of every PREPARE of `name` sent; null when one was not kept, undefined when the session sent none. */
  preparedAs(name: string): readonly StatementFacts[] | null | undefined {
    return this.runs.get(name);
  }
}
