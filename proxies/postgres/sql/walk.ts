/**
 * One pass over a libpg-query parse tree (the JSON form of PostgreSQL's raw
 * parse tree) collecting what a statement touches: tables with their access,
 * functions called, and whether anything inside modifies data.
 *
 * The walk is generic: it visits every node, so a function call or a
 * data-modifying statement is found wherever it sits (select list, WHERE,
 * subqueries, CTEs, ORDER BY, VALUES, ON CONFLICT, CALL …) without listing
 * positions. Only the places where a table is *written* are named
 * (WRITE_FIELDS); every other table reference is a read.
 *
 * Shape of the tree: a `Node`-typed field holds a wrapper with one key, the
 * node type (`{"RangeVar": {...}}`); a field of a fixed struct type holds the
 * struct bare (`DeleteStmt.relation` is a RangeVar body). Field names are
 * lowerCamel and node types UpperCamel, which tells the two apart.
 *
 * The walk uses an explicit stack, not recursion, so a deeply nested tree
 * cannot overflow the JavaScript stack.
 */
import { defaultSchema, type TableAccess, type TableFact } from './facts.js';

export interface TreeFacts {
  tables: TableFact[];
  functions: string[];
  /** An INSERT, UPDATE, DELETE or MERGE anywhere in the tree (e.g. inside WITH, PREPARE or COPY (…) TO). */
  modifies: boolean;
  /** SELECT … INTO somewhere (the leftmost SELECT of a set operation carries it). */
  into: boolean;
  /** FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE somewhere. */
  locks: boolean;
}

type Json = Record<string, unknown>;

/** Statements that modify rows, wherever they appear. */
const MODIFYING = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/** Per node type, the fields whose table is written (created, altered, dropped, filled, emptied). */
const WRITE_FIELDS: Readonly<Record<string, readonly string[]>> = {
  InsertStmt: ['relation'],
  UpdateStmt: ['relation'],
  DeleteStmt: ['relation'],
  MergeStmt: ['relation'],
  CreateTableAsStmt: ['into'],
  CreateStmt: ['relation'],
  CreateForeignTableStmt: ['base'],
  ViewStmt: ['view'],
  CreateSeqStmt: ['sequence'],
  AlterSeqStmt: ['sequence'],
  AlterTableStmt: ['relation'],
  RenameStmt: ['relation'],
  AlterObjectSchemaStmt: ['relation'],
  AlterOwnerStmt: ['relation'],
  IndexStmt: ['relation'],
  CreateTrigStmt: ['relation'],
  RuleStmt: ['relation'],
  CreatePolicyStmt: ['table'],
  AlterPolicyStmt: ['table'],
  CreateStatsStmt: ['relations'],
  TruncateStmt: ['relations'],
  RefreshMatViewStmt: ['relation'],
  ClusterStmt: ['relation'],
  ReindexStmt: ['relation'],
  VacuumRelation: ['relation'],
  GrantStmt: ['objects'],
};

/** Bare struct fields whose node type the walk needs to know (the others are told apart by shape). */
const BARE_FIELDS: Readonly<Record<string, string>> = {
  'CallStmt.funccall': 'FuncCall',
  'SelectStmt.larg': 'SelectStmt',
  'SelectStmt.rarg': 'SelectStmt',
};

/** DROP of these object types names tables (or table-like relations). */
const DROPPED_RELATIONS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE', 'OBJECT_SEQUENCE', 'OBJECT_INDEX']);

interface Frame {
  value: unknown;
  access: TableAccess;
  /** CTE names visible here: an unqualified read of one of them is not a table. */
  ctes: ReadonlySet<string>;
}

const noCtes: ReadonlySet<string> = new Set();

export class TreeShapeError extends Error {
  override name = 'TreeShapeError';
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `{"RangeVar": {...}}` → ["RangeVar", {...}]; anything else → undefined. */
function unwrap(value: Json): [string, Json] | undefined {
  const keys = Object.keys(value);
  if (keys.length !== 1) return undefined;
  const type = keys[0] as string;
  const body = value[type];
  const first = type.charCodeAt(0);
  return first >= 65 && first <= 90 && isObject(body) ? [type, body] : undefined;
}

/** A list of `{"String": {"sval": …}}` (qualified names in the raw tree). */
function nameParts(list: unknown, what: string): string[] {
  if (!Array.isArray(list) || list.length === 0) throw new TreeShapeError(`${what} has no name`);
  return list.map((item) => {
    const sval = isObject(item) && isObject(item.String) ? item.String.sval : undefined;
    if (typeof sval !== 'string') throw new TreeShapeError(`${what} has a name part that is not a string`);
    return sval;
  });
}

export function walkTree(root: unknown): TreeFacts {
  const facts: TreeFacts = { tables: [], functions: [], modifies: false, into: false, locks: false };
  const seenTables = new Set<string>();
  const seenFunctions = new Set<string>();

  const addTable = (schema: string, name: string, access: TableAccess): void => {
    const key = `${access}\0${schema}\0${name}`;
    if (seenTables.has(key)) return;
    seenTables.add(key);
    facts.tables.push({ schema, name, access });
  };

  const addRangeVar = (rv: Json, access: TableAccess, ctes: ReadonlySet<string>): void => {
    const name = rv.relname;
    if (typeof name !== 'string') throw new TreeShapeError('a table reference has no name');
    const schema = typeof rv.schemaname === 'string' ? rv.schemaname : undefined;
    if (schema === undefined && access === 'read' && ctes.has(name)) return;
    addTable(schema ?? (rv.relpersistence === 't' ? 'pg_temp' : defaultSchema), name, access);
  };

  const stack: Frame[] = [{ value: root, access: 'read', ctes: noCtes }];
  for (let frame = stack.pop(); frame; frame = stack.pop()) {
    const { value, access, ctes } = frame;
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], access, ctes });
      continue;
    }
    if (!isObject(value)) continue;

    const wrapped = unwrap(value);
    const type = wrapped?.[0];
    const body = wrapped?.[1] ?? value;

    // A table reference, wrapped or bare (a struct field of type RangeVar).
    if (type === 'RangeVar' || (type === undefined && typeof body.relname === 'string')) {
      addRangeVar(body, access, ctes);
      continue;
    }
    if (type === 'FuncCall') {
      const name = nameParts(body.funcname, 'a function call').join('.');
      if (!seenFunctions.has(name)) {
        seenFunctions.add(name);
        facts.functions.push(name);
      }
    }
    if (type !== undefined && MODIFYING.has(type)) facts.modifies = true;
    if (Array.isArray(body.lockingClause) && body.lockingClause.length > 0) facts.locks = true;
    if (body.intoClause !== undefined) facts.into = true;
    if (type === 'DropStmt' && typeof body.removeType === 'string' && DROPPED_RELATIONS.has(body.removeType)) {
      for (const object of Array.isArray(body.objects) ? body.objects : []) {
        const parts = nameParts(isObject(object) && isObject(object.List) ? object.List.items : undefined, 'a dropped relation');
        const name = parts[parts.length - 1] as string;
        addTable(parts.length > 1 ? (parts[parts.length - 2] as string) : defaultSchema, name, 'write');
      }
    }

    // WITH: CTE names hide tables of the same name, in the main query and
    // (for WITH RECURSIVE, or for later CTEs) inside the CTEs themselves.
    const children: Frame[] = [];
    let scope = ctes;
    const withClause = body.withClause;
    if (isObject(withClause) && Array.isArray(withClause.ctes)) {
      const entries = withClause.ctes.map((c) => (isObject(c) && isObject(c.CommonTableExpr) ? c.CommonTableExpr : undefined));
      const names = entries.map((e) => (typeof e?.ctename === 'string' ? e.ctename : ''));
      scope = new Set([...ctes, ...names]);
      entries.forEach((entry, i) => {
        if (!entry) throw new TreeShapeError('a WITH clause holds something other than a CTE');
        const visible = withClause.recursive === true ? scope : new Set([...ctes, ...names.slice(0, i)]);
        children.push({ value: entry.ctequery, access: 'read', ctes: visible });
      });
    }

    const writes = type === undefined ? undefined : WRITE_FIELDS[type];
    for (const [field, child] of Object.entries(body)) {
      if (field === 'withClause' || child === null || typeof child !== 'object') continue;
      let childAccess: TableAccess = 'read';
      if (field === 'intoClause' || writes?.includes(field)) childAccess = 'write';
      else if (type === 'CopyStmt' && field === 'relation' && body.is_from === true) childAccess = 'write';
      // A bare struct (IntoClause, CreateStmt inside CREATE FOREIGN TABLE)
      // passes on the access of the field that holds it.
      else if (type === undefined) childAccess = access;
      const bare = type === undefined ? undefined : BARE_FIELDS[`${type}.${field}`];
      children.push({ value: bare ? { [bare]: child } : child, access: childAccess, ctes: scope });
    }
    // Reversed, so the walk goes in text order (functions are listed as they appear).
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as Frame);
  }
  return facts;
}
