import { Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { createApiServer, parseAddress } from '../../api/server.js';
import type { GatehouseConfig } from '../../engine/config/schema.js';
import { findPlaintextSecrets, loadConfig } from '../../engine/config/load.js';
import { startGateway, type Gateway } from '../../engine/gateway.js';
import { createLogger } from '../../engine/observability/logger.js';
import { postgresRecordings } from '../../proxies/postgres/recordings.js';
import { startPostgresProxy } from '../../proxies/postgres/server.js';
import { startExtAuthzServer } from '../../ext-authz/server.js';
import { startHttpStandin } from '../../proxies/http/server.js';

export function serveCommand(): Command {
  return new Command('serve')
    .description('Run the gateway: every listener the config enables, in one process.')
    .requiredOption('-c, --config <file>', 'gatehouse.yaml to run with')
    .action(async (options: { config: string }) => {
      const config = loadConfig(options.config);
      const logger = createLogger();
      for (const path of findPlaintextSecrets(config)) {
        logger.warn({ key: path }, `${path} is written in plain text in ${options.config}; use \${env:NAME} or \${file:path}`);
      }

      const gateway = await startGateway(config, logger);
      const api = createApiServer({ engine: gateway.engine, logger, gateway });
      const listeners: Listener[] = [];
      try {
        await startListeners(config, gateway, api, logger, listeners);
      } catch (err) {
        // A gateway missing a listener (its port taken, say) must not run on headless, signing checkpoints and
        // sweeping approvals on a stream another process may be writing.
        logger.fatal({ err: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code } }, 'a listener could not start; stopping');
        for (const listener of listeners.reverse()) await listener.close().catch(() => undefined);
        await gateway.stop();
        process.exit(1);
      }
      logger.info(Object.fromEntries([['address', config.listeners.api.address], ...listeners.slice(1).map((l) => [l.name, l.address])]), 'gatehouse is serving');

      const shutdown = async (signal: string): Promise<void> => {
        logger.info({ signal }, 'shutting down');
        // Held requests are ended (denied and audited) first, so the API can close without waiting minutes for them.
        // The proxies first, the API last: their sessions' last statements still reach the recorder and the audit log.
        const proxies = listeners.slice(1).reverse();
        for (const proxy of proxies) await proxy.close();
        const stopping = gateway.stop();
        await api.close();
        await stopping;
        process.exit(0);
      };
      process.once('SIGINT', () => void shutdown('SIGINT'));
      process.once('SIGTERM', () => void shutdown('SIGTERM'));
    });
}

interface Listener {
  name: string;
  address: string;
  close(): Promise<unknown>;
}

/** Starts every listener the config enables, the API first, each pushed onto `started` as soon as it listens. */
async function startListeners(config: GatehouseConfig, gateway: Gateway, api: FastifyInstance, logger: Logger, started: Listener[]): Promise<void> {
  await api.listen(parseAddress(config.listeners.api.address));
  started.push({ name: 'api', address: config.listeners.api.address, close: () => api.close() });
  const hashKey = config.masking.hash_key?.reveal();
  const statusUrl = (id: string) => gateway.statusUrl(id);
  if (config.listeners.postgres) {
    const postgres = await startPostgresProxy({
      listener: config.listeners.postgres,
      targets: config.targets,
      authorizer: gateway.authorizer,
      logger,
      statusUrl,
      recordings: postgresRecordings(gateway.recorder),
      columnPlaces: gateway.store,
      hashKey,
    });
    started.push({ name: 'postgres', address: postgres.address, close: () => postgres.close() });
  }
  if (config.listeners.ext_authz) {
    const extAuthz = await startExtAuthzServer({
      listener: config.listeners.ext_authz, targets: config.targets, authorizer: gateway.authorizer, recorder: gateway.recorder, logger, statusUrl, hashKey,
    });
    started.push({ name: 'ext_authz', address: extAuthz.address, close: () => extAuthz.close() });
  }
  if (config.listeners.http_standin) {
    const standin = await startHttpStandin({ config: config.listeners.http_standin, targets: config.targets, logger });
    started.push({ name: 'http_standin', address: standin.address, close: () => standin.close() });
  }
}
