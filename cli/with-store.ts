import { pino } from 'pino';
import type { GatehouseConfig } from '../engine/config/schema.js';
import { openStore } from '../engine/store/open-store.js';
import type { Store } from '../engine/store/store.js';

/** Opens the configured store, runs `work`, and always closes it. Logs go to stderr: stdout carries the output. */
export async function withStore(config: GatehouseConfig, work: (store: Store) => Promise<void>): Promise<void> {
  const logger = pino({ name: 'gatehouse', level: process.env.GATEHOUSE_LOG_LEVEL ?? 'warn' }, pino.destination(2));
  const store = await openStore(config.store, logger);
  try {
    await work(store);
  } finally {
    await store.close();
  }
}
