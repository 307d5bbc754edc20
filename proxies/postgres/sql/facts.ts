/**
 * The statement facts the Postgres proxy puts in `input.postgres.statements`
 * (design brief, "Input"): what one statement does, as the real PostgreSQL
 * parser reads it. policies/postgres/postgres.rego reads `kind`, `readonly`,
 * `tables[].{schema,name,access}` and `functions`; the other fields are
 * there for policies that want them.
 */

export type TableAccess = 'read' | 'write';

export interface TableFact {
  /** As written, or "public" when unqualified (see `defaultSchema`); "pg_temp" for an unqualified temporary table. */
  schema: string;
  name: string;
  access: TableAccess;
}

export interface StatementFacts {
  /**
   * Lowercase: select, insert, update, delete, merge, copy, create, drop,
   * alter, truncate, explain, do, call, grant, revoke, lock, set, reset,
   * show, begin, commit, rollback, savepoint, release, rollback_to,
   * prepare_transaction, commit_prepared, rollback_prepared, prepare,
   * execute, declare, fetch, move, close, … (see kinds.ts).
   */
  kind: string;
  /**
   * True only for statements that can change nothing: a plain SELECT (no
   * INTO, no FOR UPDATE/SHARE, no data-modifying WITH), SHOW, plain EXPLAIN,
   * EXPLAIN ANALYZE of a read, FETCH, … Everything else, including
   * statements the analyser does not know, is false.
   */
  readonly: boolean;
  /** Each table once per access; a table both read and written appears twice. CTE names are not tables. */
  tables: TableFact[];
  /**
   * Every function called anywhere in the statement (select list, FROM,
   * WHERE, subqueries, CTEs, ORDER BY, CALL, …), once each, in parse-tree order,
   * as the parser folds them: unquoted names are lowercase,
   * a schema-qualified call keeps its schema ("pg_catalog.set_config").
   */
  functions: string[];
  /** COPY … TO PROGRAM / FROM PROGRAM: the server runs a shell command. */
  program?: true;
  /** SET, RESET and SHOW: the parameter, lowercase ("search_path", "transaction", "all"). */
  setting?: string;
}

/** Where an unqualified table name is reported (PostgreSQL's default search_path). */
export const defaultSchema = 'public';
