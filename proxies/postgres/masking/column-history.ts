/**
 * Where a target's masked columns have been found, kept across sessions
 * and restarts in the store. Mask rules name columns, and names move:
 * `RENAME COLUMN ssn TO ssn_legacy; ADD COLUMN ssn` leaves the values under
 * a name no rule names and gives the rule an empty column, and a table
 * renamed away (`customers` → `customers_old`, a new `customers` made)
 * keeps its values under a name no rule names either. A column keeps its
 * table's OID and its attribute number through both, so every place a
 * rule's column was ever found is masked too, under whatever name it has
 * now.
 *
 * OIDs mean something only in the database that gave them: places are kept
 * per database (the cluster's system identifier and the database's OID),
 * shared by every target that reaches it, so a target pointed at a restored
 * copy or another cluster starts afresh rather than masking whatever
 * columns now have those numbers. Where the server does not tell its system
 * identifier, places are kept per target too.
 */
import type { MaskedColumnPlace, Store } from '../../../engine/store/store.js';
import type { ColumnOrigin } from '../upstream/catalog.js';

export type ColumnPlaceStore = Pick<Store, 'noteMaskedColumnPlaces' | 'maskedColumnPlaces'>;

/** The histories of the databases the proxy's targets have been seen to be (the catalog's databaseId()). */
export class ColumnHistories {
  private readonly byScope = new Map<string, ColumnHistory>();

  /** `refreshMs`: how long what was read is trusted before the store is read again (other gateways note places too). */
  constructor(
    private readonly store: ColumnPlaceStore,
    private readonly refreshMs: number,
  ) {}

  of(target: string, databaseId: string): ColumnHistory {
    const scope = databaseId.startsWith('unknown/') ? `${target}:${databaseId}` : databaseId;
    let history = this.byScope.get(scope);
    if (!history) {
      history = new ColumnHistory(this.store, scope, this.refreshMs);
      this.byScope.set(scope, history);
    }
    return history;
  }
}

export class ColumnHistory {
  private places: readonly MaskedColumnPlace[] = [];
  /** "rule column|tableOid:attnum" of every place known, noted or read. */
  private known = new Set<string>();
  private readUntil = 0;
  private reading: Promise<void> | null = null;

  constructor(
    private readonly store: ColumnPlaceStore,
    private readonly scope: string,
    private readonly refreshMs: number,
  ) {}

  /** Every place noted in this database. Throws when the store cannot be read. */
  async all(): Promise<readonly MaskedColumnPlace[]> {
    if (Date.now() >= this.readUntil) {
      this.reading ??= this.read().finally(() => (this.reading = null));
      await this.reading;
    }
    return this.places;
  }

  /**
   * Notes, durably, where a rule's column ("schema.table.column") is now: in
   * the rule's table, its heirs and its ancestors. Places known already cost
   * nothing. Throws when the store cannot be written.
   */
  async note(ruleColumn: string, origins: readonly ColumnOrigin[]): Promise<void> {
    const fresh = origins.filter((origin) => !this.known.has(`${ruleColumn}|${origin.key}`));
    if (fresh.length === 0) return;
    const now = Date.now();
    const places = fresh.map((origin): MaskedColumnPlace => {
      const [tableOid, attnum] = origin.key.split(':').map(Number) as [number, number];
      return { rule_column: ruleColumn, table_oid: tableOid, attnum, noted_at: now };
    });
    await this.store.noteMaskedColumnPlaces(this.scope, places);
    this.remember(places);
  }

  /**
   * What the store holds replaces what was known: a place forgotten there
   * (`gatehouse masking forget`) is let go here too. One noted while this
   * read was on its way may be missed until the next; noting it again
   * costs a write that changes nothing.
   */
  private async read(): Promise<void> {
    const started = Date.now();
    const stored = await this.store.maskedColumnPlaces(this.scope);
    this.places = stored;
    this.known = new Set(stored.map(placeKey));
    this.readUntil = started + this.refreshMs;
  }

  private remember(places: readonly MaskedColumnPlace[]): void {
    const added = places.filter((place) => {
      const key = placeKey(place);
      if (this.known.has(key)) return false;
      this.known.add(key);
      return true;
    });
    if (added.length > 0) this.places = [...this.places, ...added];
  }
}

const placeKey = (place: MaskedColumnPlace): string => `${place.rule_column}|${place.table_oid}:${place.attnum}`;
