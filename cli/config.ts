import { loadConfig } from '../engine/config/load.js';
import type { GatehouseConfig } from '../engine/config/schema.js';

/**
 * The config as a command other than `serve` reads it: an operator running
 * `gatehouse audit verify` or `gatehouse token` in their own terminal does
 * not have the targets' passwords, and does not need them. A secret that is
 * needed after all fails with a clear error when it is used.
 */
export function readConfig(file: string): GatehouseConfig {
  return loadConfig(file, process.env, { deferUnresolvedSecrets: true });
}
