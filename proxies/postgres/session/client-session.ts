/**
 * One client connection from its first byte to its last: TLS and protocol
 * negotiation, the JWT as cleartext password, the upstream login, then the
 * relay. Anything malformed ends this connection with a FATAL the client can
 * read, and nothing else.
 */
import { randomUUID } from 'node:crypto';
import { connect as tcpConnect, type Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { serialize } from 'pg-protocol';
import type { Authorizer } from '../../../engine/authorize/authorizer.js';
import type { PostgresTargetConfig } from '../../../engine/config/schema.js';
import type { Identity } from '../../../engine/identity/identity.js';
import type { HashKey } from '../../../engine/masking/strategies.js';
import type { CancelKeys } from '../cancel-keys.js';
import { StatementDecider } from '../policy/statement-decider.js';
import { LiteralSettings } from './literal-settings.js';
import {
  authenticationCleartextPassword, authenticationOk, backendKeyData, errorResponse, negotiateProtocolVersion,
  readyForQuery, REQUEST_REFUSED, SSL_ACCEPTED,
} from '../protocol/backend-writer.js';
import { decodeParameterStatus } from '../protocol/backend-decode.js';
import { FrontendParser, readPasswordMessage } from '../protocol/frontend-parser.js';
import { FrontendProtocolError, type FrontendMessage, type StartupMessage } from '../protocol/frontend-messages.js';
import { unreadableSetting } from '../sql/reading-settings.js';
import { defaultSchema } from '../sql/facts.js';
import type { ColumnHistory } from '../masking/column-history.js';
import type { CatalogPool } from '../upstream/catalog.js';
import type { IdentitySessions } from '../identity-sessions.js';
import type { SqlAnalysisThreads } from '../sql/analysis-threads.js';
import { openUpstream, UpstreamError, type UpstreamSession } from '../upstream/upstream-connection.js';
import type { CountedMapLimits } from './counted-map.js';
import { Inbox } from './inbox.js';
import { parseLoginName } from './login-name.js';
import { ProtocolMisuse, Relay, type StatementRecord } from './relay.js';

export interface SessionDeps {
  targets: ReadonlyMap<string, PostgresTargetConfig>;
  /** Per target, the CA that signs its server's certificate, when configured. */
  upstreamCa: ReadonlyMap<string, Buffer>;
  authorizer: Authorizer;
  cancelKeys: CancelKeys;
  identitySessions: IdentitySessions;
  /** Where long SQL is analysed (StatementDecider). */
  analysisThreads: SqlAnalysisThreads;
  /** What a target's sessions share: the catalog lookups' connections, and where its masked columns have been found. */
  shared(target: PostgresTargetConfig): { catalogs: CatalogPool; columnHistory(databaseId: string): ColumnHistory };
  tls: { context: SecureContext; required: boolean } | null;
  maxMessageBytes: number;
  maxServerMessageBytes: number;
  preparedStatementLimits: CountedMapLimits;
  portalLimits: CountedMapLimits;
  maxSqlNames: number;
  hashKey: HashKey;
  connectTimeoutMs: number;
  /** From accepting the connection to AuthenticationOk, TLS handshake and the database's own login included. */
  loginTimeoutMs: number;
  logger: Logger;
  statusUrl(approvalId: string): string;
  /** The session recording, when the target records. */
  recordings: SessionRecordings;
}

export interface SessionInfo {
  sessionId: string;
  target: PostgresTargetConfig;
  identity: Identity;
  sourceIp: string | null;
}

export interface SessionRecordings {
  open(info: SessionInfo): { statement(record: StatementRecord): void; close(reason: string): void } | null;
}

/** Startup parameters passed on to the server; others (`options`, `replication`, GUCs) could change what a statement does. */
const FORWARDED_PARAMETERS = ['application_name', 'client_encoding', 'DateStyle', 'TimeZone', 'IntervalStyle', 'extra_float_digits'];
const NEWEST_MINOR = 0;
/**
 * Client bytes a session holds before it stops reading the client: messages
 * waiting for a decision, or for the database to read what went before. A
 * client pipelining faster than either would otherwise fill the gateway's
 * memory; held back, it fills its own socket buffer, as with a server.
 */
const MAX_BACKLOG_BYTES = 8 * 1024 * 1024;

export class ClientSession {
  readonly sessionId = randomUUID();
  private client: Socket;
  private readonly parser: FrontendParser;
  private readonly inbox: Inbox;
  private phase: 'startup' | 'password' | 'relay' | 'closed' = 'startup';
  private startup: StartupMessage | null = null;
  private relay: Relay | null = null;
  private upstream: UpstreamSession | null = null;
  private releaseKey: (() => void) | null = null;
  private releaseSession: (() => void) | null = null;
  private readonly sourceIp: string | null;
  /** The client is paused until the backlog is worked off (holdBack). */
  private heldBack = false;
  /** letIn() is already waiting for the upstream socket's drain. */
  private awaitingDrain = false;
  /**
   * Ends a connection that has not logged in by then, as PostgreSQL's
   * authentication_timeout does: one that never does (silent, or stuck in
   * the TLS handshake) would hold a descriptor for good, and enough of them,
   * needing no token, would leave none for anyone.
   */
  private readonly loginDeadline: NodeJS.Timeout;

  /** `releaseLoginSlot`: called once the connection has logged in or is gone (login-slots.ts). */
  constructor(socket: Socket, private readonly deps: SessionDeps, private readonly releaseLoginSlot: () => void = () => undefined) {
    this.client = socket;
    this.sourceIp = socket.remoteAddress ?? null;
    this.parser = new FrontendParser({ maxMessageSize: deps.maxMessageBytes });
    this.inbox = new Inbox((message) => this.handleStartup(message), (err) => this.fail(err), () => this.letIn());
    socket.setNoDelay(true);
    this.listen(socket);
    this.loginDeadline = setTimeout(() => this.loginTimedOut(), deps.loginTimeoutMs);
  }

  private loginTimedOut(): void {
    if (this.phase !== 'startup' && this.phase !== 'password') return;
    const client = this.client;
    this.fail(fatal('57014', 'canceling authentication due to timeout'));
    // A client that does not read, or a handshake that never ends, would keep the socket open after end().
    setTimeout(() => client.destroy(), 1000).unref();
  }

  private listen(socket: Socket): void {
    socket.on('data', (chunk: Buffer) => {
      // Messages that need no decision (Bind, Execute, Sync, …) are forwarded while this chunk is
      // parsed: corked, they leave in one write instead of one per message.
      const upstream = this.upstream?.socket;
      upstream?.cork();
      try {
        this.parser.parse(chunk, (message, raw) => this.inbox.push(message, raw));
      } catch (err) {
        this.fail(err);
      } finally {
        upstream?.uncork();
      }
      this.holdBack();
    });
    socket.on('error', () => this.close('client connection error'));
    socket.on('close', () => this.close('the client disconnected'));
  }

  private backlogged(): boolean {
    return this.inbox.queuedBytes > MAX_BACKLOG_BYTES || this.upstream?.socket.writableNeedDrain === true;
  }

  /** Stops reading the client while the backlog is too big; letIn() reads on. */
  private holdBack(): void {
    if (this.heldBack || !this.backlogged()) return;
    this.heldBack = true;
    this.client.pause();
    this.letIn();
  }

  private letIn(): void {
    if (!this.heldBack || this.awaitingDrain) return;
    if (this.upstream?.socket.writableNeedDrain) {
      this.awaitingDrain = true;
      this.upstream.socket.once('drain', () => {
        this.awaitingDrain = false;
        this.letIn();
      });
      return;
    }
    if (this.inbox.queuedBytes > MAX_BACKLOG_BYTES) return; // the inbox calls again when it runs empty
    this.heldBack = false;
    this.client.resume();
  }

  /** A CancelRequest named this session. */
  cancel(): void {
    this.relay?.cancel();
  }

  // ── startup ───────────────────────────────────────────────────────────

  private handleStartup(message: FrontendMessage): Promise<void> | void {
    switch (message.type) {
      case 'sslRequest':
        return this.startTls();
      case 'gssEncRequest':
        this.client.write(REQUEST_REFUSED);
        return;
      case 'cancelRequest':
        this.deps.cancelKeys.cancel(message.processId, message.secretKey);
        this.client.end();
        return;
      case 'startup':
        return this.askPassword(message);
      case 'authenticationResponse':
        if (this.phase === 'password') return this.login(readPasswordMessage(message));
        break;
    }
    throw new ProtocolMisuse(`unexpected ${message.type} message before login`);
  }

  private startTls(): void {
    if (!this.deps.tls) {
      this.client.write(REQUEST_REFUSED);
      return;
    }
    this.client.write(SSL_ACCEPTED);
    const plain = this.client;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    const secure = new TLSSocket(plain, { isServer: true, secureContext: this.deps.tls.context });
    secure.on('secureConnect', () => undefined);
    this.client = secure;
    this.listen(secure);
  }

  private askPassword(startup: StartupMessage): void {
    if (this.deps.tls?.required && !(this.client instanceof TLSSocket)) {
      throw fatal('28000', 'this gateway requires TLS: connect with sslmode=require');
    }
    if (startup.parameters.has('replication')) throw fatal('0A000', 'replication connections are not supported through gatehouse');
    const unknownOptions = [...startup.parameters.keys()].filter((k) => k.startsWith('_pq_.'));
    if (startup.minorVersion > NEWEST_MINOR || unknownOptions.length > 0) {
      this.client.write(negotiateProtocolVersion(NEWEST_MINOR, unknownOptions));
    }
    const encoding = startup.parameters.get('client_encoding');
    if (encoding !== undefined && !/^(?:utf-?8|unicode)$/i.test(encoding.replaceAll(/['"_]/g, ''))) {
      // The analyser and the masks read UTF-8; in SJIS or BIG5 a quote can hide inside a character.
      throw fatal('22023', `client_encoding ${encoding} is not supported through gatehouse; use UTF8`);
    }
    if (!startup.parameters.get('user')) throw fatal('28000', 'no user given: connect as user=<target> or user=<role>@<target>');
    this.startup = startup;
    this.phase = 'password';
    this.client.write(authenticationCleartextPassword());
  }

  private async login(token: string): Promise<void> {
    const startup = this.startup!;
    const user = startup.parameters.get('user')!;
    const name = parseLoginName(user);
    const targetName = 'problem' in name ? user : name.target;
    const action = { postgres: { database: startup.parameters.get('database') ?? '', role: '', protocol: 'simple', text: '-- login', statements: [] } };
    const authenticated = await this.deps.authorizer.authenticate({ token, target: targetName, action, sessionId: this.sessionId, sourceIp: this.sourceIp });
    if (!authenticated.identity) throw fatal('28P01', `gatehouse refused the token: ${authenticated.result.decision.reasons.join('; ')}`);
    const identity = authenticated.identity;
    /** A login refused once its token is verified: audited as any refusal, then told to the client. */
    const refused = async (code: string, reason: string): Promise<FatalError> => {
      await this.deps.authorizer.refuseInvalid({ token: undefined, identity, target: targetName, action, sessionId: this.sessionId, sourceIp: this.sourceIp }, reason);
      return fatal(code, reason);
    };
    if ('problem' in name) throw await refused('28000', name.problem);

    const target = this.deps.targets.get(name.target);
    if (!target) {
      const refusal = await this.deps.authorizer.authorize({ token: undefined, identity, target: name.target, action, sessionId: this.sessionId, sourceIp: this.sourceIp });
      throw fatal('28000', refusal.decision.reasons.join('; ') || `no postgres target named "${name.target}"`);
    }
    const database = startup.parameters.get('database');
    if (database !== undefined && database !== target.upstream.database && database !== target.name && database !== user) {
      throw await refused('3D000', `target ${target.name} serves database "${target.upstream.database}", not "${database}"`);
    }
    const slot = this.deps.identitySessions.take(identity);
    if ('refused' in slot) throw await refused('53300', slot.refused);
    this.releaseSession = slot.release;

    const [host, port] = splitAddress(target.upstream.address);
    const parameters: Record<string, string> = {};
    for (const key of FORWARDED_PARAMETERS) {
      const value = startup.parameters.get(key);
      if (value !== undefined) parameters[key] = value;
    }
    // The analyser reads an unqualified name as public.name; the server must too, whatever search_path the
    // database or the gateway's role defaults to (a "$user" entry would find a schema named after the role).
    parameters.search_path = defaultSchema;
    try {
      this.upstream = await openUpstream({
        host, port, database: target.upstream.database, username: target.credentials.username,
        password: () => target.credentials.password.reveal(), tls: target.upstream.tls, tlsCa: this.deps.upstreamCa.get(target.name),
        parameters, role: name.role, connectTimeoutMs: this.deps.connectTimeoutMs,
      });
    } catch (err) {
      if (!(err instanceof UpstreamError)) throw err;
      this.deps.logger.error({ target: target.name, err: err.message }, 'upstream login failed');
      throw await refused(err.sqlState === '42704' || err.sqlState === '42501' ? '28000' : '08006', `gatehouse cannot open ${target.name}: ${err.message}`);
    }
    if (this.phase === 'closed') {
      // The client left while the database was logging us in.
      this.upstream.socket.destroy();
      return;
    }
    // A default of the database or the role (ALTER ROLE … SET standard_conforming_strings = off) holds from the start.
    const unreadable = this.upstream.parameterStatus.map(decodeParameterStatus).map(({ name: setting, value }) => unreadableSetting(setting, value)).find((why) => why !== null);
    if (unreadable) {
      this.upstream.socket.destroy();
      this.deps.logger.error({ target: target.name, problem: unreadable }, 'upstream session refused: the database reads SQL differently from the gateway');
      throw await refused('0A000', `gatehouse cannot serve ${target.name}: ${unreadable} (a default of the database or of the gateway's role there; reset it)`);
    }
    this.startRelay({ sessionId: this.sessionId, target, identity, sourceIp: this.sourceIp }, name.role ?? target.credentials.username, token);
  }

  private startRelay(info: SessionInfo, role: string, token: string): void {
    const upstream = this.upstream!;
    const key = this.deps.cancelKeys.issue(this);
    this.releaseKey = key.release;
    const recording = this.deps.recordings.open(info);
    const [host, port] = splitAddress(info.target.upstream.address);
    const settings = new LiteralSettings();
    for (const status of upstream.parameterStatus) {
      const { name, value } = decodeParameterStatus(status);
      settings.report(name, value);
    }
    const shared = this.deps.shared(info.target);
    this.relay = new Relay(this.client, upstream.socket, {
      decider: new StatementDecider(this.deps.authorizer, {
        target: info.target.name, database: info.target.upstream.database, role,
        identity: info.identity, sessionId: info.sessionId, sourceIp: info.sourceIp, settings, analysisThreads: this.deps.analysisThreads,
      }),
      settings,
      maxServerMessageBytes: this.deps.maxServerMessageBytes,
      preparedStatementLimits: this.deps.preparedStatementLimits,
      portalLimits: this.deps.portalLimits,
      maxSqlNames: this.deps.maxSqlNames,
      catalog: shared.catalogs.session(),
      columnHistory: shared.columnHistory,
      hashKey: this.deps.hashKey,
      logger: this.deps.logger,
      statusUrl: this.deps.statusUrl,
      onStatement: (record) => {
        recording?.statement(record);
        if (record.masked.length > 0) {
          void this.deps.authorizer.recordMasking({
            identity: info.identity, target: info.target.name, sessionId: info.sessionId, decisionId: record.decisionId,
            summary: record.sql, records: record.rows ?? 0, masked: record.masked,
          });
        }
      },
      expiresAtMs: typeof info.identity.claims.exp === 'number' ? info.identity.claims.exp * 1000 : null,
      onExpired: async () => {
        // Verified again only to audit the refusal as any login with an expired token would be.
        const again = await this.deps.authorizer.authenticate({ token, target: info.target.name, sessionId: info.sessionId, sourceIp: info.sourceIp, action: { postgres: {} } });
        const why = again.identity ? 'the session outlived its token' : again.result.decision.reasons.join('; ');
        this.fail(fatal('28P01', `${why}; reconnect with a fresh token`));
      },
      cancelUpstream: () => sendCancel(host, port, upstream.processId, upstream.secretKey),
      onEnd: (reason) => {
        recording?.close(reason);
        this.close(reason);
      },
    });
    this.phase = 'relay';
    clearTimeout(this.loginDeadline);
    this.releaseLoginSlot();
    this.client.cork();
    this.client.write(authenticationOk());
    for (const status of upstream.parameterStatus) this.client.write(status);
    this.client.write(backendKeyData(key.processId, key.secretKey));
    this.client.write(readyForQuery('I'));
    this.client.uncork();
    const relay = this.relay;
    this.inbox.handleWith((message, raw) => relay.fromClient(message, raw));
    upstream.socket.resume();
  }

  // ── ending ────────────────────────────────────────────────────────────

  private fail(err: unknown): void {
    if (err instanceof FatalError || err instanceof FrontendProtocolError || err instanceof ProtocolMisuse) {
      const code = err instanceof FatalError ? err.code : err instanceof FrontendProtocolError ? err.sqlState : '08P01';
      this.deps.logger.info({ session: this.sessionId, code, reason: err.message }, 'postgres client connection refused');
      if (this.phase !== 'closed' && this.client.writable) this.client.end(errorResponse({ severity: 'FATAL', code, message: err.message }));
    } else {
      this.deps.logger.error({ session: this.sessionId, err }, 'postgres session failed');
      if (this.phase !== 'closed' && this.client.writable) {
        this.client.end(errorResponse({ severity: 'FATAL', code: 'XX000', message: 'gatehouse hit an internal error; the session is closed' }));
      }
    }
    this.close('error');
  }

  private close(reason: string): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    clearTimeout(this.loginDeadline);
    this.releaseLoginSlot();
    this.inbox.stop();
    this.releaseKey?.();
    this.releaseSession?.();
    this.relay?.end(reason);
    this.upstream?.socket.destroy();
    if (!this.client.destroyed) this.client.end();
  }
}

class FatalError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

function fatal(code: string, message: string): FatalError {
  return new FatalError(code, message);
}

export function splitAddress(address: string): [string, number] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), Number(address.slice(colon + 1))];
}

/** A CancelRequest to the server, on a connection of its own, as the protocol has it. */
function sendCancel(host: string, port: number, processId: number, secretKey: number): void {
  const socket = tcpConnect({ host, port }, () => socket.end(serialize.cancel(processId, secretKey)));
  socket.on('error', () => undefined);
}
