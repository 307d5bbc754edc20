/**
 * The session's prepared statements (Relay.statements), with what they hold
 * counted. A client can Parse without end under ever new names, each entry
 * keeping its SQL, its facts and its decision for as long as the session
 * lasts: the caps refuse the Parse that would go past them. A Map, so that
 * every way an entry comes and goes (Parse, Close, DEALLOCATE, DISCARD ALL,
 * a Parse the server did not run undone) keeps the count without knowing it.
 */
import type { PreparedStatement } from './statement-state.js';

export interface PreparedStatementLimits {
  /** listeners.postgres.max_prepared_statements: named statements (the unnamed one replaces itself, and is not counted). */
  maxStatements: number;
  /** listeners.postgres.max_prepared_statement_bytes: the SQL and names of all of them, the unnamed one included. */
  maxBytes: number;
}

export class PreparedStatements extends Map<string, PreparedStatement> {
  private named = 0;
  private bytes = 0;

  constructor(private readonly limits: PreparedStatementLimits) {
    super();
  }

  /**
   * Why preparing `sql` as `name` would take the session past a cap (which
   * cap, its value, and what to do), or null. A name already held is
   * replaced: its slot and bytes are counted once.
   */
  overCap(name: string, sql: string): string | null {
    const held = this.get(name);
    if (name !== '' && !held && this.named >= this.limits.maxStatements) {
      return `the session already holds ${this.named} named prepared statements, the most listeners.postgres.max_prepared_statements (${this.limits.maxStatements}) allows; `
        + 'DEALLOCATE or Close statements no longer used (or use the unnamed statement)';
    }
    const bytes = this.bytes - (held ? sizeOf(held) : 0) + sizeOf({ name, sql });
    if (bytes > this.limits.maxBytes) {
      return `the session's prepared statements would hold ${bytes} bytes of SQL and names, over listeners.postgres.max_prepared_statement_bytes (${this.limits.maxBytes}); `
        + 'DEALLOCATE or Close statements no longer used';
    }
    return null;
  }

  override set(name: string, statement: PreparedStatement): this {
    this.delete(name);
    if (name !== '') this.named++;
    this.bytes += sizeOf(statement);
    return super.set(name, statement);
  }

  override delete(name: string): boolean {
    const held = this.get(name);
    if (!held) return false;
    if (name !== '') this.named--;
    this.bytes -= sizeOf(held);
    return super.delete(name);
  }

  override clear(): void {
    this.named = 0;
    this.bytes = 0;
    super.clear();
  }
}

/** A statement's name is as long as the client likes: held too, so counted too. */
function sizeOf(statement: Pick<PreparedStatement, 'name' | 'sql'>): number {
  return Buffer.byteLength(statement.name) + Buffer.byteLength(statement.sql);
}
