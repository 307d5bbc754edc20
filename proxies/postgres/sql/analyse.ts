/**
 * SQL text → statement facts, with the real PostgreSQL parser (libpg-query,
 * PostgreSQL's own grammar compiled to WebAssembly). One entry per
 * statement; an empty query (or only comments / semicolons) gives none.
 *
 * Anything the parser rejects, and any tree the walk cannot read, is a
 * SqlAnalysisError, never a partial result: the proxy denies it.
 */
import { loadModule, parseSync } from 'libpg-query';
import type { StatementFacts } from './facts.js';
import { ALWAYS_READONLY, explainAnalyzes, objectType, readWriteSetting, settingValue, statementKind, transactionReadonly, transactionReadWrite } from './kinds.js';
import { renamedNames } from './renames.js';
import { walkTree } from './walk.js';

export type { StatementFacts, TableAccess, TableFact } from './facts.js';

type Json = Record<string, unknown>;

export class SqlAnalysisError extends Error {
  override name = 'SqlAnalysisError';
  /**
   * 1-based character position of the error in the text, as PostgreSQL's
   * ErrorResponse "P" field counts, when the parser gave one.
   */
  readonly position: number | undefined;
  constructor(message: string, position?: number, options?: ErrorOptions) {
    super(message, options);
    this.position = position;
  }
}

let loaded: Promise<void> | undefined;

/** Loads the parser's WebAssembly module once; analyseSqlSync needs it done. */
export function loadSqlParser(): Promise<void> {
  loaded ??= loadModule().catch((error: unknown) => {
    loaded = undefined;
    throw error;
  });
  return loaded;
}

export async function analyseSql(text: string): Promise<StatementFacts[]> {
  await loadSqlParser();
  return analyseSqlSync(text);
}

/** As analyseSql, once loadSqlParser() has resolved (the hot path: no promise per query). */
export function analyseSqlSync(text: string): StatementFacts[] {
  return analyseSqlSyncWithShape(text).facts;
}

/**
 * Statements whose facts come from the tree walk alone, which reads names
 * and node types, never a constant's value. The others read constants:
 * BEGIN READ WRITE, SET x = 5, EXPLAIN (ANALYZE 0), COPY … TO 'file'.
 */
const SHAPE_INDEPENDENT_TYPES = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt']);

/**
 * Statements, tables and function calls one message may hold: each is
 * policy input, and the policy reads them all on the main thread (800 KB
 * of calls to distinct functions took it 150–250 ms). Real SQL, generated
 * SQL included, holds far fewer.
 */
export const MAX_NAMES = 10_000;

export interface ShapedAnalysis {
  facts: StatementFacts[];
  /** The facts hold for every text of the same literal-shape.ts shape: no statement's facts read a constant. */
  shapeIndependent: boolean;
}

/** As analyseSqlSync, telling also whether the facts may be shared by texts of the same literal shape. */
export function analyseSqlSyncWithShape(text: string): ShapedAnalysis {
  if (text === '') return { facts: [], shapeIndependent: true }; // the parser refuses an empty string; blanks and comments parse to no statements
  // The parser reads a C string: it would stop at a NUL and never see what follows.
  if (text.includes('\0')) throw new SqlAnalysisError('SQL text contains a NUL character');
  let tree: { stmts?: Array<{ stmt?: unknown }> };
  try {
    tree = parseSync(text) as typeof tree;
  } catch (error) {
    throw parseError(error);
  }
  let shapeIndependent = true;
  try {
    const facts = (tree.stmts ?? []).map((raw, i) => {
      const node = raw.stmt as Json | undefined;
      const type = node ? Object.keys(node)[0] : undefined;
      const body = type ? (node?.[type] as Json | undefined) : undefined;
      if (!type || !body) throw new SqlAnalysisError(`statement ${i + 1} is empty in the parse tree`);
      if (!SHAPE_INDEPENDENT_TYPES.has(type)) shapeIndependent = false;
      return analyseStatement(type, body);
    });
    const names = facts.reduce((sum, statement) => sum + 1 + statement.tables.length + statement.functions.length, 0);
    if (names > MAX_NAMES) {
      throw new SqlAnalysisError(`it holds ${names} statements, tables and function calls, over the ${MAX_NAMES} the gateway decides in one message; send it in parts`);
    }
    return { facts, shapeIndependent };
  } catch (error) {
    if (error instanceof SqlAnalysisError) throw error;
    throw new SqlAnalysisError(`could not analyse the parse tree: ${(error as Error).message}`, undefined, { cause: error });
  }
}

function analyseStatement(type: string, body: Json): StatementFacts {
  const kind = statementKind(type, body);
  if (type === 'ExplainStmt') return analyseExplain(body);

  const tree = walkTree({ [type]: body });
  const facts: StatementFacts = { kind, readonly: false, tables: tree.tables, functions: tree.functions };
  const plainQuery = !tree.modifies && !tree.into && !tree.locks;
  switch (type) {
    case 'SelectStmt':
    case 'PrepareStmt':
    case 'DeclareCursorStmt':
      facts.readonly = plainQuery;
      break;
    case 'CopyStmt':
      // COPY … TO STDOUT only; TO 'file' writes a server file, PROGRAM runs a command.
      facts.readonly = plainQuery && body.is_from !== true && body.is_program !== true && body.filename === undefined;
      if (body.is_program === true) facts.program = true;
      break;
    case 'TransactionStmt':
      facts.readonly = transactionReadonly(body);
      if (transactionReadWrite(body)) facts.read_write = true;
      break;
    case 'VariableSetStmt': {
      // Never read-only: policy decides which settings a read-only caller may change.
      facts.setting = typeof body.name === 'string' ? body.name.toLowerCase() : 'all';
      const value = settingValue(body);
      if (value !== undefined) facts.value = value;
      if (readWriteSetting(body)) facts.read_write = true;
      break;
    }
    case 'AlterRoleSetStmt':
    case 'AlterDatabaseSetStmt': {
      // A default for the sessions that start later: the setting, as for SET (reading-settings.ts).
      const set = body.setstmt as Json | undefined;
      if (set) {
        facts.setting = typeof set.name === 'string' ? set.name.toLowerCase() : 'all';
        const value = settingValue(set);
        if (value !== undefined) facts.value = value;
      }
      break;
    }
    case 'VariableShowStmt':
      facts.readonly = true;
      facts.setting = typeof body.name === 'string' ? body.name.toLowerCase() : 'all';
      break;
    case 'DiscardStmt':
      // DISCARD ALL runs RESET ALL, which resets default_transaction_read_only.
      if (body.target === 'DISCARD_ALL') facts.read_write = true;
      break;
    default:
      facts.readonly = ALWAYS_READONLY.has(type);
  }
  if (tree.derivedColumns) facts.derived_columns = tree.derivedColumns;
  if (tree.qualifiedColumns) facts.qualified_columns = tree.qualifiedColumns;
  if (tree.rewrittenColumns) facts.rewritten_columns = tree.rewrittenColumns;
  if (tree.operators) facts.operators = tree.operators;
  if (tree.casts) facts.casts = tree.casts;
  const object = objectType(type, body);
  if (object !== undefined) facts.object_type = object;
  const names = sessionNames(type, body);
  if (names) facts.session_names = names;
  const executes = executedName(type, body);
  if (executes !== undefined) facts.executes = executes;
  if (type === 'FetchStmt' && typeof body.portalname === 'string') facts.cursor = body.portalname;
  const renames = renamedNames(type, body);
  if (renames.length > 0) facts.renames = renames;
  return facts;
}

/** facts.ts `session_names`. */
function sessionNames(type: string, body: Json): StatementFacts['session_names'] {
  const named = (value: unknown) => (typeof value === 'string' ? value : '*');
  switch (type) {
    case 'PrepareStmt':
      return { statement: named(body.name) };
    case 'DeallocateStmt':
      return { statement: body.isall === true ? '*' : named(body.name) };
    case 'DeclareCursorStmt':
      return { portal: named(body.portalname) };
    case 'ClosePortalStmt':
      return { portal: named(body.portalname) };
    case 'DiscardStmt':
      return body.target === 'DISCARD_ALL' ? { statement: '*', portal: '*' } : undefined;
    default:
      return undefined;
  }
}

/** The prepared statement EXECUTE runs, also as CREATE TABLE … AS EXECUTE. */
function executedName(type: string, body: Json): string | undefined {
  const execute = type === 'ExecuteStmt' ? body : type === 'CreateTableAsStmt' ? (body.query as Json | undefined)?.ExecuteStmt as Json | undefined : undefined;
  return typeof execute?.name === 'string' ? execute.name : undefined;
}

/**
 * Plain EXPLAIN plans its statement without running it: its tables read.
 * Planning still takes the statement's table locks (ROW EXCLUSIVE for an
 * INSERT, UPDATE, DELETE or MERGE, ROW SHARE for FOR UPDATE), held until
 * the transaction ends, where they block DDL and LOCK: it is read-only
 * only when its statement is. EXPLAIN ANALYZE runs it: the statement's own
 * facts. `analyze` tells them apart. The functions are listed either way
 * (the planner may evaluate some).
 */
function analyseExplain(body: Json): StatementFacts {
  const query = body.query as Json | undefined;
  const type = query ? Object.keys(query)[0] : undefined;
  const inner = type ? (query?.[type] as Json | undefined) : undefined;
  if (!type || !inner) throw new SqlAnalysisError('EXPLAIN has no statement in the parse tree');
  const explained = analyseStatement(type, inner);
  // EXPLAIN returns a plan, not the statement's rows. EXPLAIN ANALYZE runs
  // the statement, though: its writes land in tables and its carriers
  // (pg_notify(…, ssn)) send values on, so it keeps every masking fact.
  if (explainAnalyzes(body.options)) return { ...explained, kind: 'explain', analyze: true };
  const tables = new Map(explained.tables.map((t) => [`${t.schema}\0${t.name}`, { ...t, access: 'read' as const }]));
  return { kind: 'explain', readonly: explained.readonly, analyze: false, tables: [...tables.values()], functions: explained.functions };
}

function parseError(error: unknown): SqlAnalysisError {
  const message = error instanceof Error ? error.message : String(error);
  const details = (error as { sqlDetails?: { cursorPosition?: number } } | undefined)?.sqlDetails;
  const cursor = details?.cursorPosition;
  // libpg-query reports PostgreSQL's character position, made 0-based.
  const position = typeof cursor === 'number' && cursor >= 0 ? cursor + 1 : undefined;
  return new SqlAnalysisError(`SQL could not be parsed: ${message}`, position, { cause: error });
}
