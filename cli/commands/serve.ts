import { Command } from 'commander';
import { createApiServer, parseAddress } from '../../api/server.js';
import { findPlaintextSecrets, loadConfig } from '../../engine/config/load.js';
import { startGateway } from '../../engine/gateway.js';
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
      await api.listen(parseAddress(config.listeners.api.address));
      const hashKey = config.masking.hash_key?.reveal();
      const postgres = config.listeners.postgres
        ? await startPostgresProxy({
          listener: config.listeners.postgres,
          targets: config.targets,
          authorizer: gateway.authorizer,
          logger,
          statusUrl: (id) => gateway.statusUrl(id),
          recordings: postgresRecordings(gateway.recorder),
          hashKey,
        })
        : null;
      const extAuthz = config.listeners.ext_authz
        ? await startExtAuthzServer({
          listener: config.listeners.ext_authz,
          targets: config.targets,
          authorizer: gateway.authorizer,
          recorder: gateway.recorder,
          logger,
          statusUrl: (id) => gateway.statusUrl(id),
          hashKey,
        })
        : null;
      const standin = config.listeners.http_standin
        ? await startHttpStandin({ config: config.listeners.http_standin, targets: config.targets, logger })
        : null;
      logger.info({
        address: config.listeners.api.address,
        postgres: postgres?.address ?? null,
        ext_authz: extAuthz?.address ?? null,
        http_standin: standin?.address ?? null,
      }, 'gatehouse is serving');

      const shutdown = async (signal: string): Promise<void> => {
        logger.info({ signal }, 'shutting down');
        // Held requests are ended (denied and audited) first, so the API can close without waiting minutes for them.
        // The proxy first: its sessions' last statements still reach the recorder and the audit log.
        await standin?.close();
        await postgres?.close();
        await extAuthz?.close();
        const stopping = gateway.stop();
        await api.close();
        await stopping;
        process.exit(0);
      };
      process.once('SIGINT', () => void shutdown('SIGINT'));
      process.once('SIGTERM', () => void shutdown('SIGTERM'));
    });
}
