/**
 * What a SQLSTATE means, in words: the condition names of PostgreSQL's
 * Appendix A for the codes a client meets most, else its class. What a
 * masked caller is told in place of the database's own message, which can
 * quote a value (result-masking.ts).
 */
const CONDITIONS: Readonly<Record<string, string>> = {
  '00000': 'successful completion',
  '01000': 'warning',
  '02000': 'no data',
  '0A000': 'feature not supported',
  '21000': 'cardinality violation',
  '22001': 'string data right truncation',
  '22003': 'numeric value out of range',
  '22007': 'invalid datetime format',
  '22008': 'datetime field overflow',
  '22012': 'division by zero',
  '22023': 'invalid parameter value',
  '2202E': 'array subscript error',
  '22P02': 'invalid text representation',
  '22P05': 'untranslatable character',
  '23502': 'not null violation',
  '23503': 'foreign key violation',
  '23505': 'unique violation',
  '23514': 'check violation',
  '23P01': 'exclusion violation',
  '25001': 'active SQL transaction',
  '25006': 'read only SQL transaction',
  '25P01': 'no active SQL transaction',
  '25P02': 'in failed SQL transaction',
  '26000': 'invalid SQL statement name',
  '34000': 'invalid cursor name',
  '40001': 'serialization failure',
  '40P01': 'deadlock detected',
  '42501': 'insufficient privilege',
  '42601': 'syntax error',
  '42602': 'invalid name',
  '42703': 'undefined column',
  '42704': 'undefined object',
  '42710': 'duplicate object',
  '42725': 'ambiguous function',
  '42803': 'grouping error',
  '42804': 'datatype mismatch',
  '42809': 'wrong object type',
  '42846': 'cannot coerce',
  '42883': 'undefined function',
  '42P01': 'undefined table',
  '42P02': 'undefined parameter',
  '42P03': 'duplicate cursor',
  '42P05': 'duplicate prepared statement',
  '42P07': 'duplicate table',
  '42P18': 'indeterminate datatype',
  '55000': 'object not in prerequisite state',
  '55P03': 'lock not available',
  '57014': 'query canceled',
  'P0001': 'raise exception',
  'P0002': 'no data found',
};

const CLASSES: Readonly<Record<string, string>> = {
  '01': 'warning', '02': 'no data', '03': 'SQL statement not yet complete', '08': 'connection exception',
  '09': 'triggered action exception', '0A': 'feature not supported', '0B': 'invalid transaction initiation',
  '0F': 'locator exception', '0L': 'invalid grantor', '0P': 'invalid role specification', '0Z': 'diagnostics exception',
  '20': 'case not found', '21': 'cardinality violation', '22': 'data exception', '23': 'integrity constraint violation',
  '24': 'invalid cursor state', '25': 'invalid transaction state', '26': 'invalid SQL statement name',
  '27': 'triggered data change violation', '28': 'invalid authorization specification',
  '2B': 'dependent privilege descriptors still exist', '2D': 'invalid transaction termination',
  '2F': 'SQL routine exception', '34': 'invalid cursor name', '38': 'external routine exception',
  '39': 'external routine invocation exception', '3B': 'savepoint exception', '3D': 'invalid catalog name',
  '3F': 'invalid schema name', '40': 'transaction rollback', '42': 'syntax error or access rule violation',
  '44': 'with check option violation', '53': 'insufficient resources', '54': 'program limit exceeded',
  '55': 'object not in prerequisite state', '57': 'operator intervention', '58': 'system error',
  'F0': 'configuration file error', 'HV': 'foreign data wrapper error', 'P0': 'PL/pgSQL error',
  'XX': 'internal error',
};

/** "undefined table", "data exception", …; "error" for a code nothing here names. */
export function sqlStateCondition(code: string): string {
  return CONDITIONS[code] ?? CLASSES[code.slice(0, 2)] ?? 'error';
}
