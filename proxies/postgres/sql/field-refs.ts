/**
 * Qualified column references, and what PostgreSQL may read them as.
 *
 * `t.x` is column x of the FROM item t, or, when t has no column x, the
 * call x(t) on t's whole row ("functional notation": `c.row_to_json` is
 * row_to_json(c), `c.text` is the row as text). `x.f` with no FROM item x
 * is field f of column x, or f(x). Such a call has no source column in
 * RowDescription, so its value cannot be masked. The walk records each
 * qualified reference and what each FROM item name is bound to; at the
 * end, a reference is either
 * - proven a column (t is a subquery, CTE or function whose output names
 *   include x: their rows hold only what the walk checked), or
 * - a whole row (t's columns are not all known, so x may be a call on it),
 *   or a column used in an expression (x.f), both derived, or
 * - for a table or view, a name the proxy checks against the catalog
 *   (facts.ts `qualified_columns`), which the parse tree alone cannot tell.
 */

type Json = Record<string, unknown>;

/** The columns of a subquery's or CTE's rows, as far as the tree tells them. */
interface Outputs {
  names: ReadonlySet<string>;
  /**
   * `SELECT *` (or `t.*`) over one table: its columns are outputs too, and
   * only the catalog knows them, so a name outside `names` is checked
   * against that table.
   */
  starTable: string | null;
}

/** What a FROM item name stands for. */
type Binding =
  | { kind: 'table'; name: string }
  /** A subquery or join alias: its outputs, or null when they are not all known. */
  | { kind: 'rows'; columns: Outputs | null }
  /** A CTE, looked up once the whole tree is walked. */
  | { kind: 'cte'; name: string }
  /** A function in FROM: its rows hold only its arguments, which the walk treats as derived. */
  | { kind: 'function' };

export interface FieldRefOutcome {
  /** Column names used inside an expression (`ssn.upper` is upper(ssn)). */
  derived: string[];
  /** Some reference may be a call on a whole row whose columns are not all known. */
  wholeRow: boolean;
  /** "schema.table.column" to check against the catalog. */
  tableColumns: string[];
}

export class FieldRefs {
  private readonly bindings = new Map<string, Binding[]>();
  private readonly ctes = new Map<string, Outputs | null>();
  private readonly refs: string[][] = [];

  /** A ColumnRef's fields; only qualified ones (two names or more) are kept. */
  reference(fields: unknown): void {
    if (!Array.isArray(fields) || fields.length < 2) return;
    const names = fields.map(stringOf);
    if (names.some((n) => n === undefined)) return; // `t.*`: every column, named by RowDescription
    this.refs.push(names as string[]);
  }

  table(rangeVar: Json, schema: string, cte: boolean): void {
    const name = rangeVar.relname as string;
    const key = aliasName(rangeVar.alias) ?? name;
    this.bind(key, cte ? { kind: 'cte', name } : { kind: 'table', name: `${schema}.${name}` });
  }

  subquery(alias: unknown, query: unknown): void {
    const key = aliasName(alias);
    if (key !== undefined) this.bind(key, { kind: 'rows', columns: this.outputs(query, alias) });
  }

  cte(name: string, aliasColumns: unknown, query: unknown): void {
    // Two CTEs of one name (at different levels): which one a reference means is not tracked.
    this.ctes.set(name, this.ctes.has(name) ? null : this.outputs(query, { colnames: aliasColumns }));
  }

  /**
   * A query's outputs under an alias's column list (`AS t(a, b)` renames
   * the first two); null when a name is not known from the tree alone (an
   * unnamed expression: PostgreSQL makes one up), or a `*` stands for
   * anything but one table.
   */
  private outputs(query: unknown, alias: unknown): Outputs | null {
    const colnames = (alias as Json | undefined)?.colnames;
    const given = Array.isArray(colnames) ? colnames.map(stringOf) : [];
    const listed = outputList(query, (name) => this.ctes.has(name));
    if (listed === null) return null;
    if (listed.starTable !== null) {
      // Which columns a `*` puts where is for the catalog: a column list cannot rename them here.
      return given.length > 0 ? null : { names: new Set(listed.names.filter((n): n is string => n !== null)), starTable: listed.starTable };
    }
    const names = listed.names.map((name, i) => (i < given.length ? given[i] : name) ?? null);
    return names.every((n): n is string => n !== null) ? { names: new Set(names), starTable: null } : null;
  }

  function(alias: unknown): void {
    const key = aliasName(alias);
    if (key !== undefined) this.bind(key, { kind: 'function' });
  }

  join(alias: unknown): void {
    const key = aliasName(alias);
    if (key !== undefined) this.bind(key, { kind: 'rows', columns: null });
  }

  resolve(): FieldRefOutcome | undefined {
    if (this.refs.length === 0) return undefined;
    const outcome: FieldRefOutcome = { derived: [], wholeRow: false, tableColumns: [] };
    for (const names of this.refs) {
      const column = names[names.length - 1]!;
      // t.x, s.t.x, d.s.t.x: the FROM item is the name before the column.
      const bound = this.bindings.get(names[names.length - 2]!);
      if (!bound) {
        // x.f (or t.x.f): a column, then a field of it or a call on it.
        outcome.derived.push(names[names.length - 2]!);
        continue;
      }
      for (const binding of bound) {
        if (binding.kind === 'table') outcome.tableColumns.push(`${binding.name}.${column}`);
        const outputs = binding.kind === 'rows' ? binding.columns : binding.kind === 'cte' ? this.ctes.get(binding.name) ?? null : undefined;
        if (outputs === undefined || outputs?.names.has(column)) continue;
        if (outputs?.starTable) outcome.tableColumns.push(`${outputs.starTable}.${column}`);
        else outcome.wholeRow = true;
      }
    }
    return outcome;
  }

  private bind(key: string, binding: Binding): void {
    const list = this.bindings.get(key);
    if (list) list.push(binding);
    else this.bindings.set(key, [binding]);
  }
}

function stringOf(node: unknown): string | undefined {
  const sval = (node as { String?: { sval?: unknown } } | null)?.String?.sval;
  return typeof sval === 'string' ? sval : undefined;
}

function aliasName(alias: unknown): string | undefined {
  const name = (alias as Json | undefined)?.aliasname;
  return typeof name === 'string' ? name : undefined;
}

/**
 * The column names a query's rows have, in order (null where PostgreSQL
 * makes one up), and the one table a `*` in the list stands for; null when
 * a `*` stands for anything else (a join, a CTE, several tables).
 * Data-modifying statements name their RETURNING list.
 */
function outputList(query: unknown, isCte: (name: string) => boolean): { names: (string | null)[]; starTable: string | null } | null {
  const wrapper = query as Json | undefined;
  const type = wrapper ? Object.keys(wrapper)[0] : undefined;
  let body = type ? (wrapper![type] as Json | undefined) : undefined;
  if (!body) return null;
  while (typeof body.op === 'string' && body.op !== 'SETOP_NONE' && body.larg) body = body.larg as Json;
  if (Array.isArray(body.valuesLists)) {
    const first = (body.valuesLists[0] as { List?: { items?: unknown[] } } | undefined)?.List?.items ?? [];
    return { names: first.map((_, i) => `column${i + 1}`), starTable: null };
  }
  const returning = (body.returningClause as Json | undefined)?.exprs ?? body.returningList;
  const list = type === 'SelectStmt' ? body.targetList : returning;
  if (!Array.isArray(list)) return null;
  const names: (string | null)[] = [];
  let starTable: string | null = null;
  for (const item of list) {
    const target = (item as { ResTarget?: Json }).ResTarget;
    const fields = ((target?.val as Json | undefined)?.ColumnRef as Json | undefined)?.fields;
    const last = Array.isArray(fields) ? fields[fields.length - 1] : undefined;
    if (typeof target?.name === 'string') names.push(target.name);
    else if (last !== undefined && 'A_Star' in (last as Json)) {
      starTable = type === 'SelectStmt' ? onlyTable(body, fields as unknown[], isCte) : null;
      if (starTable === null) return null;
    } else names.push(last === undefined ? null : (stringOf(last) ?? null));
  }
  return { names, starTable };
}

/** The table `*` (or `t.*`) stands for when the FROM clause is that one table and nothing else. */
function onlyTable(select: Json, star: unknown[], isCte: (name: string) => boolean): string | null {
  const from = select.fromClause;
  if (select.withClause !== undefined || !Array.isArray(from) || from.length !== 1) return null;
  const table = (from[0] as { RangeVar?: Json }).RangeVar;
  if (typeof table?.relname !== 'string') return null;
  const schema = typeof table.schemaname === 'string' ? table.schemaname : undefined;
  if (schema === undefined && isCte(table.relname)) return null;
  if (star.length === 2 && stringOf(star[0]) !== (aliasName(table.alias) ?? table.relname)) return null;
  if (star.length > 2) return null;
  return `${schema ?? (table.relpersistence === 't' ? 'pg_temp' : 'public')}.${table.relname}`;
}
