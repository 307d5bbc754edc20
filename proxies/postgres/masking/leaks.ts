/**
 * The ways a statement could get a masked column's values past the mask
 * plan, which rewrites result rows only where RowDescription names the
 * column: each check returns why the statement is refused, or null.
 * What cannot be masked is refused, never passed.
 */
import { defaultSchema } from '../sql/facts.js';
import { analyseSqlSync, SqlAnalysisError, type StatementFacts } from '../sql/analyse.js';
import type { Catalog } from '../upstream/catalog.js';

export interface MaskedColumns {
  /** The rules' columns as written: "column", "table.column" or "schema.table.column". */
  rules: readonly string[];
  /**
   * "schema.table.column": the rules' columns in the tables that inherit the
   * rule's table (partitions, children) or that it inherits, and under the
   * names they have now where they moved (renamed, or their table renamed;
   * column-history.ts).
   */
  inherited: readonly string[];
  /** "schema.table" → a rule naming a column that table no longer has (renamed or dropped since the rule was written). */
  unresolved: ReadonlyMap<string, string>;
  /** The rules' columns (as written) whose mask shows something of the value: detectors, partial or hash. */
  readsValue: readonly string[];
}

/**
 * The checks of one mask plan, with what they need of its rules worked out
 * once, when the plan is compiled, rather than for every statement.
 */
export class LeakChecks {
  /** Masked column names, bare. */
  private readonly names = new Set<string>();
  /** Bare names of the tables they are masked in (several tables can share a column name). */
  private readonly tables = new Set<string>();
  /** The same tables as "schema.table". */
  private readonly qualifiedTables = new Set<string>();
  /** A rule by output name alone masks that name in any table. */
  private readonly anyTable: boolean;
  /** Masked columns as a view's sources name them ("schema.table.column"), and the bare-name rules. */
  private readonly viewSources = new Set<string>();
  private readonly bareNames = new Set<string>();
  /** Bare names of masked columns whose mask reads the value (see MaskedColumns.readsValue). */
  private readonly valueRead: ReadonlySet<string>;
  /** View definition → its facts (viewFacts). */
  private readonly definitions = new Map<string, StatementFacts[] | null>();

  constructor(private readonly masked: MaskedColumns) {
    let anyTable = false;
    // A child's copy of a masked column leaks the same way; only its rule can be renamed away.
    for (const column of [...masked.rules, ...masked.inherited]) {
      const parts = column.split('.');
      this.names.add(parts[parts.length - 1]!);
      if (parts.length === 1) {
        anyTable = true;
        this.bareNames.add(column);
        continue;
      }
      const [schema, table] = qualified(parts);
      this.tables.add(table);
      this.qualifiedTables.add(`${schema}.${table}`);
      this.viewSources.add(qualified(parts).join('.'));
    }
    this.anyTable = anyTable;
    this.valueRead = new Set(masked.readsValue.map((column) => column.slice(column.lastIndexOf('.') + 1)));
  }

  /** Why the statements cannot run masked under these rules, or null. */
  async find(statements: readonly StatementFacts[], catalog: Catalog): Promise<string | null> {
    return findUnresolved(this.masked.unresolved, statements) ?? findRename(this.masked.rules, statements) ?? findUnseenRead(statements)
      ?? this.findLeak(statements) ?? (await this.findViewLeak(statements, catalog)) ?? (await this.findViewDefinitionLeak(statements, catalog))
      ?? (await this.findWholeRowCall(statements, catalog))
      ?? (await findDefinedCode(statements, catalog));
  }

  /**
   * A view's result columns carry the view's own table OID, so a mask on a
   * base column would not find them: a view that reads a masked column is
   * refused (its other columns could still be selected from the base table).
   */
  private async findViewLeak(statements: readonly StatementFacts[], catalog: Catalog): Promise<string | null> {
    for (const statement of statements) {
      for (const table of statement.tables) {
        if (table.access !== 'read') continue;
        // No such relation: the statement fails at the server.
        for (const source of (await catalog.viewSources(table.schema, table.name)) ?? []) {
          if (this.viewSources.has(source) || this.bareNames.has(source.slice(source.lastIndexOf('.') + 1))) {
            return `view ${table.schema}.${table.name} reads masked column ${source}, which masking cannot follow through a view; query ${source.slice(0, source.lastIndexOf('.'))} instead`;
          }
        }
      }
    }
    return null;
  }

  /**
   * A view that returns a whole row (`to_jsonb(c)`, `c::text`) depends on
   * no column of it in pg_depend (PostgreSQL keeps only the column
   * references when a query has both), so findViewLeak cannot see it; nor
   * a read no mask can follow (pg_stats, query_to_xml) inside a view. The
   * view's own definition is read as a statement of the caller's would be,
   * through nested views, and what findUnseenRead and findLeak would refuse
   * in it is refused. PostgreSQL's own views are not asked about (catalog.ts).
   */
  private async findViewDefinitionLeak(statements: readonly StatementFacts[], catalog: Catalog, depth = 0): Promise<string | null> {
    for (const statement of statements) {
      for (const table of statement.tables) {
        if (table.access !== 'read') continue;
        const definition = await catalog.viewDefinition(table.schema, table.name);
        if (definition === null) continue;
        const name = `${table.schema}.${table.name}`;
        const facts = this.viewFacts(definition);
        if (facts === null) return `view ${name} could not be read by the gateway's parser, so what it returns cannot be followed by masking`;
        if (depth >= MAX_VIEW_NESTING) return `view ${name} nests views more than ${MAX_VIEW_NESTING} deep, further than masking follows`;
        const why = findUnseenRead(facts) ?? this.findLeak(facts) ?? (await this.findViewDefinitionLeak(facts, catalog, depth + 1));
        if (why) return `view ${name}: ${why}`;
      }
    }
    return null;
  }

  /** A view definition's statement facts (null when it cannot be parsed), kept for the plan's life: views are read again and again. */
  private viewFacts(definition: string): StatementFacts[] | null {
    let facts = this.definitions.get(definition);
    if (facts === undefined) {
      try {
        facts = analyseSqlSync(definition);
      } catch (err) {
        if (!(err instanceof SqlAnalysisError)) throw err;
        facts = null;
      }
      if (this.definitions.size >= MAX_DEFINITIONS) this.definitions.clear();
      this.definitions.set(definition, facts);
    }
    return facts;
  }

  /**
   * PostgreSQL names a result column's table and attribute only when the
   * column is the table column itself (through subqueries and CTEs; not
   * through views, see findViewLeak, nor set operations).
   * An expression over a masked column (`upper(ssn)`, `row_to_json(c)`), or a
   * COPY of a masked table, returns the value where no plan can find it; a
   * write that copies a masked column into a table (INSERT … SELECT ssn,
   * UPDATE … SET note = ssn, CREATE TABLE AS) puts it where no plan follows;
   * so does CREATE TABLE … AS EXECUTE, whose columns are a prepared
   * statement's: refused whatever they are.
   */
  private findLeak(statements: readonly StatementFacts[]): string | null {
    const { names: masked, tables: maskedTables, anyTable } = this;
    for (const statement of statements) {
      const reads = statement.tables.filter((t) => t.access === 'read' && (anyTable || maskedTables.has(t.name)));
      const written = statement.tables.filter((t) => t.access === 'write').map((t) => `${t.schema}.${t.name}`);
      // The rows of a prepared statement: the analyser never sees which columns they hold.
      if (statement.executes !== undefined && written.length > 0) {
        return `${verb(statement)} would write the rows of prepared statement ${statement.executes} into ${written.join(', ')}, where masked columns are not masked; write CREATE TABLE … AS SELECT, which the gateway can check`;
      }
      const rewritten = statement.rewritten_columns?.find((name) => this.valueRead.has(name));
      if (rewritten !== undefined) {
        return `${verb(statement)} would rewrite masked column ${rewritten} from its own value, which its mask (detectors, partial or hash) reads and might then not recognise; set it to a new value, or from itself unchanged`;
      }
      for (const name of statement.derived_columns ?? []) {
        // COPY sends rows without a RowDescription: all it sends is derived (walk.ts).
        if (statement.kind === 'copy' && ((name === '*' && reads.length > 0) || masked.has(name))) {
          return `COPY would send ${name === '*' ? `whole rows of ${reads.map((t) => t.name).join(', ')}` : `masked column ${name}`} unmasked (COPY rows are not masked); SELECT ${name === '*' ? 'them' : 'it'} instead`;
        }
        if (name === '*' && reads.length > 0) {
          if (written.length > 0) return `${verb(statement)} would write whole rows of ${reads.map((t) => t.name).join(', ')} into ${written.join(', ')}, masked columns unmasked`;
          return `an expression over a whole row of ${reads.map((t) => t.name).join(', ')} would return masked columns unmasked; select the columns themselves`;
        }
        if (masked.has(name)) {
          if (written.length > 0) return `${verb(statement)} would write masked column ${name} into ${written.join(', ')}, where it is not masked`;
          return `an expression over masked column ${name} would return it unmasked; select the column itself to get it masked`;
        }
      }
    }
    return null;
  }

  /**
   * `c.row_to_json`, where c is a masked table with no column row_to_json:
   * PostgreSQL calls row_to_json(c) on the whole row, whose result has no
   * source column to mask (sql/field-refs.ts). Only the catalog knows the
   * table's columns.
   */
  private async findWholeRowCall(statements: readonly StatementFacts[], catalog: Catalog): Promise<string | null> {
    for (const statement of statements) {
      for (const reference of statement.qualified_columns ?? []) {
        const dot = reference.lastIndexOf('.');
        const table = reference.slice(0, dot);
        if (!this.anyTable && !this.qualifiedTables.has(table)) continue;
        const [schema, name] = [table.slice(0, table.indexOf('.')), table.slice(table.indexOf('.') + 1)];
        const names = await catalog.columnNames(schema, name);
        const column = reference.slice(dot + 1);
        if (names && !names.has(column)) {
          return `${column} is not a column of ${table}: PostgreSQL would read ${name}.${column} as ${column}() called on the whole row, which masking cannot follow`;
        }
      }
    }
    return null;
  }
}

/**
 * A function the database defines in SQL or a procedural language reads
 * what its body says, unseen: `SELECT * FROM all_customers()` returns
 * masked columns with no source table (tableOID 0), and a scalar function,
 * a RAISE or a write inside can carry them anywhere. So can a view that
 * calls one, and an operator or a cast backed by one. What masking cannot
 * follow is refused: callers with column masks call no such code (a group
 * exempt from the target's masks can).
 */
async function findDefinedCode(statements: readonly StatementFacts[], catalog: Catalog): Promise<string | null> {
  const calls = statements.flatMap((s) => s.functions);
  const reads = statements.flatMap((s) => s.tables.filter((t) => t.access === 'read'));
  if (calls.length === 0 && reads.length === 0 && !statements.some((s) => s.operators || s.casts)) return null;
  const defined = await catalog.definedCode();
  // Names as written: "schema.name", or a bare name (which may hold a quoted dot) that resolves to any schema's.
  const call = calls.find((name) => defined.functions.has(name) || defined.functionNames.has(name)
    || (!name.startsWith('pg_catalog.') && defined.functionNames.has(name.slice(name.lastIndexOf('.') + 1))));
  if (call !== undefined) return `function ${call} is defined in the database: what it reads and returns cannot be followed by masking`;
  const view = reads.find((t) => defined.views.has(`${t.schema}.${t.name}`));
  if (view !== undefined) return `view ${view.schema}.${view.name} calls a function defined in the database, whose reads masking cannot follow`;
  const operator = statements.flatMap((s) => s.operators ?? []).find((name) => defined.operators.has(name));
  if (operator !== undefined) return `operator ${operator} runs a function defined in the database, whose reads masking cannot follow`;
  const cast = statements.flatMap((s) => s.casts ?? []).find((name) => defined.castTypes.has(name));
  if (cast !== undefined) return `a cast to ${cast} runs a function defined in the database, whose reads masking cannot follow`;
  return null;
}

/**
 * A rule whose column is gone from its table (renamed or dropped outside
 * the gateway) would mask nothing: the column could be read under its new
 * name, or returned by a write's RETURNING. Statements on that table are
 * refused until the rule or the schema is fixed.
 */
function findUnresolved(unresolved: ReadonlyMap<string, string>, statements: readonly StatementFacts[]): string | null {
  if (unresolved.size === 0) return null;
  for (const statement of statements) {
    for (const table of statement.tables) {
      const rule = unresolved.get(`${table.schema}.${table.name}`);
      if (rule !== undefined) {
        return `mask rule ${rule} names no column of ${table.schema}.${table.name} (renamed or dropped?): statements on the table are refused until the rule or the schema is fixed`;
      }
    }
  }
  return null;

}

/**
 * Renaming a masked column, its table or its schema (or moving the table
 * to another schema) would leave the rule naming nothing, for every caller;
 * making the table a child (INHERIT, ATTACH PARTITION) would show its rows
 * through the parent, under the parent's OID.
 */
function findRename(columns: readonly string[], statements: readonly StatementFacts[]): string | null {
  for (const statement of statements) {
    for (const renamed of statement.renames ?? []) {
      const rule = columns.find((column) => renameBreaks(renamed, column));
      if (rule !== undefined) return `ALTER would take ${renamed} out of the reach of mask rule ${rule}, which finds the column by its table's name (a rename, a schema move, or its rows read through a parent table)`;
    }
  }
  return null;
}

function renameBreaks(renamed: string, rule: string): boolean {
  const parts = rule.split('.');
  // A rule by output name alone masks a column of that name in any table.
  if (parts.length === 1) return renamed.split('.').length === 3 && renamed.endsWith(`.${rule}`);
  const name = qualified(parts).join('.');
  return name === renamed || name.startsWith(`${renamed}.`);
}

/** Views within views followed by findViewDefinitionLeak; pg_depend (findViewLeak) follows any depth. */
const MAX_VIEW_NESTING = 16;
/** View definitions a plan keeps parsed. */
const MAX_DEFINITIONS = 256;

/**
 * Catalog views with values of table columns in them: the planner's most
 * common values and histogram bounds, and the SQL other sessions ran (every
 * agent logs in as the same role, so each sees the others' literals).
 */
const COLUMN_SAMPLES = new Set(['pg_stats', 'pg_stats_ext', 'pg_stats_ext_exprs', 'pg_statistic', 'pg_statistic_ext_data']);
const QUERY_TEXTS = new Set(['pg_stat_activity', 'pg_stat_statements']);

/** Functions that read what a string names (a query, a table, a schema, a cursor, another database). */
const STRING_READERS = new Set([
  'query_to_xml', 'query_to_xml_and_xmlschema', 'table_to_xml', 'table_to_xml_and_xmlschema',
  'schema_to_xml', 'schema_to_xml_and_xmlschema', 'database_to_xml', 'database_to_xml_and_xmlschema',
  'cursor_to_xml', 'ts_stat', 'ts_rewrite', 'dblink', 'dblink_fetch', 'dblink_get_result',
  // Extensions: tablefunc runs the SQL or reads the table it is given; xml2's xpath_table builds SQL from names.
  'crosstab', 'crosstab2', 'crosstab3', 'crosstab4', 'crosstab_hash', 'connectby', 'xpath_table',
]);

/**
 * Reads the facts cannot follow to a table: the statistics views hold
 * values of every analysed column (pg_stats' histogram_bounds lists a
 * small table's SSNs), and the string readers run SQL the analyser never
 * sees. Refused whatever table they would reach.
 */
function findUnseenRead(statements: readonly StatementFacts[]): string | null {
  for (const statement of statements) {
    const samples = statement.tables.find((t) => t.access === 'read' && COLUMN_SAMPLES.has(t.name) && (t.schema === 'pg_catalog' || t.schema === defaultSchema));
    if (samples) return `${samples.name} holds sample values of table columns, masked ones included, which masking cannot follow`;
    const texts = statement.tables.find((t) => t.access === 'read' && QUERY_TEXTS.has(t.name));
    if (texts) return `${texts.name} shows the SQL other sessions ran, with the values they wrote, which masking cannot follow`;
    const activity = statement.functions.find((f) => /^(pg_catalog\.)?pg_stat_(get_activity|get_backend_activity|statements)$/i.test(f));
    if (activity) return `function ${activity} shows the SQL other sessions ran, with the values they wrote, which masking cannot follow`;
    const reader = statement.functions.find((f) => STRING_READERS.has(f.slice(f.lastIndexOf('.') + 1).toLowerCase()));
    if (reader) return `function ${reader} reads what a string names, which masking cannot follow`;
  }
  return null;
}



function verb(statement: StatementFacts): string {
  if (statement.kind === 'explain') return 'EXPLAIN ANALYZE';
  // A SELECT writes through INTO or a data-modifying WITH.
  return statement.kind === 'select' ? 'the statement' : statement.kind.toUpperCase().replaceAll('_', ' ');
}

/** A rule's `table.column` or `schema.table.column`, as [schema, table, column]. */
export function qualified(parts: readonly string[]): [string, string, string] {
  return parts.length === 2 ? ['public', parts[0]!, parts[1]!] : [parts[0]!, parts[1]!, parts.slice(2).join('.')];
}
