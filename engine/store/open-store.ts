import type { StoreConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { PostgresStore } from './postgres/postgres-store.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

/** Opens the configured backend and brings its schema up to this build's version. */
export async function openStore(config: StoreConfig, logger: Logger): Promise<Store> {
  const store: Store =
    'sqlite' in config
      ? SqliteStore.open({ path: config.sqlite.path, logger })
      : await PostgresStore.open({ connectionString: config.postgres.url.reveal(), logger });
  try {
    await store.migrate();
  } catch (err) {
    await store.close();
    throw err;
  }
  logger.info({ store: store.kind }, 'store ready');
  return store;
}
