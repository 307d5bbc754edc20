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

/** What a FROM item name stands for. */
type Binding =
  | { kind: 'table'; name: string }
  /** A subquery or join alias: its output column names, or null when they are not all known. */
  | { kind: 'rows'; columns: ReadonlySet<string> | null }
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
  private readonly ctes = new Map<string, ReadonlySet<string> | null>();
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
    if (key !== undefined) this.bind(key, { kind: 'rows', columns: renamed(outputNames(query), alias) });
  }

  cte(name: string, aliasColumns: unknown, query: unknown): void {
    // Two CTEs of one name (at different levels): which one a reference means is not tracked.
    this.ctes.set(name, this.ctes.has(name) ? null : renamed(outputNames(query), { colnames: aliasColumns }));
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
        const columns = binding.kind === 'rows' ? binding.columns : binding.kind === 'cte' ? this.ctes.get(binding.name) ?? null : undefined;
        if (columns !== undefined && !columns?.has(column)) outcome.wholeRow = true;
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
 * The column names a query's rows have, in order; null where a name is not
 * known from the tree alone (`*`, an unnamed expression: PostgreSQL makes
 * one up). Data-modifying statements name their RETURNING list.
 */
function outputNames(query: unknown): (string | null)[] {
  const wrapper = query as Json | undefined;
  const type = wrapper ? Object.keys(wrapper)[0] : undefined;
  let body = type ? (wrapper![type] as Json | undefined) : undefined;
  if (!body) return [null];
  while (typeof body.op === 'string' && body.op !== 'SETOP_NONE' && body.larg) body = body.larg as Json;
  if (Array.isArray(body.valuesLists)) {
    const first = (body.valuesLists[0] as { List?: { items?: unknown[] } } | undefined)?.List?.items ?? [];
    return first.map((_, i) => `column${i + 1}`);
  }
  const returning = (body.returningClause as Json | undefined)?.exprs ?? body.returningList;
  const list = type === 'SelectStmt' ? body.targetList : returning;
  if (!Array.isArray(list)) return [null];
  return list.map((item) => {
    const target = (item as { ResTarget?: Json }).ResTarget;
    if (typeof target?.name === 'string') return target.name;
    const fields = ((target?.val as Json | undefined)?.ColumnRef as Json | undefined)?.fields;
    return Array.isArray(fields) ? (stringOf(fields[fields.length - 1]) ?? null) : null;
  });
}

/** Output names under an alias's column list (`AS t(a, b)` renames the first two); null if any is unknown. */
function renamed(names: (string | null)[], alias: unknown): ReadonlySet<string> | null {
  const colnames = (alias as Json | undefined)?.colnames;
  const given = Array.isArray(colnames) ? colnames.map(stringOf) : [];
  const result = names.map((name, i) => (i < given.length ? given[i] : name) ?? null);
  return result.every((n): n is string => n !== null) ? new Set(result) : null;
}
