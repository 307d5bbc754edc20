/**
 * Turns SQL the client sent into one engine decision: statement facts from
 * the real PostgreSQL parser, the `postgres` action of the design brief,
 * and a cache key that lets the engine reuse a decision.
 *
 * The cache key is the statement facts themselves (plus the caller's groups
 * and the session's database and role), not the query fingerprint: the
 * facts are exactly what the policy reads of a statement, and a fingerprint
 * ignores constants that facts can carry (a SET's value, say). Facts are
 * memoised by exact text, so a repeated statement is parsed once; and, when
 * they read no constant, by literal shape, so a statement repeated with
 * other constants inlined (psql, pgbench -M simple, generated SQL) is too.
 */
import type { AuthorizeResult, Authorizer } from '../../../engine/authorize/authorizer.js';
import type { Identity } from '../../../engine/identity/identity.js';
import type { Decision } from '../../../engine/policy/decision.js';
import type { BoundValue } from './bound-values.js';
import { analyseSqlSyncWithShape, SqlAnalysisError, type ShapedAnalysis, type StatementFacts } from '../sql/analyse.js';
import { INLINE_CHARS, type SqlAnalysisThreads } from '../sql/analysis-threads.js';
import { literalShape } from '../sql/literal-shape.js';
import type { LiteralSettings } from '../session/literal-settings.js';

export interface SessionContext {
  target: string;
  database: string;
  role: string;
  identity: Identity;
  sessionId: string;
  sourceIp: string | null;
  /** As the server last reported them: part of every action, and so of what an approval binds. */
  settings: LiteralSettings;
  /** Where text longer than INLINE_CHARS is analysed (absent: on the calling thread, as tests may). */
  analysisThreads?: SqlAnalysisThreads;
}

export type Protocol = 'simple' | 'extended';

export interface StatementDecision {
  result: AuthorizeResult;
  statements: StatementFacts[];
  /** Set when the SQL could not be parsed (the decision is then a deny). */
  parseError?: SqlAnalysisError;
}

export interface DecideOptions {
  facts?: StatementFacts[];
  /** Aborting ends a wait for approval (a CancelRequest); the statement is then denied. */
  signal?: AbortSignal;
  /** Called when the statement starts waiting for a human. */
  onHeld?(approvalId: string): void;
  /** See AuthorizeHooks.enforce: the proxy's last word on an allow, before it is audited. */
  enforce?(decision: Decision, statements: StatementFacts[]): Promise<string | null>;
  /** The values bound to the statement (a Bind): policy input `postgres.parameters`, and part of what an approval binds. */
  parameters?: BoundValue[];
  /** See AuthorizeHooks.approvalLater: a Parse, whose values come with each Bind. */
  approvalLater?: boolean;
}

const MEMO_LIMIT = 2000;
/**
 * Text a session memoises at most, keys and facts counted in characters: a
 * client sending distinct megabyte statements would otherwise make the memo
 * hold gigabytes. A text longer than MEMO_MAX_TEXT is parsed every time.
 */
const MEMO_MAX_CHARS = 4 * 1024 * 1024;
const MEMO_MAX_TEXT = 64 * 1024;
/**
 * Memo keys of literal shapes. Shapes hold NUL markers, and SQL from the
 * wire holds no NUL (it is a C string), so with this prefix a shape key can
 * never equal an exact text, nor the other way round.
 */
const SHAPE_KEY_PREFIX = '\0shape\0';

type Analysed = { facts: StatementFacts[]; key: string } | SqlAnalysisError;

export class StatementDecider {
  /** Exact text, or SHAPE_KEY_PREFIX + literal shape, → analysis. */
  private readonly memo = new Map<string, Analysed>();
  private memoChars = 0;
  private readonly groupsKey: string;

  constructor(
    private readonly authorizer: Pick<Authorizer, 'authorize' | 'refuseInvalid' | 'policyRevision'>,
    private readonly session: SessionContext,
  ) {
    // The policy names the subject only when the caller has no groups (in its reasons): then the subject is part of the key.
    const { groups, sub } = session.identity;
    this.groupsKey = groups.length > 0 ? JSON.stringify([...groups].sort()) : JSON.stringify({ sub });
  }

  /** The revision of the bundle deciding now (Authorizer.policyRevision). */
  policyRevision(): string | null {
    return this.authorizer.policyRevision();
  }

  /**
   * Decides `sql` (one message's worth: all its statements together).
   * `facts` stands in for parsing when the request is not SQL (a FunctionCall).
   */
  async decide(sql: string, protocol: Protocol, options: DecideOptions = {}): Promise<StatementDecision> {
    const pending = options.facts ? { facts: options.facts, key: undefined } : this.analyse(sql);
    // Only long text is analysed on a thread: the common case costs no promise.
    const analysed = pending instanceof Promise ? await pending : pending;
    const { session } = this;
    if (analysed instanceof SqlAnalysisError) {
      // Still a decision with an audit event; policy is not asked about text it could not read.
      const result = await this.refuse(sql, protocol, [], `the SQL could not be parsed: ${analysed.message}`);
      return { result, statements: [], parseError: analysed };
    }
    const result = await this.authorizer.authorize(
      {
        token: undefined,
        identity: session.identity,
        target: session.target,
        action: this.action(sql, protocol, analysed.facts, options.parameters),
        sessionId: session.sessionId,
        sourceIp: session.sourceIp,
        cacheKey: analysed.key === undefined ? undefined : `${protocol}\0${session.settings.key}\0${analysed.key}`,
      },
      {
        signal: options.signal,
        onHeld: options.onHeld ? (approval) => options.onHeld!(approval.id) : undefined,
        enforce: options.enforce ? (decision) => options.enforce!(decision, analysed.facts) : undefined,
        approvalLater: options.approvalLater,
      },
    );
    return { result, statements: analysed.facts };
  }

  /** An audited deny the proxy makes itself, without asking the policy (e.g. an approval already used). */
  refuse(sql: string, protocol: Protocol, statements: StatementFacts[], reason: string): Promise<AuthorizeResult> {
    const { session } = this;
    return this.authorizer.refuseInvalid(
      { token: undefined, identity: session.identity, target: session.target, action: this.action(sql, protocol, statements), sessionId: session.sessionId, sourceIp: session.sourceIp },
      reason,
    );
  }

  private action(text: string, protocol: Protocol, statements: StatementFacts[], parameters?: BoundValue[]) {
    const { database, role } = this.session;
    const settings = this.session.settings.values;
    return { postgres: parameters ? { database, role, protocol, text, statements, settings, parameters } : { database, role, protocol, text, statements, settings } };
  }

  private analyse(sql: string): Analysed | Promise<Analysed> {
    const known = this.memo.get(sql);
    if (known) return known;
    const shape = literalShape(sql);
    // A text without constants is its own shape: the exact entry covers it.
    const shapeKey = shape === null || shape === sql ? undefined : SHAPE_KEY_PREFIX + shape;
    if (shapeKey !== undefined) {
      const sameShape = this.memo.get(shapeKey);
      if (sameShape) return sameShape;
    }
    const threads = this.session.analysisThreads;
    if (threads && sql.length > INLINE_CHARS) {
      // Whatever fails there, the text was not analysed: it is denied, as text the parser refuses.
      return threads.analyse(sql).then((result) => this.keep(sql, shapeKey, result), (error: unknown) => this.keep(sql, shapeKey,
        error instanceof SqlAnalysisError ? error : new SqlAnalysisError(`the gateway could not analyse it: ${(error as Error)?.message ?? String(error)}`, undefined, { cause: error })));
    }
    let result: ShapedAnalysis | SqlAnalysisError;
    try {
      result = analyseSqlSyncWithShape(sql);
    } catch (error) {
      if (!(error instanceof SqlAnalysisError)) throw error;
      result = error;
    }
    return this.keep(sql, shapeKey, result);
  }

  /** Memoises an analysis (its facts, or why there are none) under its text, and its shape when the facts hold for it. */
  private keep(sql: string, shapeKey: string | undefined, result: ShapedAnalysis | SqlAnalysisError): Analysed {
    if (result instanceof SqlAnalysisError) {
      // Never shared by shape: whether a text parses, and where it fails, is its own.
      this.remember(sql, result);
      return result;
    }
    const { database, role } = this.session;
    const analysed = { facts: result.facts, key: `${database}\0${role}\0${this.groupsKey}\0${JSON.stringify(result.facts)}` };
    this.remember(sql, analysed);
    if (shapeKey !== undefined && result.shapeIndependent) this.remember(shapeKey, analysed);
    return analysed;
  }

  private remember(key: string, analysed: Analysed): void {
    if (key.length > MEMO_MAX_TEXT) return;
    const chars = memoSize(key, analysed);
    while (this.memo.size > 0 && (this.memo.size >= MEMO_LIMIT || this.memoChars + chars > MEMO_MAX_CHARS)) {
      const [oldest, entry] = this.memo.entries().next().value!;
      this.memo.delete(oldest);
      this.memoChars -= memoSize(oldest, entry);
    }
    this.memo.set(key, analysed);
    this.memoChars += chars;
  }
}

/** An entry's size as the memo counts it: its key, and the facts' cache key (their JSON, about their size). */
function memoSize(key: string, analysed: Analysed): number {
  return key.length + (analysed instanceof SqlAnalysisError ? analysed.message.length : analysed.key.length);
}
