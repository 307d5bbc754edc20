/**
 * Catalog lookups the proxy needs beside the session's own connection:
 * which table column a RowDescription field comes from (table OID and
 * attribute number), what a view reads, what a FunctionCall's OID names,
 * what a table inherits from, and which functions and views run code the
 * database defines. They run on a small pool per target, with the gateway's
 * credentials, so they never interleave with the client's traffic. Answers
 * are cached per session for catalog_cache_ms, and forgotten sooner when the
 * session's own DDL commits (the relay calls forget()), or when the mask
 * plan finds another session's DDL under it (result-masking.ts): a table it
 * has not seen that inherits a masked one, a column numbered past what a
 * masked table had. Being another connection,
 * the catalog sees only what is committed: the relay does not rely on it
 * while the session's own DDL is uncommitted.
 */
import pg from 'pg';

export interface Catalog {
  /**
   * A column as RowDescription names it ("tableOid:attnum"), in the table
   * and in every table that inherits it (partitions, children), whose
   * rows a query of the child returns under the child's OID, and in every
   * table it inherits from (a partitioned parent, a parent made for it),
   * whose rows include the table's under the parent's OID; the named table
   * first. Empty when the named table has no such column.
   */
  columnOrigins(schema: string, table: string, column: string): Promise<ColumnOrigin[]>;
  /**
   * Every column with this name, in any table or view of any schema
   * (PostgreSQL's own too): where a rule naming a column by itself applies.
   */
  columnsNamed(column: string): Promise<ColumnOrigin[]>;
  /** The column names of a table or view, system columns included; null when there is no such relation. */
  columnNames(schema: string, table: string): Promise<ReadonlySet<string> | null>;
  /**
   * "schema.table" of every table a table inherits from (its partitioned
   * parent, its parents' parents), nearest first; empty for a table that
   * inherits nothing, null when there is no such relation. Only answers
   * about relations that exist are kept: one created later is asked again.
   */
  ancestors(schema: string, table: string): Promise<string[] | null>;
  /**
   * The table ("schema.table") and name each column has now, by
   * "tableOid:attnum"; columns that are gone are not in the answer. Not
   * cached: a mask plan asks once per compilation, about the places its
   * columns had before (column-history.ts).
   */
  columnsAt(keys: readonly string[]): Promise<Map<string, { table: string; name: string }>>;
  /**
   * Which database the target is now: the cluster's system identifier and
   * the database's OID, which is what gives OIDs their meaning. The system
   * identifier is "unknown" where the server does not let the gateway read
   * it (some managed services).
   */
  databaseId(): Promise<string>;
  /** "schema.name" of a function, or null. */
  functionName(oid: number): Promise<string | null>;
  /**
   * The base-table columns ("schema.table.column") a view or materialized
   * view reads, through nested views; empty for a table, null when there is
   * no such relation (not kept: one made later is asked about again). A
   * view's result columns carry the view's own OID, so masks on its base
   * columns would not find them.
   */
  viewSources(schema: string, name: string): Promise<string[] | null>;
  /**
   * Code the database holds whose reads no statement shows: functions and
   * procedures made after initdb (whatever their schema) in SQL, a
   * procedural language, or as an `internal` alias of a built-in under
   * another name (`query_to_xml` as `report_xml`), and user aggregates,
   * whose state functions can be any; and the views that call one, through
   * nested views. Extensions' C functions are not counted.
   */
  definedCode(): Promise<DefinedCode>;
  /** Drops every cached answer: the session changed tables or names, and its change is committed. */
  forget(): void;
  /**
   * When the answers given now stop being trusted (Date.now()): all of them
   * are asked again from then, at most listeners.postgres.catalog_cache_ms
   * after the first was, so another connection's DDL (a function defined,
   * a view replaced, a table made again) is seen at most that long after it
   * commits. Mask plans built from them are compiled again then too.
   */
  trustedUntil(): number;
  /** The definition (SELECT …) of a view or materialized view, as the server prints it; null for anything else. */
  viewDefinition(schema: string, name: string): Promise<string | null>;
}

export interface DefinedCode {
  /** "schema.name" of each function. */
  functions: ReadonlySet<string>;
  /** The same functions' bare names: an unqualified call may resolve to any of them. */
  functionNames: ReadonlySet<string>;
  /** "schema.name" of each view that calls one. */
  views: ReadonlySet<string>;
  /** Operators whose function is one of them, bare and "schema.name". */
  operators: ReadonlySet<string>;
  /** Types a cast to runs one of them, bare and "schema.name". */
  castTypes: ReadonlySet<string>;
}

export interface ColumnOrigin {
  /** "tableOid:attnum". */
  key: string;
  /** "schema.table" of the table holding it. */
  table: string;
  /** The highest attribute number of that table, dropped columns included: a column added later is numbered past it. */
  lastAttnum: number;
}

/**
 * The table, its inheritance descendants and its ancestors, recursively
 * (depth 0, then 1, 2 … down and -1, -2 … up); each one's copy of the
 * column is found by name, since a partition's attnum can differ (it may
 * have been created with other columns, then attached).
 */
const COLUMN_ORIGINS = `
WITH RECURSIVE named AS (
    SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relname = $2
), down(rel, depth) AS (
    SELECT oid, 0 FROM named
  UNION
    SELECT i.inhrelid, down.depth + 1 FROM pg_catalog.pg_inherits i JOIN down ON i.inhparent = down.rel
), up(rel, depth) AS (
    SELECT oid, 0 FROM named
  UNION
    SELECT i.inhparent, up.depth - 1 FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.rel
), tree(rel, depth) AS (
    SELECT rel, depth FROM down UNION SELECT rel, depth FROM up WHERE depth < 0
)
SELECT c.oid::text || ':' || a.attnum::text AS key, n.nspname || '.' || c.relname AS table, tree.depth,
       (SELECT max(x.attnum) FROM pg_catalog.pg_attribute x WHERE x.attrelid = c.oid)::int AS last_attnum
  FROM tree
  JOIN pg_catalog.pg_class c ON c.oid = tree.rel
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = tree.rel
 WHERE a.attname = $3 AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY tree.depth <> 0, abs(tree.depth), c.oid`;

/**
 * Objects initdb made (PostgreSQL's own, in pg_catalog and
 * information_schema) have OIDs below FirstNormalObjectId; anything made
 * since, in any schema (a superuser can add to those two), is the
 * database's own.
 */
const FIRST_NORMAL_OID = 16384;

/** PostgreSQL's own views (initdb's) read its catalogs, not the rows of tables: only the database's are returned. */
const VIEW_DEFINITION = `
SELECT pg_catalog.pg_get_viewdef(c.oid) AS definition
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('v', 'm') AND c.oid >= ${FIRST_NORMAL_OID}`;

const COLUMNS_NAMED = `
SELECT c.oid::text || ':' || a.attnum::text AS key, n.nspname || '.' || c.relname AS table,
       (SELECT max(x.attnum) FROM pg_catalog.pg_attribute x WHERE x.attrelid = c.oid)::int AS last_attnum
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE a.attname = $1 AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind NOT IN ('i', 'I', 'c', 't')
 ORDER BY c.oid`;

/** Columns by table OID and attribute number ($1 and $2, side by side), as "tableOid:attnum". */
const COLUMNS_AT = `
SELECT p.rel::int8 || ':' || p.attnum AS key, n.nspname || '.' || c.relname AS table, a.attname AS name
  FROM unnest($1::pg_catalog.oid[], $2::int2[]) AS p(rel, attnum)
  JOIN pg_catalog.pg_attribute a ON a.attrelid = p.rel AND a.attnum = p.attnum AND NOT a.attisdropped
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace`;

const RELATION = `
SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`;

/** The relation (depth 0) and what it inherits from, recursively, through pg_inherits. */
const ANCESTORS = `
WITH RECURSIVE up(rel, depth) AS (
    SELECT c.oid, 0 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relname = $2
  UNION
    SELECT i.inhparent, up.depth + 1 FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.rel
)
SELECT n.nspname || '.' || c.relname AS table, up.depth
  FROM up JOIN pg_catalog.pg_class c ON c.oid = up.rel JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 ORDER BY up.depth, c.oid`;

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


const DEFINED_FUNCTIONS = `
SELECT n.nspname AS schema, p.proname AS name
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_catalog.pg_language l ON l.oid = p.prolang
 WHERE p.oid >= ${FIRST_NORMAL_OID}
   AND (l.lanname <> 'c' OR p.prokind = 'a')`;

const DEFINED_OIDS = DEFINED_FUNCTIONS.replace('SELECT n.nspname AS schema, p.proname AS name', 'SELECT p.oid');

/** Operators and cast target types that run a defined function. */
const DEFINED_OPERATORS = `
SELECT n.nspname AS schema, o.oprname AS name FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
 WHERE o.oprcode IN (${DEFINED_OIDS})`;
const DEFINED_CAST_TYPES = `
SELECT n.nspname AS schema, t.typname AS name FROM pg_catalog.pg_cast c
  JOIN pg_catalog.pg_type t ON t.oid = c.casttarget JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
 WHERE c.castfunc IN (${DEFINED_OIDS})`;

/** A view's rewrite rule depends on each function (or operator) it calls (pg_depend); views over such views call them too. */
const VIEWS_CALLING = `
WITH RECURSIVE defined AS (${DEFINED_OIDS}),
calling(rel) AS (
    SELECT r.ev_class FROM pg_catalog.pg_rewrite r
      JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
     WHERE (d.refclassid = 'pg_catalog.pg_proc'::regclass AND d.refobjid IN (SELECT oid FROM defined))
        OR (d.refclassid = 'pg_catalog.pg_operator'::regclass
            AND d.refobjid IN (SELECT o.oid FROM pg_catalog.pg_operator o WHERE o.oprcode IN (SELECT oid FROM defined)))
  UNION
    SELECT r.ev_class FROM calling
      JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = calling.rel
      JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
     WHERE r.ev_class <> calling.rel
)
SELECT n.nspname AS schema, c.relname AS name
  FROM calling JOIN pg_catalog.pg_class c ON c.oid = calling.rel JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace`;

/**
 * A session's answers: each lookup's cache, and when they all stop being
 * trusted. They expire together, so a plan compiled from several of them is
 * never trusted longer than the oldest.
 */
class Memo {
  private readonly caches: Array<Map<string, unknown>> = [];
  private until = 0;

  constructor(private readonly ttlMs: number) {}

  cache<V>(): Map<string, V> {
    const cache = new Map<string, V>();
    this.caches.push(cache);
    return cache;
  }

  /** Clears every cache when the answers are past their time (or forgotten), and says until when they are trusted now. */
  trustedUntil(): number {
    const now = Date.now();
    if (now >= this.until) {
      for (const cache of this.caches) cache.clear();
      this.until = now + this.ttlMs;
    }
    return this.until;
  }

  forget(): void {
    this.until = 0;
  }
}

/**
 * One lookup per arguments while the session's answers are trusted (Memo):
 * the first call queries, later ones share its answer; a failed one, or one
 * `keep` turns down, is asked again.
 */
function remembered<A extends (string | number)[], V>(
  memo: Memo,
  load: (...args: A) => Promise<V>,
  keep: (answer: V) => boolean = () => true,
): (...args: A) => Promise<V> {
  const known = memo.cache<Promise<V>>();
  return (...args) => {
    memo.trustedUntil();
    const key = args.join('\0');
    const held = known.get(key);
    if (held) return held;
    const answer = load(...args);
    known.set(key, answer);
    // Only this answer is dropped: after an expiry, the key may hold a newer one.
    const drop = () => {
      if (known.get(key) === answer) known.delete(key);
    };
    answer.then((value) => {
      if (!keep(value)) drop();
    }, drop);
    return answer;
  };
}

export class CatalogPool {
  private readonly pool: pg.Pool;

  constructor(config: pg.PoolConfig, private readonly cacheMs: number) {
    // search_path as the sessions have it (client-session.ts): pg_get_viewdef qualifies names by it.
    this.pool = new pg.Pool({ ...config, max: 2, idleTimeoutMillis: 30_000, application_name: 'gatehouse-catalog', options: '-c search_path=public' });
    // An idle client's error must not crash the process; the next query reconnects.
    this.pool.on('error', () => undefined);
  }

  session(): Catalog {
    const memo = new Memo(this.cacheMs);
    const viewSources = remembered(memo, async (schema: string, name: string): Promise<string[] | null> => {
      const { rows } = await this.pool.query<{ column: string }>(VIEW_SOURCES, [schema, name]);
      if (rows.length > 0) return rows.map((row) => row.column);
      // A table, a view that reads no column, or no such relation yet.
      return (await this.pool.query(RELATION, [schema, name])).rows.length > 0 ? [] : null;
    }, (sources) => sources !== null);
    const columnOrigins = remembered(memo, (schema: string, table: string, column: string) =>
      this.pool
        .query<{ key: string; table: string; depth: number; last_attnum: number }>(COLUMN_ORIGINS, [schema, table, column])
        // A child's column of that name, with none in the named table, is not the rule's.
        .then((r) => (r.rows[0]?.depth === 0 ? r.rows.map((row) => ({ key: row.key, table: row.table, lastAttnum: row.last_attnum })) : [])));
    const columnsNamed = remembered(memo, (column: string) =>
      this.pool
        .query<{ key: string; table: string; last_attnum: number }>(COLUMNS_NAMED, [column])
        .then((r) => r.rows.map((row) => ({ key: row.key, table: row.table, lastAttnum: row.last_attnum }))));
    const columnNames = remembered(memo, (schema: string, table: string) =>
      this.pool
        .query<{ attname: string }>(
          `SELECT a.attname FROM pg_catalog.pg_attribute a
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relname = $2 AND NOT a.attisdropped`,
          [schema, table],
        )
        .then((r): ReadonlySet<string> | null => (r.rows.length === 0 ? null : new Set(r.rows.map((row) => row.attname)))));
    // Only answers about a relation that exists are kept: one created later must be asked about again.
    const ancestors = remembered(memo, (schema: string, table: string) =>
      this.pool
        .query<{ table: string; depth: number }>(ANCESTORS, [schema, table])
        .then((r) => (r.rows.length === 0 ? null : r.rows.filter((row) => row.depth > 0).map((row) => row.table))),
    (found) => found !== null);
    const functionName = remembered(memo, (oid: number) =>
      this.pool
        .query<{ name: string }>(
          `SELECT n.nspname || '.' || p.proname AS name FROM pg_catalog.pg_proc p
             JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = $1`,
          [oid],
        )
        .then((r) => r.rows[0]?.name ?? null));
    const definedCode = remembered(memo, async (): Promise<DefinedCode> => {
      type Named = { schema: string; name: string };
      const [functions, views, operators, castTypes] = await Promise.all(
        [DEFINED_FUNCTIONS, VIEWS_CALLING, DEFINED_OPERATORS, DEFINED_CAST_TYPES].map((sql) => this.pool.query<Named>(sql).then((r) => r.rows)),
      );
      const qualified = (rows: Named[]) => rows.map((row) => `${row.schema}.${row.name}`);
      return {
        functions: new Set(qualified(functions!)),
        functionNames: new Set(functions!.map((f) => f.name)),
        views: new Set(qualified(views!)),
        operators: new Set([...qualified(operators!), ...operators!.map((o) => o.name)]),
        castTypes: new Set([...qualified(castTypes!), ...castTypes!.map((t) => t.name)]),
      };
    });
    const columnsAt = async (keys: readonly string[]) => {
      const pairs = keys.map((key) => key.split(':').map(Number) as [number, number]);
      const { rows } = await this.pool.query<{ key: string; table: string; name: string }>(COLUMNS_AT, [pairs.map((p) => p[0]), pairs.map((p) => p[1])]);
      return new Map(rows.map(({ key, table, name }) => [key, { table, name }]));
    };
    const databaseId = remembered(memo, async () => {
      const database = (await this.pool.query<{ oid: string }>('SELECT oid::text AS oid FROM pg_catalog.pg_database WHERE datname = current_database()')).rows[0]!.oid;
      const cluster = await this.pool
        .query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_catalog.pg_control_system()')
        .then((r) => r.rows[0]!.id, (err: unknown) => {
          if ((err as { code?: string }).code === '42501') return 'unknown';
          throw err;
        });
      return `${cluster}/${database}`;
    });
    const viewDefinition = remembered(memo, (schema: string, name: string) =>
      this.pool.query<{ definition: string }>(VIEW_DEFINITION, [schema, name]).then((r) => r.rows[0]?.definition ?? null));
    return {
      viewSources, viewDefinition, columnOrigins, columnsNamed, columnNames, columnsAt, databaseId, ancestors, functionName, definedCode,
      forget: () => memo.forget(),
      trustedUntil: () => memo.trustedUntil(),
    };
  }

  end(): Promise<void> {
    return this.pool.end();
  }
}
