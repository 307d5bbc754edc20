/**
 * Catalog lookups the proxy needs beside the session's own connection:
 * which table column a RowDescription field comes from (table OID and
 * attribute number), what a view reads, and what a FunctionCall's OID
 * names. They run on a small pool per target, with the gateway's
 * credentials, so they never interleave with the client's traffic. Answers
 * are cached per session, because DDL changes them only between sessions
 * in practice. A stale answer lasts until the session ends: a table
 * created to inherit a masked one (a new partition) is masked from the next
 * session on, and so is a masked column dropped and added again (a new
 * attnum, holding none of the dropped values).
 */
import pg from 'pg';

export interface Catalog {
  /**
   * A column as RowDescription names it ("tableOid:attnum"), in the table
   * and in every table that inherits it (partitions, children), whose
   * rows a query of the child returns under the child's OID; the named
   * table first. Empty when the named table has no such column.
   */
  columnOrigins(schema: string, table: string, column: string): Promise<ColumnOrigin[]>;
  /** The column names of a table or view, system columns included; null when there is no such relation. */
  columnNames(schema: string, table: string): Promise<ReadonlySet<string> | null>;
  /** "schema.name" of a function, or null. */
  functionName(oid: number): Promise<string | null>;
  /**
   * The base-table columns ("schema.table.column") a view or materialized
   * view reads, through nested views; empty for a table. A view's result
   * columns carry the view's own OID, so masks on its base columns would
   * not find them.
   */
  viewSources(schema: string, name: string): Promise<string[]>;
}

export interface ColumnOrigin {
  /** "tableOid:attnum". */
  key: string;
  /** "schema.table" of the table holding it. */
  table: string;
}

/**
 * The table and its inheritance descendants, recursively; a child's copy
 * of a column is found by name, since a partition's attnum can differ
 * (it may have been created with other columns, then attached).
 */
const COLUMN_ORIGINS = `
WITH RECURSIVE tree(rel, depth) AS (
    SELECT c.oid, 0 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relname = $2
  UNION
    SELECT i.inhrelid, tree.depth + 1 FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.rel
)
SELECT c.oid::text || ':' || a.attnum::text AS key, n.nspname || '.' || c.relname AS table, tree.depth
  FROM tree
  JOIN pg_catalog.pg_class c ON c.oid = tree.rel
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = tree.rel
 WHERE a.attname = $3 AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY tree.depth, c.oid`;

/** pg_depend records, per view rewrite rule, each column it reads; nested views are followed. */
const VIEW_SOURCES = `
WITH RECURSIVE reads(rel, attnum) AS (
    SELECT d.refobjid, d.refobjsubid
      FROM pg_catalog.pg_rewrite r
      JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
     WHERE r.ev_class = (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                          WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('v', 'm'))
       AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjsubid > 0 AND d.refobjid <> r.ev_class
  UNION
    SELECT d.refobjid, d.refobjsubid
      FROM reads
      JOIN pg_catalog.pg_rewrite r ON r.ev_class = reads.rel
      JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
     WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjsubid > 0 AND d.refobjid <> r.ev_class
)
SELECT n.nspname || '.' || c.relname || '.' || a.attname AS column
  FROM reads
  JOIN pg_catalog.pg_class c ON c.oid = reads.rel AND c.relkind NOT IN ('v', 'm')
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = reads.rel AND a.attnum = reads.attnum`;

export class CatalogPool {
  private readonly pool: pg.Pool;

  constructor(config: pg.PoolConfig) {
    this.pool = new pg.Pool({ ...config, max: 2, idleTimeoutMillis: 30_000, application_name: 'gatehouse-catalog' });
    // An idle client's error must not crash the process; the next query reconnects.
    this.pool.on('error', () => undefined);
  }

  session(): Catalog {
    const columns = new Map<string, Promise<ColumnOrigin[]>>();
    const functions = new Map<number, Promise<string | null>>();
    const views = new Map<string, Promise<string[]>>();
    const relations = new Map<string, Promise<ReadonlySet<string> | null>>();
    return {
      viewSources: (schema, name) => {
        const key = `${schema}\0${name}`;
        let known = views.get(key);
        if (!known) {
          known = this.pool.query<{ column: string }>(VIEW_SOURCES, [schema, name]).then((r) => r.rows.map((row) => row.column));
          known.catch(() => views.delete(key));
          views.set(key, known);
        }
        return known;
      },
      columnOrigins: (schema, table, column) => {
        const key = `${schema}\0${table}\0${column}`;
        let known = columns.get(key);
        if (!known) {
          known = this.pool
            .query<ColumnOrigin & { depth: number }>(COLUMN_ORIGINS, [schema, table, column])
            // A child's column of that name, with none in the named table, is not the rule's.
            .then((r) => (r.rows[0]?.depth === 0 ? r.rows.map(({ key: origin, table: holder }) => ({ key: origin, table: holder })) : []));
          known.catch(() => columns.delete(key));
          columns.set(key, known);
        }
        return known;
      },
      columnNames: (schema, table) => {
        const key = `${schema}\0${table}`;
        let known = relations.get(key);
        if (!known) {
          known = this.pool
            .query<{ attname: string }>(
              `SELECT a.attname FROM pg_catalog.pg_attribute a
                 JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = $1 AND c.relname = $2 AND NOT a.attisdropped`,
              [schema, table],
            )
            .then((r) => (r.rows.length === 0 ? null : new Set(r.rows.map((row) => row.attname))));
          known.catch(() => relations.delete(key));
          relations.set(key, known);
        }
        return known;
      },
      functionName: (oid) => {
        let known = functions.get(oid);
        if (!known) {
          known = this.pool
            .query<{ name: string }>(
              `SELECT n.nspname || '.' || p.proname AS name FROM pg_catalog.pg_proc p
                 JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = $1`,
              [oid],
            )
            .then((r) => r.rows[0]?.name ?? null);
          known.catch(() => functions.delete(oid));
          functions.set(oid, known);
        }
        return known;
      },
    };
  }

  end(): Promise<void> {
    return this.pool.end();
  }
}
