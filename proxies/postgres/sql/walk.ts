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
 * The same pass collects the columns a result can carry without
 * RowDescription naming their source (facts.ts, `derived_columns`): each
 * frame carries flags saying whether it sits in such an expression
 * (DERIVED), inside a FROM subquery or CTE (SOURCE), in a set operation's
 * later branch (BRANCH), is a select list (LIST), or is a query whose rows
 * are written into a table (FILLS). Values written into a table are derived
 * too: a mask plan rewrites result rows, not the tables a value is copied to.
 *
 * The walk uses an explicit stack, not recursion, so a deeply nested tree
 * cannot overflow the JavaScript stack.
 */
import { defaultSchema, type TableAccess, type TableFact } from './facts.js';
import { FieldRefs } from './field-refs.js';

export interface TreeFacts {
  tables: TableFact[];
  functions: string[];
  /** An INSERT, UPDATE, DELETE or MERGE anywhere in the tree (e.g. inside WITH, PREPARE or COPY (…) TO). */
  modifies: boolean;
  /** SELECT … INTO somewhere (the leftmost SELECT of a set operation carries it). */
  into: boolean;
  /** FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE somewhere. */
  locks: boolean;
  /** facts.ts `derived_columns`: sorted, lowercase; absent when there are none. */
  derivedColumns?: string[];
  /** facts.ts `qualified_columns`: sorted; absent when there are none. */
  qualifiedColumns?: string[];
  /** facts.ts `rewritten_columns`: sorted, lowercase; absent when there are none. */
  rewrittenColumns?: string[];
  /** facts.ts `operators`: sorted; absent when there are none. */
  operators?: string[];
  /** facts.ts `casts`: sorted; absent when there are none. */
  casts?: string[];
}

/**
 * Operator symbols pg_catalog defines (PostgreSQL 15): an operator written
 * with one of these is PostgreSQL's own unless the database overloads the
 * symbol, which facts.ts `operators` does not follow.
 */
const BUILTIN_OPERATORS = new Set([
  '!!', '!~', '!~*', '!~~', '!~~*', '#', '##', '#-', '#>', '#>>', '%', '&', '&&', '&<', '&<|', '&>', '*', '*<', '*<=', '*<>',
  '*=', '*>', '*>=', '+', '-', '->', '->>', '-|-', '/', '<', '<->', '<<', '<<=', '<<|', '<=', '<>', '<@', '<^', '=', '>', '>=',
  '>>', '>>=', '>^', '?', '?#', '?&', '?-', '?-|', '?|', '?||', '@', '@-@', '@>', '@?', '@@', '@@@', '^', '^@', '|', '|&>',
  '|/', '|>>', '||', '||/', '~', '~*', '~<=~', '~<~', '~=', '~>=~', '~>~', '~~', '~~*', '!=',
]);

/** PostgreSQL's own types that casts name unqualified (the SQL-standard ones reach the tree as pg_catalog.x). */
const BUILTIN_TYPES = new Set([
  'text', 'date', 'json', 'jsonb', 'uuid', 'bytea', 'xml', 'money', 'name', 'oid', 'inet', 'cidr', 'macaddr', 'macaddr8',
  'regclass', 'regproc', 'regprocedure', 'regoper', 'regoperator', 'regtype', 'regrole', 'regnamespace', 'regconfig',
  'regdictionary', 'regcollation', 'tsvector', 'tsquery', 'point', 'line', 'lseg', 'box', 'path', 'polygon', 'circle',
  'int4range', 'int8range', 'numrange', 'tsrange', 'tstzrange', 'daterange', 'record', 'void', 'cstring', 'unknown',
  'int2', 'int4', 'int8', 'float4', 'float8', 'bool', 'varchar', 'timestamptz', 'timetz', 'bit', 'varbit', 'pg_lsn',
]);

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
  'InsertStmt.onConflictClause': 'OnConflictClause',
};

/** DROP of these object types names tables (or table-like relations). */
const DROPPED_RELATIONS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE', 'OBJECT_SEQUENCE', 'OBJECT_INDEX']);

/** Every column reference here is derived: inside an expression whose result has no source column. */
const DERIVED = 1;
/** Inside a FROM subquery or a CTE, whose output columns an alias can rename. */
const SOURCE = 2;
/** This SelectStmt is a branch of a set operation: its select list is derived. */
const BRANCH = 4;
/** This list is a select list or RETURNING list: its ResTargets are result columns. */
const LIST = 8;
/** This SelectStmt's rows are written into a table (INSERT … SELECT, CREATE TABLE AS): its select list is derived. */
const FILLS = 16;
/** A SET list of the statement's target (WRITTEN_LISTS): its entries name the column they write. */
const WRITES = 32;

// Masking rewrites result rows only. A value a statement writes into a table
// lands where no mask plan follows it (a later SELECT of that table returns
// it as it is), so the columns these two carry count as derived.
/**
 * Queries whose rows land where no mask plan follows them: written into a
 * table, or shown under a new relation's OID (a view, a rule's action).
 */
const FILLING_QUERIES = new Set(['InsertStmt.selectStmt', 'CreateTableAsStmt.query', 'ViewStmt.query', 'RuleStmt.actions']);
/** Lists of values written into a table: SET lists and MERGE's actions. */
const WRITTEN_LISTS = new Set(['UpdateStmt.targetList', 'OnConflictClause.targetList', 'MergeWhenClause.targetList', 'MergeWhenClause.values']);

/**
 * ALTER TABLE commands that fill a column from an expression over the
 * table's rows: ADD COLUMN … GENERATED ALWAYS AS (ssn) STORED, ALTER
 * COLUMN … TYPE … USING ssn, ALTER COLUMN … SET EXPRESSION AS (ssn).
 */
const FILLING_COLUMN_COMMANDS = new Set(['AT_AddColumn', 'AT_AlterColumnType', 'AT_SetExpression']);

/**
 * Functions that carry their arguments out of the statement, wherever the
 * call sits (a WHERE clause too): to other sessions (pg_notify, advisory
 * lock keys in pg_locks), into session or server state read back later
 * (set_config, setval, large objects), or to another server (dblink).
 */
const CARRIERS = /^(pg_notify|set_config|setval|lo_from_bytea|lo_create|lo_creat|lo_put|lowrite|lo_import|lo_export|pg_logical_emit_message|pg_file_write|dblink|dblink_exec|dblink_send_query|dblink_open|pg_(try_)?advisory_(xact_)?(un)?lock(_shared)?)$/;

/** FROM items that turn expressions (and the columns in them) into rows. */
const ROW_FUNCTIONS = new Set(['RangeFunction', 'RangeTableFunc', 'JsonTable']);

/** FROM items whose alias can rename the columns by position: `AS s(a, b)`. */
const RENAMING_ALIASES = new Set(['RangeVar', 'RangeSubselect', 'JoinExpr']);

interface Frame {
  value: unknown;
  access: TableAccess;
  /** CTE names visible here: an unqualified read of one of them is not a table. */
  ctes: ReadonlySet<string>;
  /** DERIVED | SOURCE | BRANCH | LIST | FILLS. */
  flags: number;
  /** The table an INSERT, UPDATE or MERGE writes: the names its columns go by. */
  target?: WriteTarget;
  /** Inside the value a SET list writes into `column` of the target (not in a subquery). */
  inPlace?: InPlace;
}

interface WriteTarget {
  /** The table's name and alias: qualifiers of its own columns. */
  names: ReadonlySet<string>;
  /** ON CONFLICT: `excluded` qualifies the row being inserted. */
  excluded: boolean;
}

/**
 * A value written back into the column it came from stays under that
 * column's mask (`SET notes = notes || '…'`), and `excluded.x` is the row
 * the INSERT itself supplies, whose values the INSERT's own list answers
 * for: neither is derived.
 */
interface InPlace {
  column: string;
  target: WriteTarget;
}

function keepsInPlace(fields: unknown, inPlace: InPlace): boolean {
  if (!Array.isArray(fields)) return false;
  const names = fields.map(svalOf);
  const column = names[names.length - 1];
  if (column === undefined) return false;
  if (names.length === 1) return column === inPlace.column;
  const qualifier = names[names.length - 2]!;
  if (inPlace.target.excluded && qualifier === 'excluded' && names.length === 2) return true;
  return column === inPlace.column && inPlace.target.names.has(qualifier);
}

/** `excluded.x`: the row an INSERT proposed, not the value stored in the table. */
function isExcluded(fields: unknown): boolean {
  return Array.isArray(fields) && fields.length === 2 && svalOf(fields[0]) === 'excluded';
}

/** What the SET lists of an INSERT … ON CONFLICT, UPDATE or MERGE write into. */
function writeTarget(type: string, body: Json): WriteTarget | undefined {
  if (type !== 'InsertStmt' && type !== 'UpdateStmt' && type !== 'MergeStmt') return undefined;
  const relation = isObject(body.relation) ? body.relation : undefined;
  if (typeof relation?.relname !== 'string') return undefined;
  // Once aliased, the table's own name no longer qualifies its columns: `customers.ssn` is then another FROM item's.
  const names = new Set([isObject(relation.alias) && typeof relation.alias.aliasname === 'string' ? relation.alias.aliasname : relation.relname]);
  return { names, excluded: type === 'InsertStmt' };
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

/**
 * A name as schema and name: PostgreSQL takes `database.schema.name` too,
 * when the database is the one connected to (any other is an error), and
 * it means `schema.name`. Every check reads names in one form, so
 * `orders.pg_catalog.pg_stat_get_activity` is pg_catalog's function to all.
 */
function withoutCatalog(parts: string[]): string[] {
  return parts.length === 3 ? parts.slice(1) : parts;
}

export function walkTree(root: unknown): TreeFacts {
  const facts: TreeFacts = { tables: [], functions: [], modifies: false, into: false, locks: false };
  const seenTables = new Set<string>();
  const seenFunctions = new Set<string>();
  const columns = new DerivedColumns();
  let rewritten: Set<string> | undefined;
  let operators: Set<string> | undefined;
  let casts: Set<string> | undefined;
  const fieldRefs = new FieldRefs();

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
    columns.range(name);
    columns.alias(rv.alias, true);
    const cte = schema === undefined && access === 'read' && ctes.has(name);
    const resolved = schema ?? (rv.relpersistence === 't' ? 'pg_temp' : defaultSchema);
    fieldRefs.table(rv, resolved, cte);
    if (!cte) addTable(resolved, name, access);
  };

  const addFunction = (name: string): void => {
    if (seenFunctions.has(name)) return;
    seenFunctions.add(name);
    facts.functions.push(name);
  };

  const stack: Frame[] = [{ value: root, access: 'read', ctes: noCtes, flags: 0 }];
  for (let frame = stack.pop(); frame; frame = stack.pop()) {
    const { value, access, ctes, flags, target, inPlace } = frame;
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], access, ctes, flags, target, inPlace });
      continue;
    }
    if (!isObject(value)) continue;

    const wrapped = unwrap(value);
    let type = wrapped?.[0];
    let body = wrapped?.[1] ?? value;
    if (type === 'FuncCall' && isSystemUserKeyword(body)) {
      // Both readings: a call on PostgreSQL 16 and later, a column (or a whole row) before.
      addFunction('pg_catalog.system_user');
      type = 'ColumnRef';
      body = SYSTEM_USER_COLUMN;
    }

    // A table reference, wrapped or bare (a struct field of type RangeVar).
    if (type === 'RangeVar' || (type === undefined && typeof body.relname === 'string')) {
      addRangeVar(body, access, ctes);
      continue;
    }
    // A column: only its name matters, and only where it is derived.
    if (type === 'ColumnRef') {
      if (inPlace && keepsInPlace(body.fields, inPlace)) {
        if (!isExcluded(body.fields)) (rewritten ??= new Set()).add(inPlace.column.toLowerCase());
        continue;
      }
      fieldRefs.reference(body.fields);
      if (flags & DERIVED) columns.derived(body.fields);
      continue;
    }
    // A result column: a bare column reference is described by
    // RowDescription; anything else is an expression over its columns.
    if (type === 'ResTarget' && flags & LIST) {
      const val = isObject(body.val) ? body.val : undefined;
      const systemUser = val !== undefined && isObject(val.FuncCall) && isSystemUserKeyword(val.FuncCall);
      if (systemUser) addFunction('pg_catalog.system_user');
      const ref = val && isObject(val.ColumnRef) ? val.ColumnRef : systemUser ? SYSTEM_USER_COLUMN : undefined;
      // A SET list's entry: the value written into column `name` of the target.
      const written = flags & WRITES && target && typeof body.name === 'string' ? { column: body.name, target } : undefined;
      if (ref && written && keepsInPlace(ref.fields, written)) continue;
      if (ref) fieldRefs.reference(ref.fields);
      if (ref && !(flags & DERIVED)) columns.bare(ref.fields, (flags & SOURCE) !== 0);
      else if (val) stack.push({ value: val, access: 'read', ctes, flags: (flags & SOURCE) | DERIVED, inPlace: written });
      continue;
    }
    if (type === 'FuncCall') addFunction(withoutCatalog(nameParts(body.funcname, 'a function call')).join('.'));
    if (type !== undefined && type in SYNTAX_CALLS) addFunction(SYNTAX_CALLS[type] ?? jsonFunctionName(body.op));
    // Operators and casts that may run a function the database defines (leaks.ts findDefinedCode).
    if (type === 'A_Expr' && Array.isArray(body.name)) {
      const name = withoutCatalog(nameParts(body.name, 'an operator'));
      if (name.length > 1 ? name[0] !== 'pg_catalog' : !BUILTIN_OPERATORS.has(name[0]!)) (operators ??= new Set()).add(name.join('.'));
    }
    if (type === 'TypeCast' && isObject(body.typeName) && Array.isArray(body.typeName.names)) {
      const name = withoutCatalog(nameParts(body.typeName.names, 'a cast'));
      if (name.length > 1 ? name[0] !== 'pg_catalog' : !BUILTIN_TYPES.has(name[0]!)) (casts ??= new Set()).add(name.join('.'));
    }
    // `(expr).name` is a field of a composite, or the call name(expr): list it as a call.
    if (type === 'A_Indirection' && Array.isArray(body.indirection)) {
      for (const item of body.indirection) {
        const name = svalOf(item);
        if (name !== undefined) addFunction(name);
      }
    }
    // RETURNING reads the rows written.
    if (type !== undefined && MODIFYING.has(type) && returns(body) && isObject(body.relation)) addRangeVar(body.relation, 'read', ctes);
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

    // Derived columns: what this node makes derived for its children, and
    // the names a whole-row reference or a merged join column can use.
    let inherited = flags & (DERIVED | SOURCE);
    if (type !== undefined && ROW_FUNCTIONS.has(type)) inherited |= DERIVED;
    if (type === 'FuncCall' && CARRIERS.test(baseName(body.funcname))) inherited |= DERIVED;
    // (expr).pg_notify is pg_notify(expr).
    if (type === 'A_Indirection' && Array.isArray(body.indirection) && body.indirection.some((i) => CARRIERS.test((svalOf(i) ?? '').toLowerCase()))) inherited |= DERIVED;
    // COPY … TO STDOUT (not a file or a program): rows with no RowDescription.
    if (type === 'CopyStmt' && body.is_from !== true && body.is_program !== true && body.filename === undefined) {
      inherited |= DERIVED;
      columns.copied(body.attlist, isObject(body.relation));
    }
    if (type !== undefined) columns.alias(body.alias, RENAMING_ALIASES.has(type));
    if (type === 'JoinExpr') {
      columns.merged(body.usingClause, body.isNatural === true);
      fieldRefs.join(body.alias);
    }
    if (type === 'RangeSubselect') fieldRefs.subquery(body.alias, body.subquery);
    if (type !== undefined && ROW_FUNCTIONS.has(type)) fieldRefs.function(body.alias);

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
        columns.cte(names[i] as string, entry.aliascolnames);
        fieldRefs.cte(names[i] as string, entry.aliascolnames, entry.ctequery);
        children.push({ value: entry.ctequery, access: 'read', ctes: visible, flags: inherited | SOURCE });
      });
    }

    const writes = type === undefined ? undefined : WRITE_FIELDS[type];
    const ownTarget = (type !== undefined ? writeTarget(type, body) : undefined) ?? (type === 'SelectStmt' ? undefined : target);
    for (const [field, child] of Object.entries(body)) {
      if (field === 'withClause' || child === null || typeof child !== 'object') continue;
      let childFlags = inherited;
      let childValue: unknown = child;
      if (type === 'SelectStmt') {
        // SELECT … INTO writes its rows into a new table, as INSERT … SELECT does.
        if (field === 'targetList') childFlags |= LIST | (flags & (BRANCH | FILLS) || body.intoClause !== undefined ? DERIVED : 0);
        else if (field === 'valuesLists') childFlags |= DERIVED;
        // PostgreSQL names no source column for a set operation's result, not even the first branch's.
        else if (field === 'larg' || field === 'rarg') childFlags |= BRANCH;
      } else if (FILLING_QUERIES.has(`${type}.${field}`)) {
        childFlags |= FILLS;
      } else if (WRITTEN_LISTS.has(`${type}.${field}`)) {
        childFlags |= LIST | DERIVED | WRITES;
      } else if (type === 'AlterTableCmd' && field === 'def' && FILLING_COLUMN_COMMANDS.has(String(body.subtype))) {
        childFlags |= DERIVED;
      } else if (type === 'RangeSubselect' && field === 'subquery') {
        childFlags |= SOURCE;
      } else if (field === 'returningList') {
        childFlags |= LIST;
      } else if (field === 'returningClause' && isObject(child)) {
        // PostgreSQL 18: RETURNING [WITH (OLD AS o, NEW AS n)] exprs
        childFlags |= LIST;
        childValue = child.exprs;
      }
      let childAccess: TableAccess = 'read';
      if (field === 'intoClause' || writes?.includes(field)) childAccess = 'write';
      else if (type === 'CopyStmt' && field === 'relation' && body.is_from === true) childAccess = 'write';
      // A bare struct (IntoClause, CreateStmt inside CREATE FOREIGN TABLE)
      // passes on the access of the field that holds it.
      else if (type === undefined) childAccess = access;
      const bare = type === undefined ? undefined : BARE_FIELDS[`${type}.${field}`];
      // A subquery's column names are its own: no value in it is written in place.
      children.push({
        value: bare ? { [bare]: childValue } : childValue, access: childAccess, ctes: scope, flags: childFlags,
        target: ownTarget, inPlace: type === 'SelectStmt' ? undefined : inPlace,
      });
    }
    // Reversed, so the walk goes in text order (functions are listed as they appear).
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i] as Frame);
  }
  const fields = fieldRefs.resolve();
  if (fields) {
    for (const name of fields.derived) columns.derived([{ String: { sval: name } }]);
    if (fields.wholeRow) columns.derived([{ A_Star: {} }]);
    if (fields.tableColumns.length > 0) facts.qualifiedColumns = [...new Set(fields.tableColumns)].sort();
  }
  const derived = columns.result();
  if (derived) facts.derivedColumns = derived;
  if (rewritten) facts.rewrittenColumns = [...rewritten].sort();
  if (operators) facts.operators = [...operators].sort();
  if (casts) facts.casts = [...casts].sort();
  return facts;
}

/** A statement's RETURNING list (PostgreSQL 18 holds it in returningClause). */
function returns(body: Json): boolean {
  const list = isObject(body.returningClause) ? body.returningClause.exprs : body.returningList;
  return Array.isArray(list) && list.length > 0;
}

/** A function name's last part, lowercase: `pg_catalog.pg_notify` → pg_notify. */
function baseName(funcname: unknown): string {
  const parts = Array.isArray(funcname) ? funcname : [];
  return (svalOf(parts[parts.length - 1]) ?? '').toLowerCase();
}

/**
 * The parser has PostgreSQL 18's grammar, where SYSTEM_USER (new in 16) is
 * a keyword: a bare `system_user` parses as a call. A server before 16 reads
 * the same word as a column of that name, or as the whole row of a FROM
 * item named "system_user", which RowDescription gives no table to mask
 * (`SELECT system_user FROM customers AS "system_user"`). The walk takes
 * both readings, so the older one is checked as a column reference too.
 */
function isSystemUserKeyword(call: Json): boolean {
  return call.funcformat === 'COERCE_SQL_SYNTAX' && call.args === undefined && baseName(call.funcname) === 'system_user';
}

/**
 * Syntax of PostgreSQL 16 and 17 (SQL/JSON, MERGE's merge_action()) that a
 * server before it reads as a call of a function by that name, which the
 * database may define (leaks.ts findDefinedCode): listed as the call it
 * could be. JsonFuncExpr is json_value, json_query or json_exists, by its op.
 */
const SYNTAX_CALLS: Readonly<Record<string, string | undefined>> = {
  JsonScalarExpr: 'json_scalar', JsonSerializeExpr: 'json_serialize', JsonParseExpr: 'json',
  JsonObjectConstructor: 'json_object', JsonArrayConstructor: 'json_array', JsonArrayQueryConstructor: 'json_array',
  JsonObjectAgg: 'json_objectagg', JsonArrayAgg: 'json_arrayagg', JsonTable: 'json_table', JsonFuncExpr: undefined,
  MergeSupportFunc: 'merge_action',
};

function jsonFunctionName(op: unknown): string {
  if (typeof op !== 'string' || !/^JSON_[A-Z]+_OP$/.test(op)) throw new TreeShapeError('a SQL/JSON function has no known op');
  return op.slice(0, -3).toLowerCase();
}

const SYSTEM_USER_COLUMN: Json = { fields: [{ String: { sval: 'system_user' } }] };

/** The String in a ColumnRef field or name list: `{"String": {"sval": "c"}}`. */
function svalOf(node: unknown): string | undefined {
  const sval = isObject(node) && isObject(node.String) ? node.String.sval : undefined;
  return typeof sval === 'string' ? sval : undefined;
}

/**
 * Collects facts.ts `derived_columns`. Nothing is allocated until a
 * statement has something to collect: most statements have nothing.
 */
class DerivedColumns {
  /** Lowercase column names (and "*") found derived. */
  private found: Set<string> | undefined;
  /** Single-name references (as written) that are a whole row if a FROM item has that name. */
  private wholeRowIfRange: Set<string> | undefined;
  /** The same, from bare result columns: a whole row there is derived too. */
  private bareWholeRowIfRange: Set<string> | undefined;
  /** Bare result columns of FROM subqueries and CTEs: an alias above can hide them. */
  private sourceColumns: Set<string> | undefined;
  /** Names a whole-row reference can use: tables, aliases, CTEs (as written). */
  private ranges: Set<string> | undefined;
  /** Some alias renames columns by position. */
  private renames = false;

  private add(name: string): void {
    (this.found ??= new Set()).add(name.toLowerCase());
  }

  /** A ColumnRef inside a derived expression: `c.ssn` → ssn, `c.*` → *, `c` → c (and * if c is a FROM item). */
  derived(fields: unknown): void {
    if (!Array.isArray(fields) || fields.length === 0) throw new TreeShapeError('a column reference has no fields');
    const last: unknown = fields[fields.length - 1];
    if (isObject(last) && 'A_Star' in last) {
      this.add('*');
      return;
    }
    const name = svalOf(last);
    if (name === undefined) throw new TreeShapeError('a column reference has a field that is not a name');
    this.add(name);
    if (fields.length === 1) (this.wholeRowIfRange ??= new Set()).add(name);
  }

  /** A result column that is a bare ColumnRef (`ssn`, `c.ssn`, `c.*`, `*`, or a whole row `c`). */
  bare(fields: unknown, inSource: boolean): void {
    if (!Array.isArray(fields) || fields.length === 0) throw new TreeShapeError('a column reference has no fields');
    const name = svalOf(fields[fields.length - 1]);
    if (name === undefined) return; // c.* or *: RowDescription names each column
    if (fields.length === 1) (this.bareWholeRowIfRange ??= new Set()).add(name);
    if (inSource) (this.sourceColumns ??= new Set()).add(name.toLowerCase());
  }

  range(name: string): void {
    (this.ranges ??= new Set()).add(name);
  }

  /** A FROM item's alias (a bare Alias struct): its name, and whether it renames columns. */
  alias(alias: unknown, canRename: boolean): void {
    if (!isObject(alias)) return;
    if (typeof alias.aliasname === 'string') this.range(alias.aliasname);
    if (canRename && Array.isArray(alias.colnames) && alias.colnames.length > 0) this.renames = true;
  }

  cte(name: string, aliasColumns: unknown): void {
    this.range(name);
    if (Array.isArray(aliasColumns) && aliasColumns.length > 0) this.renames = true;
  }

  /** JOIN … USING (a, b): merged columns (a COALESCE for FULL JOIN, a cast when the types differ); NATURAL: all of them. */
  merged(using: unknown, natural: boolean): void {
    if (natural) this.add('*');
    if (!Array.isArray(using)) return;
    for (const item of using) {
      const name = svalOf(item);
      if (name !== undefined) this.add(name);
    }
  }

  /** COPY … TO: its columns, or the whole table. */
  copied(attlist: unknown, hasTable: boolean): void {
    if (Array.isArray(attlist) && attlist.length > 0) this.merged(attlist, false);
    else if (hasTable) this.add('*');
  }

  result(): string[] | undefined {
    const ranges = this.ranges;
    if (ranges) {
      for (const name of this.wholeRowIfRange ?? []) if (ranges.has(name)) this.add('*');
      for (const name of this.bareWholeRowIfRange ?? []) {
        if (!ranges.has(name)) continue;
        this.add('*');
        this.add(name);
      }
    }
    if (!this.found) return undefined;
    for (const name of this.sourceColumns ?? []) this.found.add(name);
    if (this.renames) this.found.add('*');
    return [...this.found].sort();
  }
}
