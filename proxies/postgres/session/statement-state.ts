/**
 * What the proxy keeps per prepared statement, portal and running
 * statement: the decision made at Parse (or Query) travels with them, so a
 * Bind or Execute is never decided again, and never without a decision;
 * except a statement policy wants approved, whose every Bind is decided
 * (and approved) with its values.
 */
import type { Decision } from '../../../engine/policy/decision.js';
import type { StatementFacts } from '../sql/analyse.js';
import type { ResultMasking } from '../masking/result-masking.js';
import type { Field } from '../protocol/backend-decode.js';

export interface DecidedSql {
  sql: string;
  decision: Decision;
  decisionId: string;
  /** Where the decision's audit event is (null when it could not be written for a fail-open target). */
  audit: { stream: string; seq: number } | null;
  approvalId: string | null;
  statements: StatementFacts[];
  /** Where the parser stopped (1-based), when the SQL could not be parsed: clients point at it. */
  errorPosition?: number;
  /** Null when the decision masks nothing (the common case: rows pass through untouched). */
  masking: ResultMasking | null;
  /** The policy bundle revision it was decided under: after a reload, what it made is decided again or refused. */
  decidedUnder: string | null;
}

export interface PreparedStatement extends DecidedSql {
  name: string;
  /** The Parse's parameter type OIDs (0: the server infers it): a value's type says how the server reads it. */
  paramTypes: readonly number[];
  /** LiteralSettings.key when it was parsed (its constants read then), or null when the relay did not know them. */
  preparedUnder: string | null;
  /**
   * Its result columns, from the answer to a Describe of the statement (in
   * text format): a Bind in the same epoch then knows its portal's row
   * masking without asking the server again. Only kept when the decision masks.
   */
  columns: readonly Field[] | null;
  /** The epoch (Relay.epoch) the columns were described in. */
  columnsIn: number;
}

export interface Portal {
  name: string;
  statement: PreparedStatement;
  /** Row masking for this portal's columns, once its RowDescription is known. */
  rows: RowMasking | null;
  /**
   * The epoch (Relay.epoch) whose Describe gave `rows`, or null. Rows are
   * masked only by a description from the epoch they run in: in between,
   * SQL can make the statement resolve to another table (DROP a temporary
   * table that shadowed one, SET search_path).
   */
  describedIn: number | null;
  /** The epoch of its Bind. */
  boundIn: number;
}

/** How one result's DataRows are rewritten; null columns pass through untouched. */
export interface RowMasking {
  rewrite(dataRow: Buffer): Buffer;
}

/** One statement (a Query message, or an Execute) from start to completion, for the recording. */
export interface RunningStatement {
  decided: DecidedSql;
  startedAt: number;
  rows: number;
  commandTag: string | null;
  error: { sqlstate: string; message: string } | null;
  /** The current result's row masking (a Query can return several results). */
  result: RowMasking | null;
}
