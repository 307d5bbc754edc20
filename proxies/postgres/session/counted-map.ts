import { serverName } from './server-name.js';

/**
 * What a session holds under names its client chooses (prepared
 * statements, portals), with what it holds counted. A client can Parse or
 * Bind without end under ever new names, each entry kept until it is let
 * go: the caps refuse the Parse or Bind that would go past them. A Map, so
 * that every way an entry comes and goes (Parse, Bind, Close, DEALLOCATE,
 * DISCARD ALL, the end of a portal's transaction, a Parse or Bind the
 * server did not run undone) keeps the count without knowing it.
 */

export interface CountedMapLimits {
  /** Named entries: the unnamed statement or portal replaces itself, and is not counted. */
  maxNamed: number;
  /** The bytes of all of them (CountedKind.bytes), the unnamed one included. */
  maxBytes: number;
}

/** How one kind of entry is measured, and named to the client it refuses. `M`: what of an entry its measure reads. */
export interface CountedKind<M> {
  /** "prepared statements": the entries, as the refusal names them; `singular` for the unnamed one. */
  plural: string;
  singular: string;
  /** The bytes an entry holds of its own; `measured` says of what ("SQL and names"). */
  bytes(entry: M): number;
  measured: string;
  /** The config keys (under listeners.postgres) of CountedMapLimits, named in the refusal. */
  maxNamedKey: string;
  maxBytesKey: string;
  /** What the client can do to free room. */
  remedy: string;
}

export class CountedMap<M extends { name: string }, V extends M = M> extends Map<string, V> {
  private named = 0;
  private bytes = 0;

  constructor(
    private readonly kind: CountedKind<M>,
    private readonly limits: CountedMapLimits,
  ) {
    super();
  }

  /**
   * Why holding `entry` (as `entry.name`) would take the session past a cap
   * (which cap, its value, and what to do), or null. A name already held is
   * replaced: its slot and bytes are counted once.
   */
  overCap(entry: M): string | null {
    const { kind, limits } = this;
    const held = this.get(entry.name);
    if (entry.name !== '' && !held && this.named >= limits.maxNamed) {
      return `the session already holds ${this.named} named ${kind.plural}, the most listeners.postgres.${kind.maxNamedKey} (${limits.maxNamed}) allows; `
        + `${kind.remedy} (or use the unnamed ${kind.singular})`;
    }
    const bytes = this.bytes - (held ? kind.bytes(held) : 0) + kind.bytes(entry);
    if (bytes > limits.maxBytes) {
      return `the session's ${kind.plural} would hold ${bytes} bytes of ${kind.measured}, over listeners.postgres.${kind.maxBytesKey} (${limits.maxBytes}); ${kind.remedy}`;
    }
    return null;
  }

  override get(name: string): V | undefined {
    return super.get(serverName(name));
  }

  override has(name: string): boolean {
    return super.has(serverName(name));
  }

  override set(name: string, entry: V): this {
    const key = serverName(name);
    this.delete(key);
    if (key !== '') this.named++;
    this.bytes += this.kind.bytes(entry);
    return super.set(key, entry);
  }

  override delete(name: string): boolean {
    const key = serverName(name);
    const held = super.get(key);
    if (!held) return false;
    if (key !== '') this.named--;
    this.bytes -= this.kind.bytes(held);
    return super.delete(key);
  }

  override clear(): void {
    this.named = 0;
    this.bytes = 0;
    super.clear();
  }
}
