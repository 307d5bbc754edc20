/**
 * The session's portals (Relay.portals), counted: each is kept from its
 * Bind until Close, SQL CLOSE or DISCARD ALL, or the end of its
 * transaction (Relay.portalsDropped).
 */
import { CountedMap, type CountedKind, type CountedMapLimits } from './counted-map.js';
import type { Portal } from './statement-state.js';

type Measured = Pick<Portal, 'name'>;

const PORTALS: CountedKind<Measured> = {
  plural: 'portals',
  singular: 'portal',
  // The statement a portal runs is its prepared statement's, shared and counted there: its own bytes are its name's.
  bytes: (portal) => Buffer.byteLength(portal.name),
  measured: 'names',
  maxNamedKey: 'max_portals',
  // Portal names are held to the statements' byte cap, on their own: one figure to set, not two (see engine/config/schema.ts).
  maxBytesKey: 'max_prepared_statement_bytes',
  remedy: 'Close portals no longer used, or end the transaction (which drops them all)',
};

export class Portals extends CountedMap<Measured, Portal> {
  /** listeners.postgres.max_portals, and max_prepared_statement_bytes for their names. */
  constructor(limits: CountedMapLimits) {
    super(PORTALS, limits);
  }
}
