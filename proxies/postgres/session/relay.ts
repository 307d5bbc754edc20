/**
 * A logged-in session: client messages are decided and forwarded, server
 * messages are relayed back, masked where the decision says so. The server's
 * bytes are forwarded as they came except DataRows of masked columns and
 * error texts of masked statements; what the proxy says itself (denials)
 * is queued in PendingResponses so it lands where the server's answer would.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { serialize } from 'pg-protocol';
import type { MaskCount } from '../../../engine/audit/events.js';
import { UNENFORCEABLE, type AuthorizeResult } from '../../../engine/authorize/authorizer.js';
import type { HashKey } from '../../../engine/masking/strategies.js';
import type { ColumnHistory } from '../masking/column-history.js';
import type { MaskRule } from '../../../engine/policy/decision.js';
import { MaskPlans, type Catalog, type ResultMasking } from '../masking/result-masking.js';
import { boundValues } from '../policy/bound-values.js';
import type { DecideOptions, Protocol, StatementDecider, StatementDecision } from '../policy/statement-decider.js';
import { decodeCommandTag, decodeError, decodeParameterStatus, decodeRowDescription, type Field } from '../protocol/backend-decode.js';
import { BackendFramer, BackendMessageTooLarge } from '../protocol/backend-framer.js';
import { errorResponse, noticeResponse, type ErrorFields, type TransactionStatus } from '../protocol/backend-writer.js';
import { formatAt, type Bind, type FormatCode, type FrontendMessage, type FunctionCall } from '../protocol/frontend-messages.js';
import type { StatementFacts } from '../sql/analyse.js';
import { callsSetConfig, readingChange, sessionChangeBeyondApproval, unreadableSetting } from '../sql/reading-settings.js';
import { changesCatalog, changesResolution, copiesFromClient, readsThroughCatalog } from '../sql/statement-effects.js';
import { PendingResponses, type Pending } from './pending-responses.js';
import type { CountedMapLimits } from './counted-map.js';
import { Portals } from './portals.js';
import { PreparedStatements } from './prepared-statements.js';
import { SqlNames } from './sql-names.js';
import { SqlPrepared } from './sql-prepared.js';
import { serverName } from './server-name.js';
import type { DecidedSql, Portal, PreparedStatement, RunningStatement } from './statement-state.js';
import type { LiteralSettings } from './literal-settings.js';

/** A finished statement, as the session recording keeps it (never row values). */
export interface StatementRecord {
  sql: string;
  decision: 'allow' | 'deny' | 'approve';
  reasons: string[];
  decisionId: string;
  audit: { stream: string; seq: number } | null;
  approvalId: string | null;
  durationMs: number;
  rows: number | null;
  commandTag: string | null;
  error: { sqlstate: string; message: string } | null;
  masked: MaskCount[];
}

export interface RelayOptions {
  decider: StatementDecider;
  catalog: Catalog;
  /** Where masked columns have been found in the target's database, as the catalog names it (column-history.ts). */
  columnHistory(databaseId: string): ColumnHistory;
  /** Keys the "hash" mask strategy, so hashes cannot be reversed by hashing guesses. */
  hashKey: HashKey;
  logger: Logger;
  statusUrl(approvalId: string): string;
  /** Called once per finished statement (allowed or denied). */
  onStatement(record: StatementRecord): void;
  /** Where CancelRequests for this session go (the upstream server's own key). */
  cancelUpstream(): void;
  /** Called when either side closes; the session tears down the other. */
  onEnd(reason: string): void;
  /** When the login token expires (ms since the epoch); the session ends at its next statement after that. */
  expiresAtMs: number | null;
  /** Ends the session because the token expired (audited by the session). */
  onExpired(): Promise<void>;
  /** The session's literal-reading settings, which the relay keeps as the server reports them. */
  settings: LiteralSettings;
  /** listeners.postgres.max_server_message_bytes: a larger row (or any message) from the database ends the session. */
  maxServerMessageBytes: number;
  /** listeners.postgres.max_prepared_statements and max_prepared_statement_bytes: a Parse past them is refused. */
  preparedStatementLimits: CountedMapLimits;
  /** listeners.postgres.max_portals and max_prepared_statement_bytes: a Bind past them is refused. */
  portalLimits: CountedMapLimits;
  /** listeners.postgres.max_sql_names: SQL cursor and statement names whose policy revision the session keeps. */
  maxSqlNames: number;
}

const INSUFFICIENT_PRIVILEGE = '42501';
/** A session limit of the gateway's (as for its message limits): the client sees it is not a matter of privilege. */
const PROGRAM_LIMIT_EXCEEDED = '54000';

/**
 * What the server gets in place of a denied statement: it fails in parse
 * analysis and touches nothing, so the server's transaction state follows
 * the denial as it follows any error (an open transaction block is aborted,
 * and COMMIT rolls back). The client sees the denial, not this error.
 */
const DENIED_STAND_IN = "SELECT 'gatehouse denied the statement'::pg_catalog.int4";
/** A statement and portal name no client uses: binding or executing it is the stand-in for a denied Bind or Execute. */
const NO_SUCH_STATEMENT = 'gatehouse: denied';
/** Sent once, before the first statement of a caller that may only read (the decision's `read_only`). */
const READ_ONLY_ON_SERVER = serialize.query('SET default_transaction_read_only = on');

const CODE = {
  parseComplete: 0x31, bindComplete: 0x32, closeComplete: 0x33,
  dataRow: 0x44, rowDescription: 0x54, noData: 0x6e, parameterDescription: 0x74,
  commandComplete: 0x43, portalSuspended: 0x73, emptyQuery: 0x49, ready: 0x5a,
  error: 0x45, notice: 0x4e, parameterStatus: 0x53, notification: 0x41, copyIn: 0x47,
} as const;

export class Relay {
  private readonly pending = new PendingResponses();
  private readonly statements: PreparedStatements;
  private readonly portals: Portals;
  private readonly framer: BackendFramer;
  private readonly maskPlans: MaskPlans;
  private status: TransactionStatus = 'I';
  /** Extended-protocol messages went to the server since the last Sync: an implicit transaction may be open. */
  private extendedOpen = false;
  /** The proxy turned the server's read-only mode on for this session. */
  private readOnlyOnServer = false;
  /** A statement decided without `read_only` went to the server first (see serverIdle). */
  private ranBeforeReadOnly = false;
  /** The proxy denied a message of this extended-protocol batch: the rest, up to Sync, is not run. */
  private discarding = false;
  /** The server reported an error before the batch's Sync was forwarded: it ignores what follows up to Sync. */
  private serverSkipping = false;
  /**
   * Bumped by SQL that can change which table a name in a statement
   * resolves to (CREATE, DROP, ALTER, SET search_path, DISCARD, CALL …):
   * PostgreSQL then plans a prepared statement again, maybe against another
   * table. A portal's rows are masked only by a description from the epoch
   * they run in.
   */
  private epoch = 0;
  /** The mask plan of the session's last masked statement: what scrubs a Sync's errors (see scrub). */
  private lastMasking: ResultMasking | null = null;
  /** SQL that changes name resolution ran since the server was last idle (see readyForQuery). */
  private resolutionChangedInTransaction = false;
  /** Of that, SQL that changes what the catalog holds (DDL, search_path, the role): uncommitted, the catalog cannot see it. */
  private catalogChangedInTransaction = false;
  /**
   * Messages that run SQL (Query, Execute, FunctionCall), numbered as sent;
   * the last one answered; the last one answered before a ReadyForQuery.
   * The server reports changed settings (ParameterStatus) only just before
   * ReadyForQuery, and anything run can change them (SET, SET LOCAL undone
   * by ROLLBACK, a function's set_config): the settings the relay holds are
   * the ones the next statement runs under only when every message sent
   * that ran SQL has been followed by a ReadyForQuery.
   */
  private executionsSent = 0;
  private executionsAnswered = 0;
  private executionsSettled = 0;
  /** The first change to the session, since it began, that changes what statements do and that an approval cannot show. */
  private sessionChangedBy: string | null = null;
  /**
   * Aborts the decision in progress (a wait for approval ends with a deny).
   * Kept from one decision to the next until it is used: most decisions never
   * wait, and a controller per statement is a measurable cost.
   */
  private stopDeciding = new AbortController();
  /** Cursors and prepared statements made with SQL DECLARE and PREPARE, and the policy revision they were decided under. */
  private readonly sqlNames: SqlNames;
  private readonly sqlPrepared: SqlPrepared;
  /** A statement the proxy waits on before the next client message (settledIfNeeded). */
  private awaiting: { entry: Pending; copiesIn: boolean; settle(): void } | null = null;
  /** The server is taking COPY … FROM data: the client's Sync and Flush are ignored, and owed nothing. */
  private copyingIn = false;
  private deciding = false;
  private waitingForHuman = false;
  private ended = false;

  constructor(
    private readonly client: Socket,
    private readonly upstream: Socket,
    private readonly options: RelayOptions,
  ) {
    this.maskPlans = new MaskPlans(options.catalog, options.hashKey, options.columnHistory);
    this.statements = new PreparedStatements(options.preparedStatementLimits);
    this.portals = new Portals(options.portalLimits);
    this.sqlNames = new SqlNames(options.maxSqlNames);
    this.sqlPrepared = new SqlPrepared(options.preparedStatementLimits.maxBytes);
    this.framer = new BackendFramer(options.maxServerMessageBytes);
    upstream.on('data', (chunk: Buffer) => this.fromServer(chunk));
    upstream.on('close', () => this.end('the database closed the connection'));
    upstream.on('error', (err) => this.end(`database connection error: ${err.message}`));
  }

  /** A CancelRequest with this session's key: ends a wait for approval, and cancels what the server is running. */
  cancel(): void {
    // While a statement waits for a human the server runs nothing of this session's: cancelling
    // it there could only hit the next statement.
    if (this.deciding) this.stopDeciding.abort();
    if (!this.waitingForHuman) this.options.cancelUpstream();
  }

  end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    if (this.deciding) this.stopDeciding.abort();
    this.upstream.destroy();
    this.options.onEnd(reason);
  }

  // ── client → server ───────────────────────────────────────────────────

  fromClient(message: FrontendMessage, raw: Buffer): Promise<void> | void {
    switch (message.type) {
      case 'query':
        return this.query(message.sql, raw);
      case 'parse': {
        // Open once decided: the read-only guard (decide) asks whether a batch was open before this Parse.
        if (this.discarding) {
          this.extendedOpen = true;
          return;
        }
        // The stand-ins fail because nothing has their name: a client's statement must not take it.
        if (message.name === NO_SUCH_STATEMENT) return this.refuseUndecided(`the statement name "${NO_SUCH_STATEMENT}" is the gateway's own`, serialize.bind({ statement: NO_SUCH_STATEMENT }));
        const overCap = this.statements.overCap(message);
        if (overCap) return this.refuseOverCap(`Parse of statement "${message.name}"`, overCap);
        return this.parse(message.name, message.sql, message.paramTypes, raw);
      }
      case 'bind': {
        this.extendedOpen = true;
        if (this.discarding) return;
        // A statement prepared while the token was valid runs again at every Bind and Execute: not after it expired.
        if (this.tokenExpired()) return this.options.onExpired();
        if (message.portal === NO_SUCH_STATEMENT) return this.refuseUndecided(`the portal name "${NO_SUCH_STATEMENT}" is the gateway's own`, serialize.bind({ statement: NO_SUCH_STATEMENT }));
        const statement = this.statements.get(message.statement);
        // The server may know the name from SQL PREPARE, which decided a PREPARE, not what runs now.
        if (!statement) return this.refuseUndecided(`statement "${message.statement}" was not prepared through the extended protocol in this session`, serialize.bind({ statement: NO_SUCH_STATEMENT }));
        // Before approval is asked: no one is asked about a Bind that would not run.
        const overCap = this.portals.overCap({ name: message.portal });
        if (overCap) return this.refuseOverCap(`Bind of portal "${message.portal}"`, overCap);
        // Approval was left for the Bind: only now are the values known that the approver must see. And a
        // decision made under a bundle since replaced (new masks, a grant taken away) no longer stands.
        if (statement.decision.action === 'approve' || statement.decidedUnder !== this.options.decider.policyRevision()) {
          return this.bindDecidedAgain(message, statement, raw);
        }
        if (statement.masking?.expired()) return this.bindRemasked(message, statement, raw);
        this.bind(message.portal, statement, message.resultFormats, raw);
        return;
      }
      case 'describe': {
        this.extendedOpen = true;
        if (this.discarding) return;
        const portal = message.target === 'P' ? this.portals.get(message.name) ?? null : null;
        // The client's own Describe tells the proxy the columns too: no need to ask again at Execute.
        // Not when the server is skipping to Sync: it will not answer.
        if (portal && !this.serverSkipping) portal.describedIn = this.epoch;
        this.forward(raw, {
          kind: 'describe',
          statement: message.target === 'S' ? this.statements.get(message.name) ?? null : null,
          portal,
          internal: false,
          epoch: this.epoch,
        });
        return;
      }
      case 'execute':
        this.extendedOpen = true;
        if (this.discarding) return;
        if (this.tokenExpired()) return this.options.onExpired();
        return this.execute(message.portal, raw);
      case 'close':
        this.extendedOpen = true;
        if (this.discarding) return;
        // Skipped by the server after an error in the batch, the Close leaves the name as it was.
        this.letGo(message.target === 'S' ? 'statement' : 'portal', message.name);
        // SQL reads named portals and statements too (FETCH … FROM p, EXECUTE s): one bound to read this name must
        // not run on what takes the name next.
        if (message.name !== '') this.epoch++;
        this.forward(raw, { kind: 'closeComplete' });
        return;
      case 'sync':
        // The server ignores a Sync during COPY IN; and if the COPY has just failed, it would answer one nobody
        // is owed. Not sent at all.
        if (this.copyingIn) return;
        this.extendedOpen = false;
        this.discarding = false;
        this.serverSkipping = false;
        this.forward(raw, { kind: 'ready', running: null, sync: true });
        return;
      case 'flush':
        if (!this.discarding && !this.copyingIn) this.upstream.write(raw);
        return;
      case 'functionCall':
        return this.functionCall(message, raw);
      case 'copyData':
        // Part of a COPY FROM STDIN that was decided as a statement.
        this.upstream.write(raw);
        return;
      case 'copyDone':
      case 'copyFail':
        this.copyingIn = false;
        this.upstream.write(raw);
        return;
      case 'terminate':
        this.upstream.end(raw);
        this.end('the client ended the session');
        return;
      default:
        throw new ProtocolMisuse(`unexpected ${message.type} message during a session`);
    }
  }

  private async query(sql: string, raw: Buffer): Promise<void> {
    if (sql.trim() === '') {
      // Runs nothing; the server answers EmptyQueryResponse.
      this.forward(raw, { kind: 'ready', running: null });
      return;
    }
    const decided = await this.decide(sql, 'simple');
    if (!decided) return;
    if (decided.decision.action !== 'allow') {
      this.refuse(decided, false, serialize.query(DENIED_STAND_IN));
      return;
    }
    const entry: Pending = { kind: 'ready', running: running(decided) };
    this.replaces(decided.statements, entry, decided.decidedUnder);
    this.forward(raw, entry);
    return this.settledIfNeeded(decided.statements, entry);
  }

  /**
   * Statements after which the proxy handles no other client message until
   * the server has answered: COPY … FROM (until the server takes the copy
   * data, or the statement ends: a Sync or Flush sent during the copy is
   * ignored by the server, so it must not be owed an answer), and calls of
   * set_config (which can change how the server reads the next statement;
   * the ParameterStatus it reports comes first).
   */
  private settledIfNeeded(statements: readonly StatementFacts[], entry: Pending): Promise<void> | void {
    const copiesIn = statements.some(copiesFromClient);
    const setsConfig = statements.some(callsSetConfig);
    // Not sent on (the server skips to Sync after an error): nothing will answer it.
    if ((!copiesIn && !setsConfig) || this.serverSkipping) return;
    return new Promise<void>((settle) => {
      this.awaiting = { entry, copiesIn, settle };
    });
  }

  /**
   * What SQL about to run changes on the server. Creating or dropping a
   * prepared statement or cursor (PREPARE, DEALLOCATE, DECLARE, CLOSE,
   * DISCARD ALL) changes what the name stands for: the proxy's own entry
   * of that name, decided for other SQL, is dropped, so a Bind or Execute
   * of the name is refused as undecided. SQL that can change name
   * resolution starts a new epoch.
   */
  private replaces(statements: readonly StatementFacts[], entry: Extract<Pending, { kind: 'ready' | 'execute' }>, decidedUnder: string | null): void {
    // Not sent on when the server skips to Sync: it runs nothing, and nothing will answer it.
    if (!this.serverSkipping) entry.execution = ++this.executionsSent;
    for (const statement of statements) {
      if (!this.serverSkipping) this.sessionChangedBy ??= sessionChangeBeyondApproval(statement);
      if (changesResolution(statement)) {
        this.epoch++;
        this.resolutionChangedInTransaction = true;
        if (changesCatalog(statement)) this.catalogChangedInTransaction = true;
      }
      const names = statement.session_names;
      if (!names) continue;
      // What the protocol made under the name first: a DECLARE or PREPARE of it fails on the server, which keeps
      // the protocol's, and a CLOSE or DEALLOCATE may never run.
      for (const name of names.statement === '*' ? [...this.statements.keys()] : names.statement !== undefined ? [names.statement] : []) {
        this.letGo('statement', name);
      }
      for (const name of names.portal === '*' ? [...this.portals.keys()] : names.portal !== undefined ? [names.portal] : []) {
        this.letGo('portal', name);
      }
      this.sqlNames.replaces(statement, decidedUnder);
      this.sqlPrepared.replaces(statement);
    }
  }

  /**
   * Drops the relay's entry of a named statement or portal before the server
   * is known to have dropped or replaced it, keeping what it was in the
   * session's SQL names: SQL FETCH, MOVE and EXECUTE reach it under its name
   * still, if the server kept it (a DEALLOCATE after an error, a Parse of a
   * name the server holds), and are judged by it too.
   */
  private letGo(kind: 'portal' | 'statement', name: string): void {
    const statement = kind === 'portal' ? this.portals.get(name)?.statement : this.statements.get(name);
    if (statement) this.keepForSql(kind, name, statement);
    (kind === 'portal' ? this.portals : this.statements).delete(name);
  }

  /** What a named statement or portal the relay lets go of may still be on the server, for SQL that names it. */
  private keepForSql(kind: 'portal' | 'statement', name: string, statement: PreparedStatement): void {
    if (name === '') return; // SQL cannot name the unnamed statement or portal
    this.sqlNames.note(kind, name, statement.decidedUnder);
    if (kind === 'statement') this.sqlPrepared.note(name, statement.statements);
  }

  /**
   * Each prepared statement and portal is held until it is let go: a Parse
   * or Bind past the session's caps (`overCap`) is refused before it is
   * decided, and the client can free room (Close, DEALLOCATE, the end of a
   * portal's transaction) and go on.
   */
  private refuseOverCap(what: string, overCap: string): Promise<void> {
    return this.refuseExtended(`${what} over a session cap`, `${what} refused: ${overCap}`, serialize.bind({ statement: NO_SUCH_STATEMENT }), PROGRAM_LIMIT_EXCEEDED);
  }

  private async parse(name: string, sql: string, paramTypes: number[], raw: Buffer): Promise<void> {
    // Preparing runs nothing: a statement that needs approval is asked about at each Bind, with its values.
    const decided = await this.decide(sql, 'extended', { approvalLater: true });
    this.extendedOpen = true;
    if (!decided) return;
    if (decided.decision.action === 'deny') {
      // Flush: a client that sent Parse and Flush waits for the answer before its Sync.
      this.refuse(decided, true, Buffer.concat([serialize.parse({ name, text: DENIED_STAND_IN }), serialize.flush()]));
      this.discarding = true;
      return;
    }
    // Entered before the server answers (a Bind may follow at once); undone if the server does not prepare it
    // (extendedError): a name it already holds (42P05) keeps what it stands for there, whatever this Parse said.
    const previous = this.statements.get(name);
    // Until the server answers, SQL EXECUTE may run either.
    if (previous) this.keepForSql('statement', name, previous);
    // The server reads the statement's constants now, under the settings of now (if the relay knows them).
    const preparedUnder = this.settingsKnown() ? this.options.settings.key : null;
    if (!this.serverSkipping) this.statements.set(name, { ...decided, name, paramTypes, preparedUnder, columns: null, columnsIn: -1 });
    this.forward(raw, { kind: 'parseComplete', name, previous });
  }

  /**
   * A Query sent now runs outside any transaction: none was open at the last
   * ReadyForQuery, and no extended batch is open (its messages may hold an
   * implicit one until Sync). What is still in flight cannot open one
   * either, as long as nothing this session decided to run has gone ahead
   * of read-only mode: until then only stand-ins of denied statements,
   * which fail, and Syncs were forwarded.
   */
  private serverIdle(): boolean {
    return this.status === 'I' && !this.extendedOpen && (this.pending.empty || !this.ranBeforeReadOnly);
  }

  /**
   * Defence in depth for a caller that may only read: the analyser sees a
   * call of a function defined in the database as a read, whatever the
   * function does; in a read-only transaction the server refuses its
   * writes. Sent before the first statement the decision marks `read_only`,
   * even behind denied statements still in flight; once per session, since
   * such a caller's statements cannot turn it off (policy denies what can,
   * the analyser's read_write statements). Waits for the server's answer,
   * so the statement never runs unguarded; if the server refuses, the
   * session ends.
   */
  private async turnOnReadOnly(): Promise<void> {
    const error = await new Promise<Buffer | null>((settle) => this.forward(READ_ONLY_ON_SERVER, { kind: 'setting', settle, error: null }));
    if (error) throw new Error(`the database refused read-only mode for a read-only caller: ${decodeError(error).message}`);
    this.readOnlyOnServer = true;
  }

  /**
   * A Bind decided again, with its values: a statement policy wants
   * approved (this Bind is what a human approves and what runs once), or
   * one prepared under a policy bundle that has since been replaced.
   */
  private async bindDecidedAgain(bind: Bind, statement: PreparedStatement, raw: Buffer): Promise<void> {
    const decided = await this.decide(statement.sql, 'extended', {
      facts: statement.statements,
      parameters: boundValues(bind.params, bind.paramFormats, statement.paramTypes),
      preparedUnder: statement.preparedUnder,
    });
    if (!decided) return;
    if (decided.decision.action !== 'allow') return this.refuseBind(decided);
    // The portal runs under this decision (its approval, its mask plan), not the Parse's.
    const now: PreparedStatement = { ...statement, ...decided, columns: null, columnsIn: -1 };
    // Kept for the next Binds unless it was an approval, which is spent once.
    if (decided.approvalId === null && this.statements.get(statement.name) === statement) this.statements.set(statement.name, now);
    this.bind(bind.portal, now, bind.resultFormats, raw);
  }

  /**
   * The server plans a prepared statement again at a Bind when the schema
   * changed: one whose mask plan is no longer trusted (Catalog.trustedUntil, or
   * another connection's DDL found) is checked again against the catalog as
   * it is now, and its columns described afresh before rows are masked.
   */
  private async bindRemasked(bind: Bind, statement: PreparedStatement, raw: Buffer): Promise<void> {
    const { decision, statements } = statement;
    let prepared: Awaited<ReturnType<MaskPlans['prepare']>>;
    try {
      prepared = await this.prepareMasking(decision.mask, statements);
    } catch (err) {
      // As the authorizer does when a decision's masking cannot be prepared: denied, and audited.
      this.options.logger.error({ err }, 'masking could not be checked again at a Bind; denying');
      prepared = { refusal: UNENFORCEABLE };
    }
    if (this.ended) return;
    if ('refusal' in prepared) {
      const decided = await this.deniedByProxy(statement.sql, 'extended', statements, prepared.refusal);
      if (decided) this.refuseBind(decided);
      return;
    }
    statement.masking = this.remember(prepared.masking);
    statement.columns = null;
    statement.columnsIn = -1;
    this.bind(bind.portal, statement, bind.resultFormats, raw);
  }

  /**
   * What the statements' SQL EXECUTEs run, to be checked against the masks
   * with them, and at a Bind checked again (bindRemasked): the protocol's
   * statement of the name and everything else it may stand for on the
   * server (sql-prepared.ts: each SQL PREPARE of it, each protocol
   * statement of it let go). A name the session never prepared adds
   * nothing: EXECUTE of it fails on the server. Why not, when what a name
   * may run was not kept.
   */
  private executedStatements(statements: readonly StatementFacts[]): readonly StatementFacts[] | string {
    const executed: StatementFacts[] = [];
    for (const { executes: name } of statements) {
      if (name === undefined) continue;
      const viaSql = this.sqlPrepared.preparedAs(name);
      if (viaSql === null) {
        return `the gateway does not know what prepared statement "${name}" runs (it keeps what SQL PREPARE made up to `
          + 'listeners.postgres.max_prepared_statement_bytes), so cannot check it against the masks; prepare it again under another name, or in a new session';
      }
      executed.push(...(this.statements.get(name)?.statements ?? []), ...(viaSql ?? []));
    }
    return executed;
  }

  /** MaskPlans.prepare for the statements and what their SQL EXECUTEs run. */
  private prepareMasking(rules: readonly MaskRule[], statements: readonly StatementFacts[]): ReturnType<MaskPlans['prepare']> {
    const executed = this.executedStatements(statements);
    if (typeof executed === 'string') return Promise.resolve({ refusal: executed });
    return this.maskPlans.prepare(rules, executed.length === 0 ? statements : [...statements, ...executed], this.uncommittedChange(statements));
  }

  /** Binding a statement that does not exist fails on the server with no side effect, like the Parse stand-in. */
  private refuseBind(decided: DecidedSql): void {
    this.refuse(decided, true, Buffer.concat([serialize.bind({ statement: NO_SUCH_STATEMENT }), serialize.flush()]));
    this.discarding = true;
  }

  private bind(portalName: string, statement: PreparedStatement, formats: readonly FormatCode[], raw: Buffer): void {
    const portal: Portal = { name: portalName, statement, rows: null, describedIn: null, boundIn: this.epoch };
    if (statement.masking && statement.columns && statement.columnsIn === this.epoch && !readsNamedResult(statement)) {
      portal.rows = statement.masking.forColumns(inFormats(statement.columns, formats));
      portal.describedIn = this.epoch;
    }
    // As for a Parse: undone if the server does not create the portal (a cursor of that name exists, 42P03).
    const previous = this.portals.get(portalName);
    // Until the server answers, SQL FETCH may read either.
    if (previous) this.keepForSql('portal', portalName, previous.statement);
    if (!this.serverSkipping) this.portals.set(portalName, portal);
    this.forward(raw, { kind: 'bindComplete', name: portalName, previous });
  }

  private execute(portalName: string, raw: Buffer): Promise<void> | void {
    const portal = this.portals.get(portalName);
    // A cursor from SQL DECLARE is a portal too: the server would run it undecided and unmasked.
    if (!portal) return this.refuseUndecided(`portal "${portalName}" was not bound through the extended protocol in this session`, serialize.execute({ portal: NO_SUCH_STATEMENT }));
    // Bound under a policy since replaced (a mask added, a grant taken away): its decision no longer stands.
    if (portal.statement.decidedUnder !== this.options.decider.policyRevision()) {
      return this.refuseUndecided(`portal "${portalName}" was bound under a policy that has since been replaced; bind it again`, serialize.execute({ portal: NO_SUCH_STATEMENT }));
    }
    if (portal.statement.masking && portal.boundIn !== this.epoch && readsNamedResult(portal.statement)) {
      // Its columns were set at Bind from what the name stood for then; the rows would come from what it stands for now.
      return this.refuseUndecided(`portal "${portalName}" runs ${portal.statement.statements[0]?.kind.toUpperCase()} of a cursor or prepared statement that may have changed since it was bound; bind it again`,
        serialize.execute({ portal: NO_SUCH_STATEMENT }));
    }
    if (portal.statement.masking && portal.describedIn !== this.epoch) {
      // Masking needs the portal's columns as the server has them now; ask without telling the client.
      portal.describedIn = this.epoch;
      this.forward(serialize.describe({ type: 'P', name: portalName }), { kind: 'describe', statement: null, portal, internal: true, epoch: this.epoch });
    }
    // The portal's row masking is read when its rows come (inExecute), not now: the answer to
    // the Describe ahead of this Execute (the proxy's or the client's) may still be on its way.
    const entry: Pending = { kind: 'execute', running: running(portal.statement), portal };
    // What this Execute changes on the server applies to what follows it, not to itself.
    this.replaces(portal.statement.statements, entry, portal.statement.decidedUnder);
    this.forward(raw, entry);
    return this.settledIfNeeded(portal.statement.statements, entry);
  }

  private async functionCall(call: FunctionCall, raw: Buffer): Promise<void> {
    // Without the catalog the call is still decided (and audited), by its OID alone.
    const name = await this.options.catalog.functionName(call.functionOid).catch(() => null);
    const fact: StatementFacts = { kind: 'function_call', readonly: false, tables: [], functions: [name ?? `oid:${call.functionOid}`] };
    const decided = await this.decide(`-- FunctionCall ${name ?? 'unknown function'} (oid ${call.functionOid})`, 'extended', {
      facts: [fact],
      parameters: boundValues(call.args, call.argFormats),
    });
    if (!decided) return;
    if (decided.decision.action !== 'allow') {
      this.refuse(decided, false, serialize.query(DENIED_STAND_IN));
      return;
    }
    const entry: Pending = { kind: 'ready', running: running(decided) };
    this.replaces([fact], entry, decided.decidedUnder);
    this.forward(raw, entry);
    // set_config by FunctionCall changes settings as a statement calling it does: waited for alike.
    return this.settledIfNeeded([fact], entry);
  }

  /** The denied statement never reaches the server; its stand-in fails there, and the client gets the denial (`code`: its SQLSTATE). */
  private refuse(decided: DecidedSql, extended: boolean, standIn: Buffer, code = INSUFFICIENT_PRIVILEGE): void {
    this.forward(standIn, { kind: 'denied', denial: this.denial(decided, code), extended });
    this.record(decided, Date.now(), null);
  }

  /** A Bind or Execute of something the proxy never decided (or a Parse it will not decide: a name of its own). */
  private refuseUndecided(what: string, standIn: Buffer): Promise<void> {
    return this.refuseExtended(what, `${what}; only statements gatehouse decided run`, standIn, INSUFFICIENT_PRIVILEGE);
  }

  /**
   * A Parse, Bind or Execute the proxy refuses without asking policy: an
   * audited deny (`code` its SQLSTATE), and a stand-in that fails on the
   * server (no such statement or portal) so the rest of the batch is
   * skipped up to Sync, as after any error.
   */
  private async refuseExtended(what: string, reason: string, standIn: Buffer, code: string): Promise<void> {
    const decided = await this.deniedByProxy(`-- ${what}`, 'extended', [], reason);
    // The stand-in is an extended-protocol message too (a refused Parse has not said so yet).
    this.extendedOpen = true;
    if (!decided) return;
    this.refuse(decided, true, Buffer.concat([standIn, serialize.flush()]), code);
    this.discarding = true;
  }

  /** An audited deny of the proxy's own, for a statement policy never saw or whose decision cannot be enforced; null when the session ended meanwhile. */
  private async deniedByProxy(sql: string, protocol: Protocol, statements: StatementFacts[], reason: string): Promise<DecidedSql | null> {
    const result = await this.options.decider.refuse(sql, protocol, statements, reason);
    if (this.ended) return null;
    return { sql, decision: result.decision, decisionId: result.decision_id, audit: auditRef(result), approvalId: null, statements, masking: null, decidedUnder: this.options.decider.policyRevision() };
  }

  /**
   * What changed tables or names where the catalog cannot see it yet, ahead of a statement whose masking
   * reads the catalog: the session's open transaction, or a statement earlier in this message (they run in
   * one implicit transaction); null when nothing did.
   */
  private uncommittedChange(statements: readonly StatementFacts[]): string | null {
    if (this.catalogChangedInTransaction) return statements.some(readsThroughCatalog) ? 'this session\'s open transaction' : null;
    const first = statements.findIndex(changesCatalog);
    return first >= 0 && statements.slice(first + 1).some(readsThroughCatalog) ? `${statements[first]!.kind.toUpperCase()} earlier in this message` : null;
  }

  /** The login token's exp has passed: nothing more runs, and the session ends (onExpired). */
  private tokenExpired(): boolean {
    return this.options.expiresAtMs !== null && Date.now() >= this.options.expiresAtMs;
  }

  /** Decides, with the mask plan prepared before the decision is audited; null when the session ended meanwhile. */
  private async decide(
    sql: string,
    protocol: Protocol,
    options: Pick<DecideOptions, 'facts' | 'parameters' | 'approvalLater'> & { preparedUnder?: string | null } = {},
  ): Promise<DecidedSql | null> {
    if (this.tokenExpired()) {
      await this.options.onExpired();
      return null;
    }
    if (this.stopDeciding.signal.aborted) this.stopDeciding = new AbortController();
    // Before the decision: a reload while it is made leaves it under the older revision, which errs towards deciding again.
    const decidedUnder = this.options.decider.policyRevision();
    this.deciding = true;
    let masking: ResultMasking | null = null;
    let outcome: StatementDecision;
    try {
      outcome = await this.options.decider.decide(sql, protocol, {
        ...options,
        signal: this.stopDeciding.signal,
        onHeld: (approvalId) => {
          this.waitingForHuman = true;
          this.heldNotice(approvalId);
        },
        // What cannot be masked is refused here, so the audit event says deny too.
        enforce: async (decision, statements) => {
          const unreadable = readingChange(statements, decision.mask.some((rule) => rule.column !== undefined));
          if (unreadable) return unreadable;
          if (statements.some(({ session_names: names }) => names?.statement === NO_SUCH_STATEMENT || names?.portal === NO_SUCH_STATEMENT)) {
            return `the name "${NO_SUCH_STATEMENT}" is the gateway's own`;
          }
          if (decision.action === 'approve') {
            const unbound = this.unboundSettings(options.preparedUnder);
            if (unbound) return unbound;
          }
          // Once the client's CopyDone is sent the proxy reads the client again; a second COPY … FROM in the
          // same query would take the client's next messages as copy data the proxy owes answers for.
          if (statements.filter(copiesFromClient).length > 1) {
            return 'send each COPY … FROM STDIN in a query of its own: the gateway follows one copy from the client per query';
          }
          // An approval binds the text it is shown: "EXECUTE s" would approve whatever s is in any session.
          const executes = decision.action === 'approve' ? statements.find((s) => s.executes !== undefined)?.executes : undefined;
          if (executes !== undefined) {
            return `EXECUTE ${executes} needs approval, but an approver would see only the prepared statement's name, not what it runs; send the statement itself`;
          }
          // Approved once, a cursor's query runs again each time the cursor is rewound (FETCH and MOVE are reads).
          if (decision.action === 'approve' && statements.some((s) => s.kind === 'declare')) {
            return 'a cursor over a statement that needs approval could run it again on every rewind; send the statement itself (or read it through an extended-protocol portal)';
          }
          // The rows of COPY … FROM come after the statement (or from a file or program): an approver would see none of them.
          if (decision.action === 'approve' && statements.some(copiesFromClient)) {
            return 'COPY … FROM needs approval, but an approver would see only the statement, not the rows it writes; write them with INSERT instead';
          }
          if (decision.mask.length === 0) return null;
          const stale = this.sqlNames.decidedUnderOtherPolicy(statements, this.options.decider.policyRevision(),
            (kind, name) => (kind === 'portal' ? this.portals.get(name)?.statement : this.statements.get(name))?.decidedUnder);
          if (stale) return stale;
          const prepared = await this.prepareMasking(decision.mask, statements);
          if ('refusal' in prepared) return prepared.refusal;
          masking = prepared.masking;
          return null;
        },
      });
    } finally {
      this.deciding = false;
      this.waitingForHuman = false;
    }
    if (this.ended) return null;
    const { result, statements, parseError } = outcome;
    if (result.decision.action !== 'deny' && !this.readOnlyOnServer) {
      if (result.decision.read_only) {
        // Never run unguarded: where the setting cannot go first, the statement does not go at all.
        if (!this.serverIdle()) {
          return this.deniedByProxy(sql, protocol, statements,
            'read-only mode for a caller that may only read could not be turned on before this statement (a transaction or an extended-protocol batch is open); send it again outside one');
        }
        await this.turnOnReadOnly();
        if (this.ended) return null;
      } else {
        this.ranBeforeReadOnly = true;
      }
    }
    return {
      sql,
      errorPosition: parseError?.position,
      decision: result.decision,
      decisionId: result.decision_id,
      audit: auditRef(result),
      approvalId: result.approval?.id ?? null,
      statements,
      masking: result.decision.action === 'allow' ? this.remember(masking) : null,
      decidedUnder,
    };
  }

  /**
   * Why an approval asked now could not bind the settings the statement
   * would run under, or null. An approver reads the statement with the
   * session's DateStyle, IntervalStyle and TimeZone next to it, and
   * assumes every other setting at its default. `preparedUnder`: for a
   * Bind, the settings its Parse was read under (the server reads a
   * statement's constants at Parse), null if they were not known then.
   */
  private unboundSettings(preparedUnder?: string | null): string | null {
    if (this.sessionChangedBy !== null) {
      return `the statement needs approval, but this session changed ${this.sessionChangedBy}, which changes what statements do and which an approval cannot show: ask for it in a session that has not`;
    }
    if (!this.settingsKnown()) {
      return 'the statement needs approval, but a statement sent before it has not been answered up to ReadyForQuery and may have changed DateStyle, IntervalStyle or TimeZone (the server reports them only then), so the approval could not bind the values it would run under: send it once the earlier ones are done';
    }
    if (preparedUnder !== undefined && preparedUnder !== this.options.settings.key) {
      return 'the statement needs approval, but it was prepared (its constants read) under other DateStyle, IntervalStyle or TimeZone than now, which the approval would show: prepare it again';
    }
    return null;
  }

  /** The settings the relay holds are the ones the next statement runs under (see executionsSent). */
  private settingsKnown(): boolean {
    return this.executionsSettled === this.executionsSent;
  }

  private heldNotice(approvalId: string): void {
    this.client.write(noticeResponse({
      severity: 'NOTICE',
      code: '00000',
      message: `statement held for approval ${approvalId}; it runs once a human approves it`,
      hint: `follow it at ${this.options.statusUrl(approvalId)}; cancelling the query (Ctrl-C) withdraws it`,
    }));
  }

  private denial(decided: DecidedSql, code: string): Buffer {
    const fields: ErrorFields = {
      severity: 'ERROR',
      code,
      message: `gatehouse denied the statement: ${decided.decision.reasons.join('; ') || 'no reason given'}`,
      detail: `decision ${decided.decisionId}`,
      position: decided.errorPosition,
    };
    if (decided.approvalId) fields.hint = `approval ${decided.approvalId}: ${this.options.statusUrl(decided.approvalId)}`;
    return errorResponse(fields);
  }

  private forward(raw: Buffer, expect: Pending): void {
    this.upstream.write(raw);
    if (!this.serverSkipping) this.pending.push(expect);
  }

  // ── server → client ───────────────────────────────────────────────────

  private fromServer(chunk: Buffer): void {
    this.client.cork();
    try {
      this.framer.push(chunk, (code, message) => this.serverMessage(code, message));
    } catch (err) {
      // A row the proxy cannot read (or mask) is not forwarded: the session ends instead.
      if (err instanceof BackendMessageTooLarge) {
        this.options.logger.warn({ message: String.fromCharCode(err.code), bytes: err.length, limit: err.limit }, 'a message from the database is over max_server_message_bytes; closing the session');
        this.client.write(errorResponse({
          severity: 'FATAL', code: '54000',
          message: `gatehouse ends the session: ${err.message}`,
          hint: 'select less per row, or raise listeners.postgres.max_server_message_bytes',
        }));
        this.end('a message from the database was over max_server_message_bytes');
        return;
      }
      this.options.logger.error({ err }, 'unreadable message from the database; closing the session');
      this.end('unreadable message from the database');
    } finally {
      this.client.uncork();
    }
    // A client that reads slower than the database answers (or not at all) makes the database wait, not the
    // gateway hold the rows: stop reading the database until the client has taken what it was sent.
    if (this.client.writableNeedDrain && !this.upstream.isPaused()) {
      this.upstream.pause();
      this.client.once('drain', () => this.upstream.resume());
    }
  }

  private serverMessage(code: number, message: Buffer): void {
    const head = this.pending.first;
    if (code === CODE.copyIn) {
      // The server's word, whatever the proxy expected: until the COPY ends, a Sync or Flush is not owed an answer.
      this.copyingIn = true;
      if (this.awaiting?.copiesIn) this.settleAwaited();
    } else if (this.copyingIn && (code === CODE.error || code === CODE.commandComplete)) {
      // The COPY has ended on the server (failed, or done); what the client sends now is read as usual.
      this.copyingIn = false;
    } else if (code === CODE.parameterStatus) {
      const { name, value } = decodeParameterStatus(message);
      this.options.settings.report(name, value);
      const unreadable = unreadableSetting(name, value);
      if (unreadable) {
        this.client.write(errorResponse({ severity: 'FATAL', code: '0A000', message: `gatehouse ends the session: ${unreadable}` }));
        this.end(unreadable);
        return;
      }
    }
    // Asynchronous messages can come at any time and answer nothing.
    if (code === CODE.notice || code === CODE.parameterStatus || code === CODE.notification) {
      if (code === CODE.notice) this.client.write(this.scrub(head, message));
      // Sent by any session's NOTIFY, answering no statement: withheld from a caller any of whose statements were masked.
      else if (code === CODE.notification) this.client.write(this.lastMasking?.scrubNotification(message) ?? message);
      else this.client.write(message);
      return;
    }
    if (head === undefined || !canAnswer(head, code)) {
      // An answer to nothing the proxy sent, or one that cannot answer what it sent: it no longer knows which
      // statement (and mask plan) rows belong to. Nothing more is passed on.
      this.options.logger.error({ message: String.fromCharCode(code), awaited: head?.kind ?? null }, 'the database answered what the proxy did not ask; closing the session');
      this.client.write(errorResponse({ severity: 'FATAL', code: '08P01', message: 'gatehouse ends the session: the database answered a message the gateway did not send it' }));
      this.end('the database answered what the proxy did not ask');
      return;
    }
    switch (head.kind) {
      case 'ready':
        this.inReady(head.running, code, message);
        return;
      case 'execute':
        this.inExecute(head.running, head.portal, code, message);
        return;
      case 'describe':
        this.inDescribe(head, code, message);
        return;
      case 'denied':
        this.inDenied(head, code, message);
        return;
      case 'setting':
        this.inSetting(head, code, message);
        return;
      default:
        this.client.write(message);
        if (code === CODE.error) this.extendedError();
        else this.done();
    }
  }

  /** The stand-in's answer: its error becomes the denial; only its ReadyForQuery passes as it is. */
  private inDenied(head: Extract<Pending, { kind: 'denied' }>, code: number, message: Buffer): void {
    if (code === CODE.error) {
      this.client.write(head.denial);
      if (head.extended) this.extendedError();
    } else if (code === CODE.ready && !head.extended) {
      this.readyForQuery(message, head);
      this.client.write(message);
      this.done();
    } else if (head.extended) {
      // Cannot happen (the stand-in always fails); if it did, the client still gets the denial.
      this.client.write(head.denial);
      this.done();
    }
  }

  /** The proxy's own setting: the client never sees its answer. */
  private inSetting(head: Extract<Pending, { kind: 'setting' }>, code: number, message: Buffer): void {
    if (code === CODE.error) head.error = message;
    if (code !== CODE.ready) return;
    this.readyForQuery(message, head);
    this.done();
    head.settle(head.error);
  }

  private inReady(run: RunningStatement | null, code: number, message: Buffer): void {
    if (code === CODE.dataRow) {
      if (run) run.rows++;
      this.client.write(run?.result ? run.result.rewrite(message) : message);
      return;
    }
    if (code === CODE.rowDescription && run?.decided.masking) {
      run.result = run.decided.masking.forColumns(decodeRowDescription(message));
    } else if (code === CODE.commandComplete && run) {
      run.commandTag = decodeCommandTag(message);
      run.result = null;
    } else if (code === CODE.error) {
      this.epoch++; // the transaction is aborted, and with it any table it created
      message = this.scrub(this.pending.first, message);
      if (run) run.error = decodeError(message);
    } else if (code === CODE.ready) {
      this.readyForQuery(message, this.pending.first);
      this.client.write(message);
      if (run) this.record(run.decided, run.startedAt, run);
      this.done();
      return;
    }
    this.client.write(message);
  }

  private inExecute(run: RunningStatement, portal: Portal, code: number, message: Buffer): void {
    if (code === CODE.dataRow) {
      run.rows++;
      this.client.write(portal.rows ? portal.rows.rewrite(message) : message);
      return;
    }
    if (code === CODE.commandComplete || code === CODE.portalSuspended || code === CODE.emptyQuery) {
      if (code === CODE.commandComplete) run.commandTag = decodeCommandTag(message);
      this.client.write(message);
      this.record(run.decided, run.startedAt, run);
      this.done();
      return;
    }
    if (code === CODE.error) {
      message = this.scrub(this.pending.first, message);
      run.error = decodeError(message);
      this.client.write(message);
      this.record(run.decided, run.startedAt, run);
      this.extendedError();
      return;
    }
    this.client.write(message); // COPY traffic
  }

  private inDescribe(head: Extract<Pending, { kind: 'describe' }>, code: number, message: Buffer): void {
    if (!head.internal) this.client.write(message);
    if (code === CODE.error) {
      if (head.internal) this.client.write(message);
      this.extendedError();
      return;
    }
    if (code === CODE.parameterDescription) return; // a statement's Describe: RowDescription or NoData follows
    // NoData is no promise: `FETCH ALL FROM c` describes as NoData before c is declared, and returns rows after.
    if (head.statement?.masking && code === CODE.rowDescription) {
      head.statement.columns = decodeRowDescription(message);
      head.statement.columnsIn = head.epoch;
    }
    if (code === CODE.rowDescription && head.portal) {
      const masking = head.portal.statement.masking;
      head.portal.describedIn = head.epoch;
      head.portal.rows = masking ? masking.forColumns(decodeRowDescription(message)) : null;
    }
    this.done();
  }

  /**
   * A ReadyForQuery: the transaction status it reports. Back to idle, the
   * transaction has ended, and with it its portals and any temporary table
   * created ON COMMIT DROP: after SQL that changed name resolution, a new
   * epoch.
   */
  private readyForQuery(message: Buffer, answering: Pending | undefined): void {
    this.status = String.fromCharCode(message[5]!) as TransactionStatus;
    const execution = answering && 'execution' in answering ? answering.execution ?? 0 : 0;
    this.executionsSettled = Math.max(this.executionsAnswered, execution);
    if (this.status === 'I') this.portalsDropped();
    if (this.status === 'I' && this.resolutionChangedInTransaction) {
      this.resolutionChangedInTransaction = false;
      this.epoch++;
    }
    if (this.status === 'I' && this.catalogChangedInTransaction) {
      this.catalogChangedInTransaction = false;
      // Committed (or rolled back): the catalog now sees what the session sees.
      this.maskPlans.forget();
    }
  }

  /**
   * The server drops a transaction's portals when it ends (a Bind's portal
   * is never holdable), so a client may leave them to that rather than
   * Close them: the relay forgets them too, or such a client would fill
   * max_portals. Not those of Binds sent after the message this
   * ReadyForQuery answers (a pipelining client's next batch, sent before
   * it came): the server has not run them yet. While a Bind is on its way,
   * the entry of its name, if any, is the portal of the latest Bind of that
   * name (entered as it is sent, put back by extendedError only once a Bind
   * has failed): the names of Binds still owed an answer are kept. A portal
   * forgotten too soon would only have its Execute refused, never run
   * under another's decision.
   */
  private portalsDropped(): void {
    if (this.portals.size === 0) return;
    const onTheirWay = new Set<string>();
    for (const entry of this.pending) if (entry.kind === 'bindComplete') onTheirWay.add(serverName(entry.name));
    for (const name of this.portals.keys()) if (!onTheirWay.has(name)) this.portals.delete(name);
  }

  private remember(masking: ResultMasking | null): ResultMasking | null {
    if (masking) this.lastMasking = masking;
    return masking;
  }

  /** The head entry is answered. */
  private done(): void {
    this.answered(this.pending.shift());
  }

  private extendedError(): void {
    // The error aborts the transaction, and with it any table it created.
    this.epoch++;
    const failed = this.pending.shift();
    this.answered(failed);
    const notRun: Array<Extract<Pending, { kind: 'parseComplete' | 'bindComplete' }>> = [];
    if (failed?.kind === 'parseComplete' || failed?.kind === 'bindComplete') notRun.push(failed);
    const synced = this.pending.dropUntilSync((entry) => {
      if (entry.kind === 'parseComplete' || entry.kind === 'bindComplete') notRun.push(entry);
      this.skipped(entry);
    });
    if (!synced) this.serverSkipping = true;
    // Parses and Binds the server did not run, undone last first, so each name ends as the server has it.
    for (const entry of notRun.reverse()) {
      const names: Map<string, PreparedStatement | Portal> = entry.kind === 'parseComplete' ? this.statements : this.portals;
      // A failed Parse or Bind of the unnamed statement or portal may have dropped the one before it: forget it.
      if (entry.previous && entry.name !== '') names.set(entry.name, entry.previous);
      else names.delete(entry.name);
    }
  }

  private answered(entry: Pending | undefined): void {
    if (entry === undefined) return;
    if ('execution' in entry && entry.execution !== undefined) this.executionsAnswered = entry.execution;
    if (entry === this.awaiting?.entry) this.settleAwaited();
  }

  private settleAwaited(): void {
    const awaited = this.awaiting;
    this.awaiting = null;
    awaited?.settle();
  }

  /** What the server ignored after an error in the batch: it ran nothing, and owes no answer. */
  private skipped(entry: Pending): void {
    this.answered(entry);
    if (entry.kind === 'ready' && entry.running) {
      entry.running.error = { sqlstate: '25P02', message: 'not run: the server skipped it after an earlier error in the extended-protocol batch' };
      this.record(entry.running.decided, entry.running.startedAt, entry.running);
    } else if (entry.kind === 'setting') {
      entry.settle(errorResponse({ severity: 'ERROR', code: '25P02', message: 'the server skipped the setting after an earlier error in the batch' }));
    }
  }

  /**
   * Errors and notices of a masked statement can quote a value (`invalid input syntax: "078-05-1120"`). A Sync
   * runs no statement of its own, but its implicit COMMIT can fail on the batch's rows (a deferred unique
   * constraint: `Key (ssn)=(…) already exists`): it is scrubbed as the session's last masked statement was.
   */
  private scrub(head: Pending | undefined, message: Buffer): Buffer {
    const running = head && (head.kind === 'ready' || head.kind === 'execute') ? head.running : undefined;
    const masking = running ? running.decided.masking : this.lastMasking;
    return masking ? masking.scrubMessage(message) : message;
  }

  private record(decided: DecidedSql, startedAt: number, run: RunningStatement | null): void {
    this.options.onStatement({
      sql: decided.sql,
      decision: decided.decision.action,
      reasons: decided.decision.reasons,
      decisionId: decided.decisionId,
      audit: decided.audit,
      approvalId: decided.approvalId,
      durationMs: Date.now() - startedAt,
      rows: run ? rowsOf(run) : null,
      commandTag: run?.commandTag ?? null,
      error: run?.error ?? null,
      masked: decided.masking?.takeCounts() ?? [],
    });
  }
}

/** FETCH and EXECUTE return what a cursor or prepared statement of that name returns when they run. */
function readsNamedResult(statement: DecidedSql): boolean {
  return statement.statements.some((s) => s.kind === 'fetch' || s.kind === 'execute');
}

/**
 * Whether a backend message can be (part of) the answer to `entry`. One
 * that cannot means the proxy and the server are out of step (a message the
 * server ignored was counted as owed an answer): rows would meet the wrong
 * mask plan, or none.
 */
function canAnswer(entry: Pending, code: number): boolean {
  switch (entry.kind) {
    case 'ready':
      // A Sync or an empty query runs nothing: it returns no rows, no copy, no command.
      return entry.running !== null || code === CODE.ready || code === CODE.error || code === CODE.emptyQuery;
    case 'parseComplete':
      return code === CODE.parseComplete || code === CODE.error;
    case 'bindComplete':
      return code === CODE.bindComplete || code === CODE.error;
    case 'closeComplete':
      return code === CODE.closeComplete || code === CODE.error;
    default:
      return true;
  }
}

/** Where a decision's audit event is, for the recording to point at. */
function auditRef({ audit }: AuthorizeResult): DecidedSql['audit'] {
  return audit ? { stream: audit.stream, seq: audit.seq } : null;
}

/** A statement's columns as a Bind with these result format codes returns them (0 codes: all text; 1: all alike). */
function inFormats(columns: readonly Field[], formats: readonly FormatCode[]): Field[] {
  return columns.map((column, i) => ({ ...column, format: formatAt(formats, i) === 1 ? 'binary' : 'text' }) as Field);
}

/** A client broke the protocol in a way the parser cannot see (a message out of place). */
export class ProtocolMisuse extends Error {
  override name = 'ProtocolMisuse';
}

function running(decided: DecidedSql): RunningStatement {
  return { decided, startedAt: Date.now(), rows: 0, commandTag: null, error: null, result: null };
}

/** The count in the command tag ("SELECT 3", "UPDATE 2", "INSERT 0 1") or the rows seen. */
function rowsOf(run: RunningStatement): number {
  const count = run.commandTag?.match(/ (\d+)$/);
  return count ? Number(count[1]) : run.rows;
}
