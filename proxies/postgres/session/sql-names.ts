/**
 * The cursors and prepared statements a session made with SQL (DECLARE,
 * PREPARE), or through the protocol and let go of by the relay before the
 * server was known to have (Relay.letGo), and the policy bundle revision
 * each was decided under. What
 * one returns was chosen when it was made: a cursor declared over
 * `upper(name)` before a reload that masks `name` returns the values in
 * clear, with no origin a mask plan could follow. So a masked caller's
 * FETCH, MOVE or EXECUTE of one made under another revision is refused.
 *
 * The proxy sees what is sent, not what the server did with it: a DECLARE
 * of a name still open fails, and a CLOSE after an error in its message or
 * transaction never runs. So a name keeps every revision it was made under
 * for the whole session, whatever follows, and is refused while any of
 * them is not the policy of now: a policy reverted to an earlier one has
 * that one's revision again, and the name's first cursor may not be what
 * the server holds. After a reload, a cursor or statement of a new name is
 * decided under the policy of now.
 *
 * Names are kept as the server keys them (server-name.ts): a protocol
 * statement's name of 70 bytes is the one SQL names with its first 63.
 *
 * Names are never let go, so a session that makes a new one per query
 * (ORMs number their server-side cursors) would grow this without end.
 * Past `maxTracked` names, only the revisions later names were made under
 * are kept: nothing changes until the policy is replaced, and after that a
 * masked caller's FETCH, MOVE or EXECUTE of a name the session does not
 * track is refused, since it may be one of them.
 */
import type { StatementFacts } from '../sql/analyse.js';
import { serverName } from './server-name.js';

export class SqlNames {
  /** "portal:name" or "statement:name" → every revision it was made under (null: no bundle said). */
  private readonly madeUnder = new Map<string, Set<string | null>>();
  /** The revisions names past `maxTracked` were made under. */
  private readonly untrackedUnder = new Set<string | null>();

  /** `maxTracked`: listeners.postgres.max_sql_names. */
  constructor(private readonly maxTracked: number) {}

  /** Follows a statement sent to run, decided under `revision`: DECLARE and PREPARE make a name. */
  replaces(statement: StatementFacts, revision: string | null): void {
    if (statement.kind !== 'declare' && statement.kind !== 'prepare') return;
    const name = statement.session_names?.portal ?? statement.session_names?.statement;
    if (name === undefined || name === '*') return;
    this.note(statement.kind === 'declare' ? 'portal' : 'statement', name, revision);
  }

  /**
   * A portal or statement the protocol made, which the relay lets go of
   * before the server is known to have (a Close, a DEALLOCATE, a Parse or
   * Bind taking its name): SQL may still reach it under its name.
   */
  note(kind: 'portal' | 'statement', name: string, revision: string | null): void {
    const key = `${kind}:${serverName(name)}`;
    const revisions = this.madeUnder.get(key);
    if (revisions) revisions.add(revision);
    else if (this.madeUnder.size < this.maxTracked) this.madeUnder.set(key, new Set([revision]));
    else this.untrackedUnder.add(revision);
  }

  /**
   * Why the statements may not read what a name made under another revision
   * returns, or null. SQL FETCH, MOVE and EXECUTE reach names the protocol
   * made too (a Bind's portal, a Parse's statement): `viaProtocol` gives the
   * revision the relay's own entry of that name was decided under, or
   * undefined when it holds none. Either may be what the server holds (a
   * pipelined Parse of a name SQL made is the relay's until the server
   * refuses it), so both are judged.
   */
  decidedUnderOtherPolicy(
    statements: readonly StatementFacts[],
    revision: string | null,
    viaProtocol: (kind: 'portal' | 'statement', name: string) => string | null | undefined,
  ): string | null {
    for (const statement of statements) {
      const [kind, name] = statement.cursor !== undefined ? ['portal' as const, statement.cursor] : ['statement' as const, statement.executes];
      if (name === undefined) continue;
      const key = `${kind}:${serverName(name)}`;
      const what = kind === 'portal' ? `cursor "${name}"` : `prepared statement "${name}"`;
      const protocolRevision = viaProtocol(kind, name);
      if (protocolRevision !== undefined && protocolRevision !== revision) {
        return `${what} was ${kind === 'portal' ? 'bound' : 'prepared'} under a policy that has since been replaced, and returns what was decided then; `
          + `${kind === 'portal' ? 'bind' : 'prepare'} it again`;
      }
      const madeUnder = this.madeUnder.get(key);
      if (madeUnder) {
        if ([...madeUnder].every((made) => made === revision)) continue;
        return `${what} was ${kind === 'portal' ? 'declared' : 'prepared'} under a policy that has since been replaced, and returns what was decided then; `
          + 'make it again under another name, or in a new session';
      }
      // Whatever the relay holds now, the server may hold one of those (the relay's may be a Parse it refuses).
      if ([...this.untrackedUnder].some((made) => made !== revision)) {
        return `this session made more than ${this.maxTracked} cursor and prepared-statement names with SQL (listeners.postgres.max_sql_names), `
          + `and the policy has been replaced since: the gateway cannot tell whether ${what} was made under the old one; open a new session`;
      }
    }
    return null;
  }
}
