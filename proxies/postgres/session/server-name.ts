import { isUtf8 } from 'node:buffer';

/**
 * The name under which the server holds a prepared statement or portal.
 * PostgreSQL keys both by their first NAMEDATALEN - 1 (63) bytes, cut
 * where they fall (its hash tables compare with strncmp), so names that
 * share those bytes are one entry there. The relay must hold them as one
 * entry too: kept apart, a Close or Parse of one name would change what
 * another runs on the server while the relay still decided it by its old
 * SQL. SQL names (PREPARE, DEALLOCATE, DECLARE, CLOSE) come from
 * libpg-query already cut by the server's scanner, and pass unchanged.
 */
const NAME_BYTES = 63;
/** A UTF-16 code unit is at most 3 bytes of UTF-8: names this short are never cut. */
const NEVER_CUT = Math.floor(NAME_BYTES / 3);
/** Leads the key of a name cut inside a character. No name holds a NUL (the protocol ends names with one). */
const SPLIT = '\0';

/** Idempotent: a key passed back in is returned as it is. */
export function serverName(name: string): string {
  if (name.length <= NEVER_CUT || name.startsWith(SPLIT) || Buffer.byteLength(name) <= NAME_BYTES) return name;
  const kept = Buffer.from(name).subarray(0, NAME_BYTES);
  // Cut between characters, the bytes are a name the client could have sent as it is, and the server holds as one.
  if (isUtf8(kept)) return kept.toString('utf8');
  // Cut inside one, they are no name uncut: latin1 keeps them byte for byte, behind a lead no name has.
  return SPLIT + kept.toString('latin1');
}
