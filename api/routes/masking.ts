import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { TokenVerifier } from '../../engine/identity/identity.js';
import { PlaceAdminError, type MaskedColumnPlaceAdmin, type PlaceAdminErrorCode } from '../../engine/masking/place-admin.js';
import type { MaskedColumnPlace } from '../../engine/store/store.js';
import { authenticate } from '../auth.js';
import { guarded, parseInput } from './guarded.js';

export interface MaskingRouteOptions {
  places: Pick<MaskedColumnPlaceAdmin, 'list' | 'forget'>;
  verifier: TokenVerifier;
}

const forgetBody = z.strictObject({
  scope: z.string().min(1),
  /** A PostgreSQL OID is unsigned 32-bit, an attribute number signed 16-bit. */
  table_oid: z.int().min(0).max(0xffff_ffff),
  attnum: z.int().min(-32_768).max(32_767),
  reason: z.string().trim().min(1, { message: 'say why the place no longer holds a masked column' }).max(2000),
});

const ERROR_STATUS: Record<PlaceAdminErrorCode, number> = { forbidden: 403, not_found: 404, unaudited: 500 };
const placeAdminStatus = (err: unknown) => (err instanceof PlaceAdminError ? ERROR_STATUS[err.code] : undefined);

/**
 * Where the Postgres proxy found masked columns, for masking.admin_groups
 * (the service refuses everyone else). Every call carries an OIDC bearer token.
 *
 * GET  /v1/masking/places                                           every place, with its scope
 * POST /v1/masking/places/forget {scope, table_oid, attnum, reason}  unmasks the place, audited
 */
export function registerMaskingRoutes(app: FastifyInstance, { places, verifier }: MaskingRouteOptions): void {
  app.get('/v1/masking/places', async (request, reply) => guarded(reply, 'masked column places request', async () => {
    const caller = await authenticate(request, verifier);
    return { places: (await places.list(caller)).map((p) => placeView(p.scope, p)) };
  }, placeAdminStatus));

  app.post('/v1/masking/places/forget', async (request, reply) => guarded(reply, 'masked column place forget', async () => {
    const caller = await authenticate(request, verifier);
    const { reason, ...place } = parseInput(forgetBody, request.body, 'body');
    const { forgotten, audit } = await places.forget(caller, place, reason);
    return { forgotten: forgotten.map((p) => placeView(place.scope, p)), audit };
  }, placeAdminStatus));
}

/** Times as ISO-8601, as the rest of the API shows them. */
function placeView(scope: string, p: MaskedColumnPlace): Record<string, unknown> {
  return { scope, rule_column: p.rule_column, table_oid: p.table_oid, attnum: p.attnum, noted_at: new Date(p.noted_at).toISOString() };
}
