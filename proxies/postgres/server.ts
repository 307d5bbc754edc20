/**
 * The Postgres proxy's listener: accepts clients, hands each to a
 * ClientSession, and owns what sessions share (cancel keys, catalog pools,
 * the TLS context). It is a thin front end: every decision is the engine's.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, isIP, type AddressInfo, type Server, type Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { Authorizer } from '../../engine/authorize/authorizer.js';
import type { PostgresListenerConfig, PostgresTargetConfig, TargetConfig } from '../../engine/config/schema.js';
import { CancelKeys } from './cancel-keys.js';
import { IdentitySessions } from './identity-sessions.js';
import { SqlAnalysisThreads } from './sql/analysis-threads.js';
import { LoginSlots } from './login-slots.js';
import { errorResponse } from './protocol/backend-writer.js';
import { loadSqlParser } from './sql/analyse.js';
import { ClientSession, splitAddress, type SessionRecordings } from './session/client-session.js';
import { ColumnHistories, type ColumnHistory, type ColumnPlaceStore } from './masking/column-history.js';
import { CatalogPool } from './upstream/catalog.js';

export interface PostgresProxyOptions {
  listener: PostgresListenerConfig;
  targets: readonly TargetConfig[];
  authorizer: Authorizer;
  logger: Logger;
  statusUrl(approvalId: string): string;
  recordings: SessionRecordings;
  /** Where masked columns have been found, kept for every target's sessions and across restarts (the gateway's store). */
  columnPlaces: ColumnPlaceStore;
  /** masking.hash_key; without it a random key per process (hashes then differ across restarts). */
  hashKey?: string;
}

export interface PostgresProxy {
  /** host:port actually bound (port 0 in config picks a free one). */
  address: string;
  close(): Promise<void>;
}

export async function startPostgresProxy(options: PostgresProxyOptions): Promise<PostgresProxy> {
  const { listener, logger } = options;
  await loadSqlParser(); // decisions parse synchronously from here on
  const targets = new Map(
    options.targets.filter((t): t is PostgresTargetConfig => t.kind === 'postgres').map((t) => [t.name, t]),
  );
  const shared = new Map<string, { catalogs: CatalogPool; columnHistory: (databaseId: string) => ColumnHistory }>();
  const columnHistories = new ColumnHistories(options.columnPlaces, listener.catalog_cache_ms);
  const sessions = new Set<Socket>();
  const tls = listener.tls
    ? {
      context: createSecureContext({ cert: readFileSync(listener.tls.cert_file), key: readFileSync(listener.tls.key_file) }),
      required: listener.tls.required,
    }
    : null;
  const upstreamCa = new Map(
    [...targets.values()].filter((t) => t.upstream.tls_ca_file).map((t) => [t.name, readFileSync(t.upstream.tls_ca_file!)]),
  );
  const deps = {
    targets,
    upstreamCa,
    authorizer: options.authorizer,
    cancelKeys: new CancelKeys(),
    tls,
    maxMessageBytes: listener.max_message_bytes,
    maxServerMessageBytes: listener.max_server_message_bytes,
    preparedStatementLimits: { maxNamed: listener.max_prepared_statements, maxBytes: listener.max_prepared_statement_bytes },
    portalLimits: { maxNamed: listener.max_portals, maxBytes: listener.max_prepared_statement_bytes },
    maxSqlNames: listener.max_sql_names,
    identitySessions: new IdentitySessions(listener.max_sessions_per_identity),
    analysisThreads: new SqlAnalysisThreads((err) => logger.error({ err }, 'an SQL analysis thread failed')),
    connectTimeoutMs: listener.connect_timeout_ms,
    loginTimeoutMs: listener.login_timeout_ms,
    hashKey: options.hashKey ?? randomBytes(32),
    logger: logger.child({ component: 'postgres-proxy' }),
    statusUrl: options.statusUrl,
    recordings: options.recordings,
    shared(target: PostgresTargetConfig) {
      let services = shared.get(target.name);
      if (!services) {
        const [host, port] = splitAddress(target.upstream.address);
        services = {
          catalogs: new CatalogPool({
            host, port, database: target.upstream.database, user: target.credentials.username,
            password: target.credentials.password.reveal(),
            ssl: target.upstream.tls ? { ca: upstreamCa.get(target.name), servername: isIP(host) ? undefined : host } : false,
          }, listener.catalog_cache_ms),
          columnHistory: (databaseId: string) => columnHistories.of(target.name, databaseId),
        };
        shared.set(target.name, services);
      }
      return services;
    },
  };

  const loginSlots = new LoginSlots(listener.max_logins, listener.max_logins_per_source);
  const server: Server = createServer((socket) => {
    sessions.add(socket);
    socket.once('close', () => sessions.delete(socket));
    const slot = loginSlots.take(socket.remoteAddress ?? '');
    if ('refused' in slot) {
      refuse(socket, slot.refused);
      return;
    }
    new ClientSession(socket, deps, slot.release);
  });
  const [host, port] = splitAddress(listener.address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const address = `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
  logger.info({ address, targets: [...targets.keys()] }, 'postgres proxy listening');

  return {
    address,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sessions) socket.destroy();
      await closed;
      await Promise.all([...shared.values()].map(({ catalogs }) => catalogs.end()));
      await deps.analysisThreads.close();
    },
  };
}

/**
 * Answers before reading anything, as PostgreSQL's postmaster does when it
 * cannot take a connection: libpq shows the message whether it sent a
 * StartupMessage or an SSLRequest first.
 */
function refuse(socket: Socket, why: string): void {
  socket.on('error', () => undefined);
  socket.end(errorResponse({ severity: 'FATAL', code: '53300', message: `gatehouse: ${why}; try again later` }));
  // A client that never reads would keep the socket; it is refused, not served.
  setTimeout(() => socket.destroy(), 1000).unref();
}
