/**
 * Forgetting masked column places, end to end on a gateway started as
 * `serve` starts it: places noted through the store (as the Postgres proxy
 * notes them), listed and forgotten on /v1/masking/places by members of
 * masking.admin_groups only, each forget in the audit trail with its
 * reason, and `gatehouse masking places|forget` over the same API.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiServer } from '../../api/server.js';
import { loadConfig } from '../../engine/config/load.js';
import type { GatehouseConfig } from '../../engine/config/schema.js';
import { startGateway, type Gateway } from '../../engine/gateway.js';
import { mintDevToken } from '../../engine/identity/dev-issuer.js';
import type { MaskedColumnPlace } from '../../engine/store/store.js';
import { runCliAsync } from '../helpers/cli.js';
import { makeBundle } from '../helpers/gateway-bundle.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';

const logger = pino({ level: 'silent' });

let dir: string;
let config: GatehouseConfig;
let gateway: Gateway;
let app: FastifyInstance;

const ADMIN = 'dana';
const token = (sub: string, groups: string[]) => mintDevToken(config.identity.dev_issuer, { sub, groups, ttlSeconds: 300, agent: false });
const bearer = async (sub: string, groups: string[]) => ({ authorization: `Bearer ${await token(sub, groups)}` });
const asAdmin = () => bearer(ADMIN, ['dba', 'masking-admins']);
const asAnalyst = () => bearer('agent-analyst', ['analysts']);

const noted = (rule_column: string, table_oid: number, attnum: number, noted_at = 1_750_000_000_000): MaskedColumnPlace =>
  ({ rule_column, table_oid, attnum, noted_at });
/** A place as the API shows it: with its scope, noted_at as ISO-8601. */
const shown = (scope: string, p: MaskedColumnPlace) => ({ scope, rule_column: p.rule_column, table_oid: p.table_oid, attnum: p.attnum, noted_at: new Date(p.noted_at).toISOString() });

const forget = async (body: Record<string, unknown>, headers?: Record<string, string>) =>
  app.inject({ method: 'POST', url: '/v1/masking/places/forget', headers: headers ?? (await asAdmin()), payload: body });

/** What the tests pick events out by; the rest is matched whole. */
interface AuditedEvent {
  activity_name?: string;
  comment?: string | null;
  actor?: { user?: { uid?: string } };
  entity?: { uid?: string; type?: string };
}

/** Every event of this gateway's audit stream, parsed. */
async function auditEvents(): Promise<AuditedEvent[]> {
  const events: AuditedEvent[] = [];
  for await (const r of gateway.store.readAudit({ stream: gateway.audit.stream })) events.push(JSON.parse(r.event) as AuditedEvent);
  return events;
}

beforeAll(async () => {
  dir = makeTempDir('gatehouse-masking-places-');
  makeBundle({ out: join(dir, 'bundle.tar.gz'), revision: 'masking-places-test' });
  const configFile = join(dir, 'gatehouse.yaml');
  writeFileSync(configFile, `
policy:
  bundle:
    source: bundle.tar.gz
identity:
  dev_issuer: {enabled: true, key_file: dev.jwk}
audit:
  stream: gw-masking
masking:
  admin_groups: [masking-admins]
`);
  config = loadConfig(configFile);
  gateway = await startGateway(config, logger);
  app = createApiServer({ engine: gateway.engine, logger, gateway });
});

afterAll(async () => {
  await app?.close();
  await gateway?.stop();
  removeDir(dir);
});

describe('GET /v1/masking/places', () => {
  const scope = 'orders-db:7714660835413381223/16384';
  const places = [noted('public.customers.ssn', 16390, 4), noted('public.customers.email', 16390, 3)];
  beforeAll(() => gateway.store.noteMaskedColumnPlaces(scope, places));

  it('needs a token', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/masking/places' });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({ error: 'token rejected (malformed): send an OIDC token: Authorization: Bearer <token>' });
  });

  it('is refused to callers outside masking.admin_groups, naming the setting', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/masking/places', headers: await asAnalyst() });
    expect(res.statusCode).toBe(403);
    expect(res.json().error).toBe('agent-analyst is not in masking.admin_groups, whose members alone may list and forget masked column places');
  });

  it('is refused to an agent, or a token acting for an admin, even with the admin group', async () => {
    // A delegated (RFC 8693) token carries its human's groups; forgetting a place can unmask a renamed PII column.
    const forAdmin = { authorization: `Bearer ${await mintDevToken(config.identity.dev_issuer, { sub: 'agent-sre-2', act: ADMIN, groups: ['masking-admins'], ttlSeconds: 300 })}` };
    const agent = { authorization: `Bearer ${await mintDevToken(config.identity.dev_issuer, { sub: 'agent-sre-2', groups: ['masking-admins'], ttlSeconds: 300, agent: true })}` };
    for (const headers of [forAdmin, agent]) {
      const res = await app.inject({ method: 'GET', url: '/v1/masking/places', headers });
      expect(res.statusCode).toBe(403);
      expect(res.json().error).toMatch(/^agent-sre-2 is an agent \(or acts for someone\); only people in masking.admin_groups/);
    }
  });

  it('lists every place, with its scope, to an admin', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/masking/places', headers: await asAdmin() });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().places).toEqual(expect.arrayContaining([shown(scope, places[1]!), shown(scope, places[0]!)]));
  });
});

describe('POST /v1/masking/places/forget', () => {
  const scope = 'crm-db:7714660835413381223/16500';
  // Two rules' columns found at one place, and the column beside it.
  const place = [noted('public.contacts.ssn', 17001, 2, 1_750_000_000_000), noted('ssn', 17001, 2, 1_750_000_100_000)];
  const neighbour = noted('public.contacts.ssn', 17001, 3);
  beforeAll(() => gateway.store.noteMaskedColumnPlaces(scope, [...place, neighbour]));

  it('forgets a place for an admin who says why, and audits it before answering', async () => {
    const reason = 'column 2 of contacts_old holds salted hashes since ticket OPS-7';
    const res = await forget({ scope, table_oid: 17001, attnum: 2, reason });
    expect(res.statusCode, res.body).toBe(200);
    const answer = res.json();
    expect(answer.forgotten).toEqual(place.map((p) => shown(scope, p)));
    expect(await gateway.store.maskedColumnPlaces(scope)).toEqual([neighbour]);

    const [event, ...more] = (await auditEvents()).filter((e) => e.entity?.type === 'masked_column_place');
    expect(more).toEqual([]);
    expect(answer.audit).toEqual({ stream: gateway.audit.stream, seq: expect.any(Number) });
    expect(event).toMatchObject({
      class_uid: 3004,
      class_name: 'Entity Management',
      category_uid: 3,
      activity_id: 4,
      activity_name: 'Delete',
      type_uid: 300404,
      status: 'Success',
      message: `masked column place ${scope}/17001/2 forgotten by ${ADMIN}`,
      actor: { user: { uid: ADMIN, type: 'User', groups: [{ name: 'dba' }, { name: 'masking-admins' }] }, idp: { name: config.identity.dev_issuer!.issuer } },
      comment: reason,
      // The rows as they were stored, noted_at and all: enough to put them back.
      entity: { uid: `${scope}/17001/2`, type: 'masked_column_place', data: place },
      unmapped: { agent: false, act: null, masked_column_place: { scope, table_oid: 17001, attnum: 2 } },
    });
  });

  it('answers 404, and audits nothing, for a place not noted', async () => {
    const before = (await auditEvents()).length;
    const res = await forget({ scope, table_oid: 17001, attnum: 2, reason: 'again' });
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toBe(`no masked column place ${scope}/17001/2 is noted (GET /v1/masking/places lists them)`);
    expect((await auditEvents()).length).toBe(before);
  });

  it('needs a reason, and takes no other field', async () => {
    const missing = await forget({ scope, table_oid: 17001, attnum: 3 });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error).toMatch(/^reason: /);
    const blank = await forget({ scope, table_oid: 17001, attnum: 3, reason: '  ' });
    expect(blank.statusCode).toBe(400);
    expect(blank.json().error).toMatch(/^reason: say why/);
    const extra = await forget({ scope, table_oid: 17001, attnum: 3, reason: 'x', rule_column: 'ssn' });
    expect(extra.statusCode).toBe(400);
    expect(extra.json().error).toMatch(/rule_column/);
    expect(await gateway.store.maskedColumnPlaces(scope)).toEqual([neighbour]);
  });

  it('is refused to callers outside masking.admin_groups, and without a token', async () => {
    const refused = await forget({ scope, table_oid: 17001, attnum: 3, reason: 'mine now' }, await asAnalyst());
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error).toMatch(/masking\.admin_groups/);
    const anonymous = await forget({ scope, table_oid: 17001, attnum: 3, reason: 'mine now' }, {});
    expect(anonymous.statusCode).toBe(401);
    expect(await gateway.store.maskedColumnPlaces(scope)).toEqual([neighbour]);
  });
});

describe('gatehouse masking', () => {
  const scope = 'billing-db:7714660835413381223/16600';
  const places = [noted('public.cards.pan', 18001, 5), noted('public.cards.pan', 18002, 5)];
  let server: string;
  beforeAll(async () => {
    await gateway.store.noteMaskedColumnPlaces(scope, places);
    server = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  const cli = async (args: string[], sub = ADMIN, groups = ['masking-admins']) =>
    runCliAsync(['masking', ...args, '--server', server, '--token', await token(sub, groups)]);

  it('places: a table of every place, or the API\'s JSON', async () => {
    const table = await cli(['places']);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^SCOPE\s+RULE COLUMN\s+TABLE OID\s+ATTNUM\s+NOTED AT$/);
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${scope}\\s+public\\.cards\\.pan\\s+18002\\s+5\\s+2025-06-15T15:06:40Z$`)));

    const json = await cli(['places', '--json']);
    expect(json.code, json.stderr).toBe(0);
    const api = await app.inject({ method: 'GET', url: '/v1/masking/places', headers: await asAdmin() });
    expect(JSON.parse(json.stdout)).toEqual(api.json());
  });

  it('forget: deletes the place, audited, and says what it forgot', async () => {
    const res = await cli(['forget', '--scope', scope, '--table-oid', '18001', '--attnum', '5', '--reason', 'pan moved to the vault']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain(`forgot masked column place ${scope}/18001/5 (public.cards.pan), audited at ${gateway.audit.stream}#`);
    expect(await gateway.store.maskedColumnPlaces(scope)).toEqual([places[1]]);
    const events = (await auditEvents()).filter((e) => e.entity?.uid === `${scope}/18001/5`);
    expect(events.map((e) => [e.activity_name, e.comment, e.actor?.user?.uid])).toEqual([['Delete', 'pan moved to the vault', ADMIN]]);
  });

  it('says, in one line, what the gateway refused', async () => {
    const unknown = await cli(['forget', '--scope', scope, '--table-oid', '18001', '--attnum', '5', '--reason', 'again']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(`gatehouse: ${server}/v1/masking/places/forget answered 404: no masked column place ${scope}/18001/5 is noted (GET /v1/masking/places lists them)\n`);
    const outsider = await cli(['places'], 'agent-analyst', ['analysts']);
    expect(outsider.code).toBe(1);
    expect(outsider.stderr).toMatch(/^gatehouse: .* answered 403: agent-analyst is not in masking.admin_groups/);
  });

  it('refuses a table OID or attnum that is not a whole number before asking', async () => {
    const res = await cli(['forget', '--scope', scope, '--table-oid', '18002x', '--attnum', '5', '--reason', 'typo']);
    expect(res.code).toBe(2);
    expect(res.stderr).toBe('gatehouse: --table-oid 18002x: expected a whole number\n');
    expect(await gateway.store.maskedColumnPlaces(scope)).toEqual([places[1]]);
  });
});

// Last: it closes the gateway's audit log.
describe('a forget whose audit event cannot be written', () => {
  it('puts the place back as it was and answers 500: nothing is forgotten unaudited', async () => {
    const scope = 'hr-db:7714660835413381223/16700';
    const place = [noted('public.staff.salary', 19001, 7, 1_740_000_000_000)];
    await gateway.store.noteMaskedColumnPlaces(scope, place);
    await gateway.audit.close();

    const res = await forget({ scope, table_oid: 19001, attnum: 7, reason: 'salary column now holds grades' });
    expect(res.statusCode).toBe(500);
    expect(res.json().error).toBe(`the audit event could not be written, so masked column place ${scope}/19001/7 was put back: nothing was forgotten`);
    expect(await gateway.store.maskedColumnPlaces(scope)).toEqual(place);
  });
});
