/**
 * A decision's mask plan, made ready for one statement's results: rules
 * compiled once per session, `schema.table.column` names resolved to the (table OID,
 * attribute number) pairs RowDescription carries, and the statement checked
 * for ways around the plan that the proxy could not mask (an expression over
 * a masked column, COPY). What cannot be masked is refused, never passed.
 */
import type { MaskCount } from '../../../engine/audit/events.js';
import { DETECTOR_NAMES, findSpans } from '../../../engine/masking/detectors.js';
import { compileMasker, type ColumnMasker } from '../../../engine/masking/masker.js';
import { MaskRuleError } from '../../../engine/masking/errors.js';
import type { HashKey } from '../../../engine/masking/strategies.js';
import type { MaskRule } from '../../../engine/policy/decision.js';
import type { Field } from '../protocol/backend-decode.js';
import { DataRowRewriter } from '../protocol/data-row.js';
import type { StatementFacts } from '../sql/analyse.js';
import type { Catalog } from '../upstream/catalog.js';
import type { RowMasking } from '../session/statement-state.js';

export type { Catalog } from '../upstream/catalog.js';

export interface ResultMasking {
  /** How rows with these columns are rewritten; null when none of them is masked. */
  forColumns(fields: readonly Field[]): RowMasking | null;
  /** An ErrorResponse or NoticeResponse with anything that could quote a value taken out. */
  scrubMessage(message: Buffer): Buffer;
  /** Counts since the last call, for the recording and the audit trail; never values. */
  takeCounts(): MaskCount[];
}

interface CompiledRule {
  column: string;
  masker: ColumnMasker;
}


/** A plan's rules compiled and their columns resolved: what every statement under that plan shares. */
interface CompiledPlan {
  rules: CompiledRule[];
  byOrigin: Map<string, CompiledRule>;
  byName: Map<string, CompiledRule>;
  /** "schema.table" → a rule naming a column that table does not have (renamed or dropped since the rule was written). */
  unresolved: Map<string, string>;
}

/**
 * A session's mask plans. A plan is compiled once: the decision cache hands
 * back the same decision, and so the same plan array, for every statement
 * with the same facts, so only the per-statement checks run each time. The
 * maskers (and their counts) are shared by those statements; their results
 * come one after another on the connection, and each takes its counts when
 * it completes.
 */
export class MaskPlans {
  private readonly compiled = new WeakMap<readonly MaskRule[], Promise<CompiledPlan | { refusal: string }>>();

  constructor(
    private readonly catalog: Catalog,
    private readonly hashKey: HashKey,
  ) {}

  async prepare(rules: readonly MaskRule[], statements: readonly StatementFacts[]): Promise<{ masking: ResultMasking } | { refusal: string }> {
    let plan = this.compiled.get(rules);
    if (!plan) {
      plan = compilePlan(rules, this.catalog, this.hashKey);
      this.compiled.set(rules, plan);
      plan.catch(() => this.compiled.delete(rules));
    }
    const compiled = await plan;
    if ('refusal' in compiled) return compiled;
    if (compiled.rules.length === 0) return { masking: NO_COLUMNS };
    const columns = compiled.rules.map((c) => c.column);
    const leak = findUnresolved(compiled, statements) ?? findRename(columns, statements) ?? findLeak(columns, statements)
      ?? (await findViewLeak(columns, statements, this.catalog));
    if (leak) return { refusal: leak };
    return { masking: new StatementMasking(compiled, readsMaskedTable(columns, statements)) };
  }
}

async function compilePlan(rules: readonly MaskRule[], catalog: Catalog, hashKey: HashKey): Promise<CompiledPlan | { refusal: string }> {
  const plan: CompiledPlan = { rules: [], byOrigin: new Map(), byName: new Map(), unresolved: new Map() };
  for (const rule of rules) {
    if (rule.column === undefined) continue; // "field" rules are for HTTP bodies
    let masker: ColumnMasker;
    try {
      masker = compileMasker({ strategy: rule.strategy, detectors: rule.detectors }, { hashKey });
    } catch (err) {
      if (err instanceof MaskRuleError) return { refusal: `mask rule for ${rule.column} is unusable: ${err.message}` };
      throw err;
    }
    const entry = { column: rule.column, masker };
    plan.rules.push(entry);
    const parts = rule.column.split('.');
    if (parts.length === 1) {
      plan.byName.set(parts[0]!, entry);
      continue;
    }
    const [schema, table, column] = qualified(parts);
    const origin = await catalog.columnKey(schema, table, column);
    if (origin !== null) plan.byOrigin.set(origin, entry);
    else plan.unresolved.set(`${schema}.${table}`, rule.column);
  }
  return plan;
}

/** A rule's `table.column` or `schema.table.column`, as [schema, table, column]. */
function qualified(parts: readonly string[]): [string, string, string] {
  return parts.length === 2 ? ['public', parts[0]!, parts[1]!] : [parts[0]!, parts[1]!, parts.slice(2).join('.')];
}

/**
 * A rule whose column is gone from its table (renamed or dropped outside
 * the gateway) would mask nothing: the column could be read under its new
 * name, or returned by a write's RETURNING. Statements on that table are
 * refused until the rule or the schema is fixed.
 */
function findUnresolved(plan: CompiledPlan, statements: readonly StatementFacts[]): string | null {
  if (plan.unresolved.size === 0) return null;
  for (const statement of statements) {
    for (const table of statement.tables) {
      const rule = plan.unresolved.get(`${table.schema}.${table.name}`);
      if (rule !== undefined) {
        return `mask rule ${rule} names no column of ${table.schema}.${table.name} (renamed or dropped?): statements on the table are refused until the rule or the schema is fixed`;
      }
    }
  }
  return null;
}

/**
 * Renaming a masked column, its table or its schema (or moving the table
 * to another schema) would leave the rule naming nothing, for every caller.
 */
function findRename(columns: string[], statements: readonly StatementFacts[]): string | null {
  for (const statement of statements) {
    for (const renamed of statement.renames ?? []) {
      const rule = columns.find((column) => renameBreaks(renamed, column));
      if (rule !== undefined) return `ALTER would rename ${renamed}, which mask rule ${rule} names: the rule would no longer find the column`;
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

/**
 * Whether a statement can see a masked column at all: only then can its errors quote one.
 * The facts name only what the statement's text names, and data is reached in other ways
 * too: through another relation (a view over a masked table), a function, or a statement
 * that runs what was declared or prepared before, or code (FETCH, EXECUTE, DO, CALL, a
 * COMMIT's deferred checks). Only a SELECT that names no relation and calls no function
 * cannot.
 */
function readsMaskedTable(columns: string[], statements: readonly StatementFacts[]): boolean {
  const tables = columns.map((c) => c.split('.')).map((parts) => (parts.length > 1 ? parts[parts.length - 2]! : null));
  // A rule by output name alone could match any table.
  if (tables.includes(null)) return true;
  return statements.some((s) => s.kind !== 'select' || s.tables.length > 0 || s.functions.length > 0);
}

/**
 * A view's result columns carry the view's own table OID, so a mask on a
 * base column would not find them: a view that reads a masked column is
 * refused (its other columns could still be selected from the base table).
 */
async function findViewLeak(columns: string[], statements: readonly StatementFacts[], catalog: Catalog): Promise<string | null> {
  const full = new Set(columns.filter((c) => c.split('.').length === 3));
  const bare = new Set(columns.filter((c) => !c.includes('.')));
  const twoPart = new Set(columns.filter((c) => c.split('.').length === 2).map((c) => `public.${c}`));
  for (const statement of statements) {
    for (const table of statement.tables) {
      if (table.access !== 'read') continue;
      for (const source of await catalog.viewSources(table.schema, table.name)) {
        if (full.has(source) || twoPart.has(source) || bare.has(source.slice(source.lastIndexOf('.') + 1))) {
          return `view ${table.schema}.${table.name} reads masked column ${source}, which masking cannot follow through a view; query ${source.slice(0, source.lastIndexOf('.'))} instead`;
        }
      }
    }
  }
  return null;
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
function findLeak(columns: string[], statements: readonly StatementFacts[]): string | null {
  const masked = new Map(columns.map((c) => {
    const parts = c.split('.');
    return [parts[parts.length - 1]!, parts.length > 1 ? parts[parts.length - 2]! : null] as const;
  }));
  const maskedTables = new Set([...masked.values()].filter((t): t is string => t !== null));
  for (const statement of statements) {
    const reads = statement.tables.filter((t) => t.access === 'read' && (maskedTables.has(t.name) || maskedTables.size === 0));
    if (statement.kind === 'copy' && reads.length > 0) {
      return `COPY would return masked columns of ${reads.map((t) => t.name).join(', ')} unmasked; SELECT them instead`;
    }
    const written = statement.tables.filter((t) => t.access === 'write').map((t) => `${t.schema}.${t.name}`);
    // The rows of a prepared statement: the analyser never sees which columns they hold.
    if (statement.executes !== undefined && written.length > 0) {
      return `${verb(statement)} would write the rows of prepared statement ${statement.executes} into ${written.join(', ')}, where masked columns are not masked; write CREATE TABLE … AS SELECT, which the gateway can check`;
    }
    for (const name of statement.derived_columns ?? []) {
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

function verb(statement: StatementFacts): string {
  if (statement.kind === 'explain') return 'EXPLAIN ANALYZE';
  // A SELECT writes through INTO or a data-modifying WITH.
  return statement.kind === 'select' ? 'the statement' : statement.kind.toUpperCase().replaceAll('_', ' ');
}

class StatementMasking implements ResultMasking {
  constructor(
    private readonly plan: CompiledPlan,
    private readonly scrubs: boolean,
  ) {}

  forColumns(fields: readonly Field[]): RowMasking | null {
    const { byOrigin, byName } = this.plan;
    const maskers: (ColumnMasker | undefined)[] = fields.map((f) =>
      (f.tableID !== 0 ? byOrigin.get(`${f.tableID}:${f.columnID}`) : undefined)?.masker ?? byName.get(f.name)?.masker);
    if (!maskers.some((m) => m !== undefined)) return null;
    return new DataRowRewriter(maskers, fields.map((f) => (f.format === 'binary' ? 1 : 0)), fields.map((f) => f.dataTypeID));
  }

  scrubMessage(message: Buffer): Buffer {
    return this.scrubs ? scrubNoticeFields(message) : message;
  }

  takeCounts(): MaskCount[] {
    const counts: MaskCount[] = [];
    for (const rule of this.plan.rules) {
      counts.push(...rule.masker.counts(rule.column));
      rule.masker.reset();
    }
    return counts;
  }
}

/** A plan with only HTTP rules masks nothing here, but still scrubs nothing either. */
const NO_COLUMNS: ResultMasking = {
  forColumns: () => null,
  scrubMessage: (message) => message,
  takeCounts: () => [],
};

/**
 * Rebuilds an ErrorResponse/NoticeResponse: the primary message keeps its
 * words but not its quoted values or detected PII; detail, context and
 * internal query (which quote rows and literals) are dropped.
 */
function scrubNoticeFields(message: Buffer): Buffer {
  const parts: Buffer[] = [];
  let pos = 5;
  while (pos < message.length && message[pos] !== 0) {
    const field = message[pos]!;
    const end = message.indexOf(0, pos + 1);
    if (end === -1) break;
    const value = message.toString('utf8', pos + 1, end);
    pos = end + 1;
    const kind = String.fromCharCode(field);
    if (kind === 'D' || kind === 'W' || kind === 'q' || kind === 'p') continue;
    const kept = kind === 'M' ? scrubText(value) : value;
    parts.push(Buffer.from(`${kind}${kept}\0`, 'utf8'));
  }
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = message[0]!;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function scrubText(text: string): string {
  const quoted = text.replace(/"(?:[^"]|"")*"/g, '"[REDACTED]"');
  const spans = findSpans(quoted, DETECTOR_NAMES);
  let out = '';
  let pos = 0;
  for (const span of spans) {
    out += `${quoted.slice(pos, span.start)}[REDACTED:${span.detector}]`;
    pos = span.end;
  }
  return out + quoted.slice(pos);
}
