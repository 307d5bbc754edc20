/**
 * What a statement changes that the Postgres proxy's own view of the
 * session rests on: which table a name resolves to (so what RowDescription
 * and a described statement mean), and what the catalog, read on another
 * connection, can be trusted to show. Pure functions of statement facts.
 */
import type { StatementFacts } from './analyse.js';

/**
 * Statement kinds that cannot change which table a name resolves to, a
 * table's columns, nor what a cursor or prepared statement name returns
 * (so not DECLARE, CLOSE, PREPARE, DEALLOCATE: a FETCH or EXECUTE
 * described before them would be described wrong after; nor EXECUTE, which
 * runs any of these). Not COMMIT or ROLLBACK (TO): they can drop a
 * temporary table (ON COMMIT DROP, or one created since the savepoint).
 */
const RESOLUTION_KEEPING = new Set([
  'select', 'insert', 'update', 'delete', 'merge', 'copy', 'explain', 'show', 'fetch', 'move',
  'listen', 'unlisten', 'notify', 'begin', 'savepoint',
  'release', 'lock', 'truncate', 'grant', 'revoke', 'comment', 'vacuum', 'analyze', 'checkpoint',
]);

/** COPY … FROM (STDIN, or a file the server reads: counted alike, as the analyser cannot always tell). */
export function copiesFromClient(statement: StatementFacts): boolean {
  return statement.kind === 'copy' && statement.tables.some((t) => t.access === 'write');
}

/**
 * Whether, after the statement, a name may stand for another table, a
 * table have other columns, or a cursor or prepared statement name return
 * something else: what was described before it may not hold after.
 */
export function changesResolution(statement: StatementFacts): boolean {
  if (statement.kind === 'set') return ['search_path', 'role', 'session_authorization', 'all'].includes(statement.setting ?? '');
  // SELECT … INTO and EXPLAIN ANALYZE CREATE TABLE AS make a table: by kind they keep resolution, by what they do not.
  // Plain EXPLAIN runs nothing, though a write under it is not read-only (it takes the write's locks).
  if ((statement.kind === 'select' || (statement.kind === 'explain' && statement.analyze !== false)) && !statement.readonly) return true;
  return !RESOLUTION_KEEPING.has(statement.kind);
}

/** Statements that change names only the session holds (cursors, prepared statements) or end a transaction: the catalog is as it was. */
const CATALOG_KEEPING = new Set(['commit', 'rollback', 'rollback_to', 'prepare', 'execute', 'declare', 'close', 'deallocate']);

/** SQL after which the catalog's answers (another connection's) may not hold for this session until it commits. */
export function changesCatalog(statement: StatementFacts): boolean {
  if (CATALOG_KEEPING.has(statement.kind)) return false;
  if (statement.kind === 'reset') return ['search_path', 'role', 'session_authorization', 'all'].includes(statement.setting ?? 'all');
  return changesResolution(statement);
}

/** Whether masking the statement asks the catalog: what it reads, calls, or names by table (leaks.ts, the plan's column origins). */
export function readsThroughCatalog(statement: StatementFacts): boolean {
  return statement.tables.some((t) => t.access === 'read') || statement.functions.length > 0
    || (statement.qualified_columns?.length ?? 0) > 0 || (statement.operators?.length ?? 0) > 0 || (statement.casts?.length ?? 0) > 0;
}
