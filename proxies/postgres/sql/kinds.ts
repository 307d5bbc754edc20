/**
 * The kind of a top-level statement, from its parse-tree node type, and
 * which kinds can be read-only at all. Unknown node types still get a kind
 * (CreateFooStmt → "create", AlterFooStmt → "alter", DropFooStmt → "drop",
 * anything else in snake_case) and are never read-only.
 */

type Json = Record<string, unknown>;

const FIXED_KINDS: Readonly<Record<string, string>> = {
  SelectStmt: 'select',
  InsertStmt: 'insert',
  UpdateStmt: 'update',
  DeleteStmt: 'delete',
  MergeStmt: 'merge',
  CopyStmt: 'copy',
  TruncateStmt: 'truncate',
  ExplainStmt: 'explain',
  DoStmt: 'do',
  CallStmt: 'call',
  LockStmt: 'lock',
  VariableShowStmt: 'show',
  PrepareStmt: 'prepare',
  ExecuteStmt: 'execute',
  DeallocateStmt: 'deallocate',
  DeclareCursorStmt: 'declare',
  ClosePortalStmt: 'close',
  ListenStmt: 'listen',
  UnlistenStmt: 'unlisten',
  NotifyStmt: 'notify',
  DiscardStmt: 'discard',
  CheckPointStmt: 'checkpoint',
  LoadStmt: 'load',
  ReindexStmt: 'reindex',
  ClusterStmt: 'cluster',
  RefreshMatViewStmt: 'refresh',
  CommentStmt: 'comment',
  SecLabelStmt: 'security_label',
  ConstraintsSetStmt: 'set_constraints',
  ReassignOwnedStmt: 'reassign_owned',
  ImportForeignSchemaStmt: 'import_foreign_schema',
  // CREATE-like statements whose node name does not start with Create.
  ViewStmt: 'create',
  IndexStmt: 'create',
  RuleStmt: 'create',
  DefineStmt: 'create',
  CompositeTypeStmt: 'create',
  CreatedbStmt: 'create',
  DropdbStmt: 'drop',
  DropOwnedStmt: 'drop',
  RenameStmt: 'alter',
};

const TRANSACTION_KINDS: Readonly<Record<string, string>> = {
  TRANS_STMT_BEGIN: 'begin',
  TRANS_STMT_START: 'begin',
  TRANS_STMT_COMMIT: 'commit',
  TRANS_STMT_ROLLBACK: 'rollback',
  TRANS_STMT_SAVEPOINT: 'savepoint',
  TRANS_STMT_RELEASE: 'release',
  TRANS_STMT_ROLLBACK_TO: 'rollback_to',
  TRANS_STMT_PREPARE: 'prepare_transaction',
  TRANS_STMT_COMMIT_PREPARED: 'commit_prepared',
  TRANS_STMT_ROLLBACK_PREPARED: 'rollback_prepared',
};

export function statementKind(type: string, body: Json): string {
  switch (type) {
    case 'TransactionStmt':
      return TRANSACTION_KINDS[String(body.kind)] ?? 'transaction';
    case 'VariableSetStmt':
      return String(body.kind).startsWith('VAR_RESET') ? 'reset' : 'set';
    case 'GrantStmt':
    case 'GrantRoleStmt':
      return body.is_grant === true ? 'grant' : 'revoke';
    case 'FetchStmt':
      return body.ismove === true ? 'move' : 'fetch';
    case 'VacuumStmt':
      return body.is_vacuumcmd === true ? 'vacuum' : 'analyze';
  }
  const fixed = FIXED_KINDS[type];
  if (fixed) return fixed;
  const base = type.replace(/Stmt$/, '');
  for (const verb of ['Create', 'Alter', 'Drop']) if (base.startsWith(verb)) return verb.toLowerCase();
  return base.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/** Fields where the parse tree names the type of object a statement acts on (OBJECT_FUNCTION, …). */
const OBJECT_TYPE_FIELDS = ['objtype', 'removeType', 'renameType', 'objectType', 'kind'];

/** Statements that create one type of object and do not name it in a field. */
const CREATED_OBJECTS: Readonly<Record<string, string>> = {
  CreateStmt: 'table',
  ViewStmt: 'view',
  IndexStmt: 'index',
  RuleStmt: 'rule',
  CreateTrigStmt: 'trigger',
  CreateEventTrigStmt: 'event_trigger',
  CreateSeqStmt: 'sequence',
  CreatedbStmt: 'database',
  CreatePLangStmt: 'language',
  CompositeTypeStmt: 'type',
  CreateEnumStmt: 'type',
  CreateRangeStmt: 'type',
  CreateForeignTableStmt: 'foreign_table',
  CreateForeignServerStmt: 'server',
  CreateFdwStmt: 'foreign_data_wrapper',
  CreateOpClassStmt: 'operator_class',
  CreateOpFamilyStmt: 'operator_family',
  CreateStatsStmt: 'statistics',
  CreateTableSpaceStmt: 'tablespace',
  CreateAmStmt: 'access_method',
};

/**
 * The type of object a statement creates, alters, drops, renames, comments
 * on or grants on, lowercase as PostgreSQL names it without OBJECT_
 * ("function", "procedure", "table", "matview", …); undefined
 * when the statement names none. CREATE [OR REPLACE] FUNCTION and
 * PROCEDURE are told apart: their bodies are code the analyser never sees.
 */
export function objectType(type: string, body: Json): string | undefined {
  if (type === 'CreateFunctionStmt') return body.is_procedure === true ? 'procedure' : 'function';
  for (const field of OBJECT_TYPE_FIELDS) {
    const value = body[field];
    if (typeof value === 'string' && value.startsWith('OBJECT_')) return value.slice('OBJECT_'.length).toLowerCase();
  }
  if (CREATED_OBJECTS[type]) return CREATED_OBJECTS[type];
  const created = /^Create(\w+)Stmt$/.exec(type)?.[1];
  return created?.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/**
 * Statements that change nothing and end no transaction, whatever they name.
 * LISTEN and UNLISTEN only subscribe this session to notifications: a read
 * (NOTIFY, which signals other sessions, is not read-only).
 */
export const ALWAYS_READONLY = new Set(['VariableShowStmt', 'FetchStmt', 'ClosePortalStmt', 'DeallocateStmt', 'ListenStmt', 'UnlistenStmt']);

/**
 * BEGIN / START TRANSACTION are read-only unless they ask for READ WRITE.
 * SAVEPOINT, RELEASE and ROLLBACK TO keep the transaction and its mode.
 * COMMIT and ROLLBACK (AND CHAIN or not) end it: they change nothing a
 * read-only caller could have written, and policy decides a message's
 * statements together, so a COMMIT cannot let a later write in the same
 * message through. (A proxy that also enforces read-only mode on the server
 * must do it per session, with default_transaction_read_only, which only
 * the read_write statements can change; not by wrapping messages in BEGIN
 * READ ONLY, which a COMMIT ends.) The two-phase commands act on prepared
 * transactions, possibly other sessions': not read-only.
 */
export function transactionReadonly(body: Json): boolean {
  switch (body.kind) {
    case 'TRANS_STMT_BEGIN':
    case 'TRANS_STMT_START':
      return !asksReadWrite(body.options);
    case 'TRANS_STMT_SAVEPOINT':
    case 'TRANS_STMT_RELEASE':
    case 'TRANS_STMT_ROLLBACK_TO':
    case 'TRANS_STMT_COMMIT':
    case 'TRANS_STMT_ROLLBACK':
      return true;
    default:
      return false;
  }
}

/** BEGIN / START TRANSACTION … READ WRITE. */
export function transactionReadWrite(body: Json): boolean {
  return (body.kind === 'TRANS_STMT_BEGIN' || body.kind === 'TRANS_STMT_START') && asksReadWrite(body.options);
}

/** A `transaction_read_only` option other than 1 (READ WRITE is 0, which the JSON omits). */
function asksReadWrite(options: unknown): boolean {
  if (!Array.isArray(options)) return false;
  return options.some((option) => {
    const def = (option as Json | undefined)?.DefElem as Json | undefined;
    if (def?.defname !== 'transaction_read_only') return false;
    const ival = ((def.arg as Json | undefined)?.A_Const as Json | undefined)?.ival as Json | undefined;
    return ival?.ival !== 1;
  });
}

/** The settings that decide whether a transaction may write. */
const READ_ONLY_SETTINGS = new Set(['transaction_read_only', 'default_transaction_read_only']);

/** Values PostgreSQL reads as true, as settingValue reports them; anything else might be false. */
const TRUE_VALUES = new Set(['on', 'true', 'yes', '1']);

/**
 * Whether a SET / RESET (VariableSetStmt) can turn read-only mode off:
 * SET TRANSACTION / SESSION CHARACTERISTICS … READ WRITE; SET of
 * transaction_read_only or default_transaction_read_only to anything but a
 * plain true value (TO DEFAULT and FROM CURRENT may be off); RESET of
 * either; RESET ALL.
 */
export function readWriteSetting(body: Json): boolean {
  if (body.kind === 'VAR_RESET_ALL') return true;
  if (body.kind === 'VAR_SET_MULTI') return asksReadWrite(body.args);
  const name = typeof body.name === 'string' ? body.name.toLowerCase() : '';
  if (!READ_ONLY_SETTINGS.has(name)) return false;
  if (body.kind !== 'VAR_SET_VALUE') return true;
  const value = settingValue(body);
  return value === undefined || !TRUE_VALUES.has(value);
}

/**
 * The value of `SET name = <one constant>`, lowercase: a string, identifier
 * or keyword as written, a number as its digits. undefined for anything
 * else (lists, DEFAULT, FROM CURRENT, intervals, SET TRANSACTION …).
 */
export function settingValue(body: Json): string | undefined {
  if (body.kind !== 'VAR_SET_VALUE' || !Array.isArray(body.args) || body.args.length !== 1) return undefined;
  const constant = (body.args[0] as Json | undefined)?.A_Const as Json | undefined;
  if (!isObject(constant)) return undefined;
  const str = (constant.sval as Json | undefined)?.sval;
  if (typeof str === 'string') return str.toLowerCase();
  if (isObject(constant.ival)) return String(typeof constant.ival.ival === 'number' ? constant.ival.ival : 0);
  const fval = (constant.fval as Json | undefined)?.fval;
  if (typeof fval === 'string') return fval.toLowerCase();
  if (isObject(constant.boolval)) return constant.boolval.boolval === true ? 'true' : 'false';
  return undefined;
}

/**
 * Whether an EXPLAIN runs its statement: an `analyze` option that is absent
 * or not clearly false. Values PostgreSQL reads as false: false/off/no/0.
 */
export function explainAnalyzes(options: unknown): boolean {
  if (!Array.isArray(options)) return false;
  return options.some((option) => {
    const def = (option as Json | undefined)?.DefElem as Json | undefined;
    if (def?.defname !== 'analyze') return false;
    const arg = def.arg as Json | undefined;
    if (arg === undefined) return true;
    const str = (arg.String as Json | undefined)?.sval;
    if (typeof str === 'string') return !['false', 'off', 'no', '0', 'of', 'n', 'f'].includes(str.toLowerCase());
    if (isObject(arg.Integer)) return arg.Integer.ival !== undefined && arg.Integer.ival !== 0;
    if (isObject(arg.Boolean)) return arg.Boolean.boolval === true;
    return true; // something unexpected: assume it runs
  });
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null;
}
