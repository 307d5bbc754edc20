/**
 * A decision's mask plan, made ready for one statement's results: rules
 * compiled once per session, `schema.table.column` names resolved to the (table OID,
 * attribute number) pairs RowDescription carries, and the statement checked
 * for ways around the plan that the proxy could not mask (leaks.ts).
 */
import type { MaskCount } from '../../../engine/audit/events.js';
import { compileMasker, type ColumnMasker } from '../../../engine/masking/masker.js';
import { MaskRuleError } from '../../../engine/masking/errors.js';
import type { HashKey } from '../../../engine/masking/strategies.js';
import type { MaskRule } from '../../../engine/policy/decision.js';
import type { Field } from '../protocol/backend-decode.js';
import { DataRowRewriter } from '../protocol/data-row.js';
import { sqlStateCondition } from '../protocol/sql-states.js';
import type { StatementFacts } from '../sql/analyse.js';
import type { Catalog, ColumnOrigin } from '../upstream/catalog.js';
import type { RowMasking } from '../session/statement-state.js';
import type { ColumnHistory } from './column-history.js';
import { LeakChecks, qualified, type MaskedColumns } from './leaks.js';

export type { Catalog } from '../upstream/catalog.js';

export interface ResultMasking {
  /** How rows with these columns are rewritten; null when none of them is masked. */
  forColumns(fields: readonly Field[]): RowMasking | null;
  /** An ErrorResponse or NoticeResponse with anything that could quote a value taken out. */
  scrubMessage(message: Buffer): Buffer;
  /** A NotificationResponse with its payload withheld: NOTIFY can carry any value (`row_to_json(NEW)` in a trigger). */
  scrubNotification(message: Buffer): Buffer;
  /** Counts since the last call, for the recording and the audit trail; never values. */
  takeCounts(): MaskCount[];
  /**
   * Whether the plan it masks by is no longer trusted (its catalog answers
   * expired, or another connection's DDL found under it): a
   * prepared statement's masking is then prepared again at its next Bind.
   */
  expired(): boolean;
}

interface CompiledRule {
  column: string;
  masker: ColumnMasker;
}


/** A plan's rules compiled and their columns resolved: what every statement under that plan shares. */
interface CompiledPlan {
  rules: CompiledRule[];
  /**
   * "tableOid:attnum" → rule, for the rule's table, the tables inheriting it
   * and the tables it inherits from, and every other place the rule's
   * column has had in the database (column-history.ts).
   */
  byOrigin: Map<string, CompiledRule>;
  byName: Map<string, CompiledRule>;
  /** "schema.table" of the tables qualified rules name, and of those their columns moved to (renamed away). */
  ruleTables: Set<string>;
  /** The columns rules name by themselves ("ssn"): in any table. */
  bareNames: Set<string>;
  /** Those and their heirs and ancestors when the plan was compiled: the tables whose OIDs byOrigin knows. */
  tables: Set<string>;
  /** Their OIDs → their highest attribute number then (dropped columns included). */
  lastAttnums: Map<number, number>;
  /**
   * Redacts a column of those tables numbered past that: added since, by
   * another connection, perhaps a masked column replaced under its name (a
   * migration adding ssn_next, copying, dropping ssn, renaming), whose
   * number the plan cannot know.
   */
  addedColumns: CompiledRule;
  /** Set when a result met such a column: the next statement compiles the session's plans again. */
  stale: boolean;
  /** Compiled again after this (Date.now()), when the catalog answers it was compiled from expire (Catalog.trustedUntil). */
  until: number;
  /** What the plan cannot follow (leaks.ts), ready for each statement. */
  leaks: LeakChecks;
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
  private compiled = new WeakMap<readonly MaskRule[], Promise<CompiledPlan | { refusal: string }>>();

  constructor(
    private readonly catalog: Catalog,
    private readonly hashKey: HashKey,
    private readonly history: (databaseId: string) => ColumnHistory,
  ) {}

  /** Plans compiled from the catalog's answers before the session's own DDL are compiled again. */
  forget(): void {
    this.compiled = new WeakMap();
    this.catalog.forget();
  }

  /**
   * `uncommittedChange`: the session has changed tables or names (DDL, SET search_path, …) where the catalog,
   * another connection, cannot see it yet (in its open transaction, or earlier in this message). The catalog's
   * answers may then be wrong for the statements, and a plan that masks anything is refused.
   */
  async prepare(rules: readonly MaskRule[], statements: readonly StatementFacts[], uncommittedChange: string | null = null): Promise<{ masking: ResultMasking } | { refusal: string }> {
    let compiled = await this.compile(rules);
    if ('refusal' in compiled) return compiled;
    if (compiled.rules.length === 0) return { masking: NO_COLUMNS };
    if (uncommittedChange !== null) {
      return { refusal: `${uncommittedChange} changed tables or names that masking reads from the database's catalog, which shows only what is committed; commit it first, then send this statement` };
    }
    // The plan is past catalog_cache_ms, or another connection changed the schema under it: a column
    // added to a masked table, or a table made to inherit one, whose rows carry an OID the plan does not know.
    if (compiled.stale || Date.now() >= compiled.until || (await unseenMaskedTable(compiled, statements, this.catalog)) !== null) {
      this.forget();
      compiled = await this.compile(rules);
      if ('refusal' in compiled) return compiled;
      const unseen = await unseenMaskedTable(compiled, statements, this.catalog);
      if (unseen !== null) {
        return { refusal: `${unseen} has a masked column, and the database's catalog changed while masking was being prepared for it; send the statement again` };
      }
    }
    const refusal = await compiled.leaks.find(statements, this.catalog);
    if (refusal) return { refusal };
    return { masking: new StatementMasking(compiled) };
  }

  private compile(rules: readonly MaskRule[]): Promise<CompiledPlan | { refusal: string }> {
    let plan = this.compiled.get(rules);
    if (!plan) {
      plan = compilePlan(rules, this.catalog, this.history, this.hashKey);
      this.compiled.set(rules, plan);
      plan.catch(() => this.compiled.delete(rules));
    }
    return plan;
  }
}

/**
 * A table the statements reach, by name or as a view's source, that the
 * plan does not know but a rule masks: one that inherits from a table a
 * rule names, or one with a column a rule names by itself. It was created
 * (or made a child, or given the column) after the plan was compiled, and
 * its rows come back under its own OID, which an alias can keep from the
 * name. "schema.table", or null.
 */
async function unseenMaskedTable(plan: CompiledPlan, statements: readonly StatementFacts[], catalog: Catalog): Promise<string | null> {
  if (plan.ruleTables.size === 0 && plan.bareNames.size === 0) return null;
  for (const statement of statements) {
    for (const table of statement.tables) {
      const reached = [`${table.schema}.${table.name}`];
      if (table.access === 'read') {
        for (const source of (await catalog.viewSources(table.schema, table.name)) ?? []) reached.push(source.slice(0, source.lastIndexOf('.')));
      }
      for (const name of reached) {
        if (plan.tables.has(name)) continue;
        const dot = name.indexOf('.');
        const [schema, relation] = [name.slice(0, dot), name.slice(dot + 1)];
        const parents = plan.ruleTables.size > 0 ? await catalog.ancestors(schema, relation) : null;
        if (parents?.some((parent) => plan.ruleTables.has(parent))) return name;
        const columns = plan.bareNames.size > 0 ? await catalog.columnNames(schema, relation) : null;
        if (columns && [...plan.bareNames].some((column) => columns.has(column))) return name;
      }
    }
  }
  return null;
}

async function compilePlan(rules: readonly MaskRule[], catalog: Catalog, historyOfDatabase: (databaseId: string) => ColumnHistory, hashKey: HashKey): Promise<CompiledPlan | { refusal: string }> {
  const masked: MaskedColumns & { rules: string[]; inherited: string[]; unresolved: Map<string, string>; readsValue: string[] } = {
    rules: [], inherited: [], unresolved: new Map(), readsValue: [],
  };
  const plan: Omit<CompiledPlan, 'leaks'> = {
    rules: [], byOrigin: new Map(), byName: new Map(), ruleTables: new Set(), bareNames: new Set(), tables: new Set(), lastAttnums: new Map(),
    addedColumns: { column: ADDED_COLUMNS, masker: compileMasker({ strategy: 'redact' }) }, stale: false,
    until: catalog.trustedUntil(),
  };
  /** Rules by "schema.table.column", or the bare column name. */
  const byColumn = new Map<string, CompiledRule>();
  let history: ColumnHistory | undefined;
  const historyOf = async () => (history ??= historyOfDatabase(await catalog.databaseId()));
  /** Where a rule's column is (`column` its name there): in the plan, and noted in the history. */
  const found = async (ruleColumn: string, entry: CompiledRule, column: string, origins: readonly ColumnOrigin[], inherited: (i: number) => boolean) => {
    await (await historyOf()).note(ruleColumn, origins);
    for (const [i, origin] of origins.entries()) {
      plan.byOrigin.set(origin.key, entry);
      plan.tables.add(origin.table);
      plan.lastAttnums.set(Number(origin.key.slice(0, origin.key.indexOf(':'))), origin.lastAttnum);
      if (inherited(i)) masked.inherited.push(`${origin.table}.${column}`);
    }
  };
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
    masked.rules.push(rule.column);
    if ((rule.detectors?.length ?? 0) > 0 || (rule.strategy !== 'redact' && rule.strategy !== 'null')) masked.readsValue.push(rule.column);
    const parts = rule.column.split('.');
    if (parts.length === 1) {
      // By its output name, and where the server says a result column comes from, which an alias does not change.
      plan.byName.set(parts[0]!, entry);
      plan.bareNames.add(parts[0]!);
      byColumn.set(parts[0]!, entry);
      await found(parts[0]!, entry, parts[0]!, await catalog.columnsNamed(parts[0]!), () => false);
      continue;
    }
    const [schema, table, column] = qualified(parts);
    const ruleColumn = `${schema}.${table}.${column}`;
    byColumn.set(ruleColumn, entry);
    const origins = await catalog.columnOrigins(schema, table, column);
    plan.ruleTables.add(`${schema}.${table}`);
    plan.tables.add(`${schema}.${table}`);
    if (origins.length === 0) masked.unresolved.set(`${schema}.${table}`, rule.column);
    await found(ruleColumn, entry, column, origins, (i) => i > 0);
  }
  // Places the rule's column had before (column-history.ts): a column renamed, and a new one given the
  // rule's name, or a table renamed away, still holds the values there under another name. Rows can come
  // back under a place that is gone too: a cursor held (WITH HOLD) from before its table was rebuilt.
  const moved = new Map<string, string>();
  for (const place of byColumn.size > 0 ? await (await historyOf()).all() : []) {
    const key = `${place.table_oid}:${place.attnum}`;
    if (!byColumn.has(place.rule_column) || plan.byOrigin.has(key)) continue;
    plan.byOrigin.set(key, byColumn.get(place.rule_column)!);
    moved.set(key, place.rule_column);
  }
  if (moved.size > 0) {
    // Where each is now: masked under that name too (the checks that go by names, expressions and COPY), and
    // in the tables that inherit its table or that it inherits, as the rule's own table is.
    for (const [key, now] of await catalog.columnsAt([...moved.keys()])) {
      const ruleColumn = moved.get(key)!;
      const dot = now.table.indexOf('.');
      plan.ruleTables.add(now.table);
      await found(ruleColumn, byColumn.get(ruleColumn)!, now.name, await catalog.columnOrigins(now.table.slice(0, dot), now.table.slice(dot + 1), now.name), () => true);
    }
  }
  return { ...plan, leaks: new LeakChecks(masked) };
}

/**
 * A masked caller's statement. Its errors and notices are scrubbed whatever
 * it names: an error can come from work another statement left to run (a
 * WITH HOLD cursor's query runs at the commit, under whatever statement ends
 * the transaction; a deferred constraint; a FETCH or EXECUTE).
 */
class StatementMasking implements ResultMasking {
  constructor(private readonly plan: CompiledPlan) {}

  forColumns(fields: readonly Field[]): RowMasking | null {
    const maskers: (ColumnMasker | undefined)[] = fields.map((f) => this.maskerOf(f));
    if (!maskers.some((m) => m !== undefined)) return null;
    return new DataRowRewriter(maskers, fields.map((f) => (f.format === 'binary' ? 1 : 0)), fields.map((f) => f.dataTypeID));
  }

  private maskerOf(field: Field): ColumnMasker | undefined {
    const { plan } = this;
    if (field.tableID !== 0) {
      const rule = plan.byOrigin.get(`${field.tableID}:${field.columnID}`);
      if (rule) return rule.masker;
      const last = plan.lastAttnums.get(field.tableID);
      if (last !== undefined && field.columnID > last) {
        plan.stale = true;
        return plan.addedColumns.masker;
      }
    }
    return plan.byName.get(field.name)?.masker;
  }

  scrubMessage(message: Buffer): Buffer {
    return scrubNoticeFields(message);
  }

  scrubNotification(message: Buffer): Buffer {
    return withheldPayload(message);
  }

  expired(): boolean {
    return this.plan.stale || Date.now() >= this.plan.until;
  }

  takeCounts(): MaskCount[] {
    const counts: MaskCount[] = [];
    const take = (rule: CompiledRule) => {
      counts.push(...rule.masker.counts(rule.column));
      rule.masker.reset();
    };
    this.plan.rules.forEach(take);
    take(this.plan.addedColumns);
    return counts;
  }
}

/** What the audit event and recording count addedColumns' redactions under. */
const ADDED_COLUMNS = 'columns added to a masked table since the session read the catalog';

/** A plan with only HTTP rules masks nothing here, but still scrubs nothing either. */
const NO_COLUMNS: ResultMasking = {
  forColumns: () => null,
  scrubMessage: (message) => message,
  scrubNotification: (message) => message,
  takeCounts: () => [],
  expired: () => false,
};

/**
 * A NotificationResponse (process id, channel, payload) with its payload
 * replaced. No column says where a payload came from, and a trigger that
 * sends `row_to_json(NEW)` (change data capture) sends every column; the
 * channel, which the caller chose to LISTEN to, is kept.
 */
function withheldPayload(message: Buffer): Buffer {
  const channelEnd = message.indexOf(0, 9);
  // Malformed (no end to the channel): the process id alone, with an empty channel.
  const head = channelEnd === -1 ? Buffer.concat([message.subarray(5, 9), Buffer.from([0])]) : message.subarray(5, channelEnd + 1);
  const payload = Buffer.from(`${WITHHELD_PAYLOAD}\0`, 'utf8');
  const out = Buffer.allocUnsafe(5 + head.length + payload.length);
  out[0] = message[0]!;
  out.writeInt32BE(4 + head.length + payload.length, 1);
  head.copy(out, 5);
  payload.copy(out, 5 + head.length);
  return out;
}

const WITHHELD_PAYLOAD = '[withheld by gatehouse: a notification can carry a masked value]';

/**
 * Rebuilds an ErrorResponse/NoticeResponse for a caller with masked
 * columns. The primary message is replaced by what its SQLSTATE means: a
 * message can hold a value anywhere, in any shape the query chose
 * (`to_ascii(x, translate(ssn, …))` errs with `ahixafxbbca is not a valid
 * encoding name`), and no pattern tells such words from the message's own.
 */
function scrubNoticeFields(message: Buffer): Buffer {
  const fields: Array<[string, string]> = [];
  let pos = 5;
  while (pos < message.length && message[pos] !== 0) {
    const end = message.indexOf(0, pos + 1);
    if (end === -1) break;
    fields.push([String.fromCharCode(message[pos]!), message.toString('utf8', pos + 1, end)]);
    pos = end + 1;
  }
  const code = fields.find(([kind]) => kind === 'C')?.[1] ?? '';
  const parts: Buffer[] = [];
  for (const [kind, value] of fields) {
    if (WITHHELD_FIELDS.has(kind)) continue;
    const kept = kind === 'M' && !FIXED_MESSAGES[code]?.test(value) ? `${sqlStateCondition(code)} (the database's message is withheld: it could quote a masked value)` : value;
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

/**
 * Fields that can carry a value: detail, hint, where, the internal query,
 * and the positions (a cast of a value to regtype reports where the value
 * fails to parse, a number the caller chooses). Kept: severity, SQLSTATE,
 * and the names of the schema, table, column, type and constraint, which
 * hold no values.
 */
const WITHHELD_FIELDS = new Set(['D', 'H', 'W', 'q', 'p', 'P']);

/**
 * Messages PostgreSQL writes with no value in them, by SQLSTATE
 * (`canceling statement due to user request`, `division by zero`,
 * `cannot execute INSERT in a read-only transaction`): passed as they are.
 * By their words, not their code alone: code the database holds can raise
 * any message under any code (`RAISE EXCEPTION USING ERRCODE = '22012',
 * MESSAGE = NEW.ssn`). A message in another language (lc_messages) is
 * withheld like any other.
 */
const FIXED_MESSAGES: Readonly<Record<string, RegExp>> = {
  '57014': /^canceling (?:statement due to (?:user request|statement timeout|lock timeout|conflict with recovery)|autovacuum task)$/,
  '25P02': /^current transaction is aborted, commands ignored until end of transaction block$/,
  '22012': /^division by zero$/,
  '40001': /^(?:could not serialize access due to (?:concurrent update|concurrent delete|read\/write dependencies among transactions)|canceling statement due to conflict with recovery)$/,
  '40P01': /^deadlock detected$/,
  // The command's name, as CreateCommandName writes it: upper-case words.
  '25006': /^(?:cannot execute [A-Z]+(?: [A-Z]+){0,3} in a read-only transaction|cannot set transaction read-write mode inside a read-only transaction)$/,
  '25001': /^(?:[A-Z]+(?: [A-Z]+){0,3} cannot run inside a transaction block|there is already a transaction in progress|SET TRANSACTION ISOLATION LEVEL must be called before any query|transaction read-write mode must be set before any query)$/,
  '25P01': /^there is no transaction in progress$/,
  '57P01': /^terminating connection due to administrator command$/,
  '57P02': /^terminating connection because of crash of another server process$/,
  '57P03': /^the database system is (?:starting up|shutting down|in recovery mode|not yet accepting connections|not accepting connections)$/,
};

