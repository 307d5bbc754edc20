/**
 * Forgetting where a masked column was found. The Postgres proxy masks every
 * place (table OID, attribute number) where it ever found a rule's column
 * (proxies/postgres/masking/column-history.ts), for good, so that a column
 * renamed away stays masked; a column renamed to hold something else stays
 * masked too, until an admin forgets its place here. Forgetting unmasks, so
 * only members of masking.admin_groups may, and never without an audit event.
 */
import type { Logger } from 'pino';
import type { AuditLog } from '../audit/audit-log.js';
import { forgottenPlaceEvent, maskedColumnPlaceUid } from '../audit/events.js';
import { isHuman, type Identity } from '../identity/identity.js';
import type { AuditRef, MaskedColumnPlace, ScopedMaskedColumnPlace, Store } from '../store/store.js';

/** Why a request was refused; the API maps `code` to an HTTP status. */
export type PlaceAdminErrorCode = 'forbidden' | 'not_found' | 'unaudited';

export class PlaceAdminError extends Error {
  constructor(
    readonly code: PlaceAdminErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'PlaceAdminError';
  }
}

export interface PlaceRef {
  scope: string;
  table_oid: number;
  attnum: number;
}

export interface ForgottenPlace {
  /** The rows deleted: every rule column noted at the place. */
  forgotten: MaskedColumnPlace[];
  /** Where the forget's audit event is. */
  audit: AuditRef;
}

export interface MaskedColumnPlaceAdminOptions {
  store: Pick<Store, 'listMaskedColumnPlaces' | 'forgetMaskedColumnPlace' | 'noteMaskedColumnPlaces'>;
  audit: Pick<AuditLog, 'append' | 'stream'>;
  /** masking.admin_groups: empty, no one may list or forget. */
  adminGroups: readonly string[];
  logger: Logger;
}

export class MaskedColumnPlaceAdmin {
  constructor(private readonly options: MaskedColumnPlaceAdminOptions) {}

  async list(caller: Identity): Promise<ScopedMaskedColumnPlace[]> {
    this.#mustAdminister(caller);
    return this.options.store.listMaskedColumnPlaces();
  }

  /**
   * Deletes the place, then appends its audit event, durably; if the event
   * cannot be written, the rows are put back as they were (their noted_at
   * too) and the forget fails. Deleting first makes a concurrent forget of
   * the same place find nothing (404) rather than audit it twice.
   */
  async forget(caller: Identity, place: PlaceRef, reason: string): Promise<ForgottenPlace> {
    this.#mustAdminister(caller);
    const { store, audit } = this.options;
    const forgotten = await store.forgetMaskedColumnPlace(place.scope, place.table_oid, place.attnum);
    if (forgotten.length === 0) {
      throw new PlaceAdminError('not_found', `no masked column place ${maskedColumnPlaceUid(place)} is noted (GET /v1/masking/places lists them)`);
    }
    try {
      const { stream, seq } = await audit.append(forgottenPlaceEvent({ ...place, forgotten, by: caller, reason }, audit.stream));
      return { forgotten, audit: { stream, seq } };
    } catch (err) {
      // A lost commit acknowledgement may leave the event stored after all: the trail then tells of a forget
      // that was undone, which masks more than it says, never less.
      return this.#putBack(caller, place, forgotten, err);
    }
  }

  async #putBack(caller: Identity, place: PlaceRef, forgotten: MaskedColumnPlace[], auditError: unknown): Promise<never> {
    const uid = maskedColumnPlaceUid(place);
    const log = { place: uid, by: caller.sub, audit_error: (auditError as Error).message };
    try {
      await this.options.store.noteMaskedColumnPlaces(place.scope, forgotten);
    } catch (err) {
      // The rows are logged whole so that an operator can note them again.
      this.options.logger.error({ ...log, rows: forgotten, err: (err as Error).message }, 'a masked column place was forgotten without its audit event and could not be put back; note its rows again');
      throw new PlaceAdminError('unaudited', `the audit event could not be written and masked column place ${uid} could not be put back: it is forgotten unaudited, its rows are in the gateway's log`);
    }
    this.options.logger.error(log, 'the audit event of a masked column place\'s forget could not be written; the place was put back');
    throw new PlaceAdminError('unaudited', `the audit event could not be written, so masked column place ${uid} was put back: nothing was forgotten`);
  }

  #mustAdminister(caller: Identity): void {
    if (!isHuman(caller)) {
      throw new PlaceAdminError('forbidden', `${caller.sub} is an agent (or acts for someone); only people in masking.admin_groups may list and forget masked column places`);
    }
    if (!caller.groups.some((g) => this.options.adminGroups.includes(g))) {
      throw new PlaceAdminError('forbidden', `${caller.sub} is not in masking.admin_groups, whose members alone may list and forget masked column places`);
    }
  }
}
