/**
 * The statement facts the Postgres proxy puts in `input.postgres.statements`
 * (design brief, "Input"): what one statement does, as the real PostgreSQL
 * parser reads it. policies/postgres/postgres.rego reads `kind`, `readonly`,
 * `analyze`, `read_write`, `tables[].{schema,name,access}`, `functions`, `program`,
 * `setting`, `value` and `object_type`. `derived_columns`,
 * `qualified_columns` and `renames` are for the proxy's masking, not for
 * policy; `executes` is for both. Optional fields are left out when they do not apply, so the
 * common SELECT carries only the four required ones.
 *
 * Caching: libpg-query's fingerprint ignores constants, and `read_write` and
 * `value` come from constants (`BEGIN READ ONLY` and `BEGIN READ WRITE`, or
 * `SET client_encoding = 'UTF8'` and `= 'SJIS'`, share a fingerprint). A
 * decision cache must key on these facts, not on the fingerprint alone.
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
   * INTO, no FOR UPDATE/SHARE, no data-modifying WITH), SHOW, EXPLAIN of a
   * read, with or without ANALYZE (plain EXPLAIN of a write takes the
   * write's table locks), FETCH, LISTEN, BEGIN / START TRANSACTION
   * without READ WRITE, SAVEPOINT, RELEASE, ROLLBACK TO, COMMIT and ROLLBACK
   * (they end a transaction, but a read-only caller's transaction holds
   * nothing to commit, and a message is decided as a whole; see
   * transactionReadonly in kinds.ts).
   * Everything else, including SET and RESET and statements the analyser
   * does not know, is false: policy decides which settings are harmless.
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
  /**
   * EXPLAIN only: whether it runs its statement (ANALYZE). Plain EXPLAIN
   * (false) lists the statement's tables as read, since it writes nothing.
   */
  analyze?: boolean;
  /** COPY … TO PROGRAM / FROM PROGRAM: the server runs a shell command. */
  program?: true;
  /**
   * The statement asks for read-write transactions, or can turn read-only
   * mode off: BEGIN / START TRANSACTION … READ WRITE, SET TRANSACTION and
   * SET SESSION CHARACTERISTICS AS TRANSACTION … READ WRITE, SET of
   * transaction_read_only or default_transaction_read_only to anything but
   * on/true/yes/1 (including TO DEFAULT and FROM CURRENT), RESET of either,
   * RESET ALL and DISCARD ALL. Such a statement is never `readonly`.
   */
  read_write?: true;
  /**
   * SET, RESET and SHOW: the parameter, lowercase ("search_path", "role",
   * "all" for RESET ALL / SHOW ALL; "transaction", "session characteristics"
   * and "transaction snapshot" for SET TRANSACTION …, SET SESSION
   * CHARACTERISTICS AS TRANSACTION … and SET TRANSACTION SNAPSHOT). Also
   * ALTER ROLE / ALTER DATABASE … SET (kind "alter"): the default it sets
   * for later sessions.
   */
  setting?: string;
  /**
   * SET with a single constant value: that value as a lowercase string
   * (`SET client_encoding = 'UTF8'` → "utf8", `SET extra_float_digits = 3` →
   * "3"). Left out for lists (`SET search_path = a, b`), DEFAULT, FROM
   * CURRENT and other expressions.
   */
  value?: string;
  /**
   * For masking: lowercase names of the columns whose values can reach the
   * client in a result column PostgreSQL does not attribute to a table
   * column in RowDescription (table OID 0), so the proxy cannot mask them
   * by OID; "*" stands for any column of a table (a whole-row reference).
   * Left out when there are none (most statements). Collected, at any query
   * level (subqueries, CTEs, set operations, PREPARE, DECLARE):
   * - columns referenced anywhere inside a select-list or RETURNING entry
   *   that is not a bare column reference: `upper(ssn)`, `ssn || ''`,
   *   `ssn::text`, `(SELECT ssn …)`, `CASE … END`, aggregates;
   * - a whole-row reference, in an expression or bare: `row_to_json(c)`,
   *   `to_jsonb(customers)`, `(c.*)::text`, `count(c.*)`, `SELECT c FROM
   *   customers c` → "*" (and the name, in case it is a column);
   * - every entry of a set operation's branches after the first
   *   (RowDescription describes the first branch only): `SELECT 'x' UNION
   *   SELECT ssn …` → "ssn", `… UNION SELECT * …` → "*";
   * - columns in VALUES lists and in FROM-clause functions (`unnest(ARRAY[c.ssn])`,
   *   XMLTABLE, JSON_TABLE), which turn columns into rows;
   * - merged join columns (`USING (ssn)`; NATURAL joins → "*");
   * - everything COPY … TO STDOUT sends (COPY has no RowDescription): its
   *   column list, "*" for a whole table, or every column its query names;
   * - every value a statement writes into a table, where no mask plan
   *   follows it: the select list of INSERT … SELECT, SELECT … INTO and
   *   CREATE TABLE AS, UPDATE's SET list, ON CONFLICT DO UPDATE SET, and
   *   MERGE's UPDATE SET and INSERT VALUES (also under EXPLAIN ANALYZE,
   *   which runs the write);
   * - and, once any of the above is found, because a subquery or CTE alias
   *   can hide a column (`SELECT upper(x) FROM (SELECT ssn AS x …) s`): the
   *   bare select-list columns of every FROM subquery and CTE, and "*" when
   *   an alias renames columns by position (`AS s(a, b)`, `WITH w(a) AS …`).
   * Bare references (`SELECT ssn`, `c.ssn`, `c.*`, `*`) of the top-level
   * query are not listed: RowDescription names their table and column.
   * Not listed for EXPLAIN without ANALYZE, which returns a plan rather
   * than rows and runs nothing.
   */
  derived_columns?: string[];
  /**
   * For masking: `schema.table.column` for each qualified reference
   * (`c.x`) to a table or view, which the proxy checks is a column of it:
   * if it is not, PostgreSQL reads `c.x` as the call x(c) on the whole row
   * (`c.row_to_json`), which RowDescription gives no source column. Left
   * out when there are none; see sql/field-refs.ts.
   */
  qualified_columns?: string[];
  /**
   * For masking: columns an UPDATE, ON CONFLICT DO UPDATE or MERGE sets
   * from an expression over their own value (`SET notes = translate(notes,
   * …)`). Not derived (the value stays in its column, masked when read),
   * but a mask that reads the value (detectors, partial, hash) may no longer
   * recognise it, and RETURNING or a rolled-back transaction shows it.
   * Sorted, lowercase; left out when there are none.
   */
  rewritten_columns?: string[];
  /**
   * Operators written that are not among pg_catalog's symbols, or are
   * schema-qualified (`OPERATOR(public.###)`), as written: the database may
   * back them with a function of its own. Sorted; left out when none.
   */
  operators?: string[];
  /**
   * Types cast to that are not PostgreSQL's common ones, as written
   * (`2::rt_box`): a cast can run a function the database defines. Sorted;
   * left out when none.
   */
  casts?: string[];
  /**
   * For masking: what ALTER … RENAME or ALTER … SET SCHEMA takes a name
   * from, as `schema`, `schema.table` or `schema.table.column` (an
   * unqualified table in "public"), since mask rules find columns by name.
   * Left out for other statements.
   */
  renames?: string[];
  /**
   * CREATE, ALTER, DROP, COMMENT, GRANT and the like: the type of object,
   * lowercase as PostgreSQL names it ("table", "view", "function",
   * "procedure", "trigger", "matview", "schema", …; see
   * objectType in kinds.ts). Left out when the statement names none.
   */
  object_type?: string;
  /**
   * For the proxy: the prepared statement or cursor (portal) name that
   * PREPARE, DEALLOCATE, DECLARE or CLOSE creates or drops on the server;
   * "*" for DEALLOCATE ALL, CLOSE ALL and DISCARD ALL. Left out otherwise.
   */
  session_names?: { statement?: string; portal?: string };
  /**
   * EXECUTE, and CREATE TABLE … AS EXECUTE: the prepared statement it runs.
   * For masking (a table filled from a prepared statement's rows is out of
   * any mask plan's reach), and for policy.
   */
  executes?: string;
  /** FETCH and MOVE: the cursor they read. For the proxy. */
  cursor?: string;
}

/** Where an unqualified table name is reported (PostgreSQL's default search_path). */
export const defaultSchema = 'public';
