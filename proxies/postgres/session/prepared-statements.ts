/**
 * The session's prepared statements (Relay.statements), counted: each
 * keeps its SQL, its facts and its decision until the client closes it
 * (Close, DEALLOCATE, DISCARD ALL).
 */
import { CountedMap, type CountedKind, type CountedMapLimits } from './counted-map.js';
import type { PreparedStatement } from './statement-state.js';

type Measured = Pick<PreparedStatement, 'name' | 'sql'>;

const STATEMENTS: CountedKind<Measured> = {
  plural: 'prepared statements',
  singular: 'statement',
  // A statement's name is as long as the client likes: held too, so counted too.
  bytes: (statement) => Buffer.byteLength(statement.name) + Buffer.byteLength(statement.sql),
  measured: 'SQL and names',
  maxNamedKey: 'max_prepared_statements',
  maxBytesKey: 'max_prepared_statement_bytes',
  remedy: 'DEALLOCATE or Close statements no longer used',
};

export class PreparedStatements extends CountedMap<Measured, PreparedStatement> {
  /** listeners.postgres.max_prepared_statements and max_prepared_statement_bytes. */
  constructor(limits: CountedMapLimits) {
    super(STATEMENTS, limits);
  }
}
