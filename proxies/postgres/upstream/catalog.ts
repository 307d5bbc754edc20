/**
 * Catalog lookups the proxy needs beside the session's own connection:
 * which table column a RowDescription field comes from (table OID and
 * attribute number) and what a FunctionCall's OID names. They run on a small
 * pool per target, with the gateway's credentials, so they never interleave
 * with the client's traffic; answers are cached per session, because a
 * session's DDL (or another's) can change them only between sessions in
 * practice, and a stale answer can only mask too much, never too little —
 * a dropped-and-recreated column gets a new attnum, which then misses.
 */
import pg from 'pg';

export interface Catalog {
  /** "tableOid:attnum" of a column, or null when there is no such column. */
  columnKey(schema: string, table: string, column: string): Promise<string | null>;
  /** "schema.name" of a function, or null. */
  functionName(oid: number): Promise<string | null>;
}

export class CatalogPool {
  private readonly pool: pg.Pool;

  constructor(config: pg.PoolConfig) {
    this.pool = new pg.Pool({ ...config, max: 2, idleTimeoutMillis: 30_000, application_name: 'gatehouse-catalog' });
    // An idle client's error must not crash the process; the next query reconnects.
    this.pool.on('error', () => undefined);
  }

  session(): Catalog {
    const columns = new Map<string, Promise<string | null>>();
    const functions = new Map<number, Promise<string | null>>();
    return {
      columnKey: (schema, table, column) => {
        const key = `${schema}\0${table}\0${column}`;
        let known = columns.get(key);
        if (!known) {
          known = this.pool
            .query<{ key: string }>(
              `SELECT c.oid::text || ':' || a.attnum::text AS key
                 FROM pg_catalog.pg_attribute a
                 JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3 AND a.attnum > 0 AND NOT a.attisdropped`,
              [schema, table, column],
            )
            .then((r) => r.rows[0]?.key ?? null);
          known.catch(() => columns.delete(key));
          columns.set(key, known);
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
