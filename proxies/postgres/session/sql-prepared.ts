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
 * checked against all of them. Kept to `maxBytes` (their facts as JSON, and
 * the names); past it, a name's later PREPAREs are not, and what it runs is
 * no longer known, nor what any name not kept by then runs. Names are kept
 * as the server keys them (server-name.ts).
 */
import type { StatementFacts } from '../sql/analyse.js';
import { serverName } from './server-name.js';

export class SqlPrepared {
  /** Name → the facts of each PREPARE of it, or null once one was not kept. */
  private readonly runs = new Map<string, StatementFacts[] | null>();
  private bytes = 0;
  /** Set once a PREPARE of a name not kept was not kept either: a name not here may be one. */
  private full = false;

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
    const key = serverName(name);
    const runs = this.runs.get(key);
    if (runs === null || (runs === undefined && this.full)) return;
    const bytes = JSON.stringify(statements).length + (runs ? 0 : Buffer.byteLength(key));
    if (this.bytes + bytes > this.maxBytes) {
      // A name kept already costs nothing more to mark; a new one would grow the map past the cap.
      if (runs) this.runs.set(key, null);
      else this.full = true;
      return;
    }
    this.bytes += bytes;
    if (runs) runs.push(...statements);
    else this.runs.set(key, [...statements]);
  }

  /** The facts of every PREPARE of `name` sent; null when one was not kept, undefined when the session sent none. */
  preparedAs(name: string): readonly StatementFacts[] | null | undefined {
    const runs = this.runs.get(serverName(name));
    return runs === undefined && this.full ? null : runs;
  }
}
