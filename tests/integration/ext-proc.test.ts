/**
 * The ExternalProcessor over real gRPC: a grpc-js server with the handler,
 * and a grpc-js client built from Envoy's own protos sending what Envoy's
 * ext_proc filter sends (request headers, response headers, the buffered
 * response body, each with the ext_authz metadata forwarded as a Struct).
 * The gateway behind it is real (bundle, authorizer, audit log, SQLite
 * store, recorder), so the Masked audit event and the HAR recording are read
 * back from the store, and `gatehouse sessions replay` runs as a user would.
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { credentials, Server, ServerCredentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../engine/config/load.js';
import type { GatehouseConfig } from '../../engine/config/schema.js';
import { startGateway, type Gateway } from '../../engine/gateway.js';
import { mintDevToken } from '../../engine/identity/dev-issuer.js';
import type { HttpExchangeEntry } from '../../engine/recording/types.js';
import { envoyServices } from '../../ext-authz/envoy-protos.js';
import type { ExchangeMetadata } from '../../ext-authz/exchange-metadata.js';
import { BodyReadAborted } from '../../ext-authz/process/body-threads.js';
import { BodyThreads, createExternalProcessor } from '../../ext-authz/process/index.js';
import { HeaderMap } from '../../proxies/http/header-map.js';
import { applyHeaderMutation } from '../../proxies/http/header-mutation.js';
import { jsonToStruct } from '../../ext-authz/struct.js';
import { runCli } from '../helpers/cli.js';
import { makeBundle } from '../helpers/gateway-bundle.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';
import { waitFor } from '../helpers/wait.js';

const logger = pino({ level: 'silent' });
const HASH_KEY = 'an-ext-proc-test-hash-key-of-32-bytes';
const CREDENTIAL = 'upstream-crm-secret-value';

let dir: string;
let configFile: string;
let config: GatehouseConfig;
let gateway: Gateway;
let server: Server;
let smallServer: Server;
const bodies = new BodyThreads({ hashKey: HASH_KEY });
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let client: any;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let smallClient: any;

async function serve(maxBodyBytes?: number, own: { bodies?: BodyThreads; logger?: Logger } = {}): Promise<{ server: Server; address: string }> {
  const s = new Server();
  s.addService(envoyServices().externalProcessor, createExternalProcessor({
    recorder: gateway.recorder, authorizer: gateway.authorizer, hashKey: HASH_KEY, logger: own.logger ?? logger, bodies: own.bodies ?? bodies, ...(maxBodyBytes ? { maxBodyBytes } : {}),
  }));
  const port = await new Promise<number>((resolve, reject) => s.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { server: s, address: `127.0.0.1:${port}` };
}

beforeAll(async () => {
  dir = makeTempDir('gatehouse-ext-proc-');
  makeBundle({ out: join(dir, 'bundle.tar.gz'), revision: 'ext-proc-test' });
  configFile = join(dir, 'gatehouse.yaml');
  writeFileSync(configFile, `
policy:
  bundle:
    source: bundle.tar.gz
identity:
  dev_issuer: {enabled: true, key_file: dev.jwk}
audit:
  stream: gw-ext-proc
recordings:
  flush_interval_ms: 20
targets:
  - name: crm-api
    kind: http
    labels: {env: prod}
    upstream: {address: "http://127.0.0.1:18080"}
    credentials: {header: x-crm-key, value: "\${env:CRM_KEY}"}
`);
  config = loadConfig(configFile, { CRM_KEY: CREDENTIAL });
  gateway = await startGateway(config, logger);
  const Client = envoyServices().grpc.envoy.service.ext_proc.v3.ExternalProcessor;
  const main = await serve();
  server = main.server;
  client = new Client(main.address, credentials.createInsecure());
  const small = await serve(4096);
  smallServer = small.server;
  smallClient = new Client(small.address, credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  smallClient?.close();
  server?.forceShutdown();
  smallServer?.forceShutdown();
  await gateway?.stop();
  await bodies.close();
  removeDir(dir);
});

// ── Envoy-shaped messages ─────────────────────────────────────────────────

const CRM_RULES: ExchangeMetadata['mask'] = [
  { field: 'customers[*].email', strategy: 'partial' },
  { field: 'customers[*].phone', strategy: 'hash' },
  { field: 'customers[*].notes', detectors: ['email', 'payment_card'], strategy: 'redact' },
];

function metadata(overrides: Partial<ExchangeMetadata> = {}): ExchangeMetadata {
  return {
    decision_id: randomUUID(),
    session_id: randomUUID(),
    target: 'crm-api',
    identity: { sub: 'agent:support-bot', iss: 'urn:gatehouse:dev', groups: ['support-agents'], agent: true, act: null },
    source_ip: '10.0.4.17',
    audit: null,
    mask: CRM_RULES,
    record: false,
    credential_header: 'x-crm-key',
    ...overrides,
  };
}

/** What Envoy forwards: the ext_authz namespace, holding what Check returned as dynamic_metadata. */
function context(meta: unknown): object {
  const value = { decision_id: (meta as { decision_id?: unknown }).decision_id, exchange: JSON.stringify(meta) };
  return { filter_metadata: { 'envoy.filters.http.ext_authz': jsonToStruct({ gatehouse: value }) } };
}

/** Envoy sends header values as raw bytes. */
const headerMap = (headers: Record<string, string>) => ({ headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) });

const REQUEST_HEADERS = {
  ':method': 'GET', ':path': '/api/customers?limit=2&access_token=agent-query-token', ':authority': 'crm.internal', ':scheme': 'https',
  'x-crm-key': CREDENTIAL, authorization: 'Bearer agent-jwt', cookie: 'sid=agent-cookie', accept: 'application/json', 'accept-encoding': 'gzip',
};

function requestHeaders(meta: unknown, extra: Record<string, string> = {}, endOfStream = true) {
  return { request_headers: { headers: headerMap({ ...REQUEST_HEADERS, ...extra }), end_of_stream: endOfStream }, metadata_context: context(meta) };
}
function responseHeaders(meta: unknown, headers: Record<string, string>, endOfStream = false) {
  return { response_headers: { headers: headerMap({ ':status': '200', ...headers }), end_of_stream: endOfStream }, metadata_context: context(meta) };
}
function responseBody(meta: unknown, body: Buffer | string, endOfStream = true) {
  return { response_body: { body: Buffer.isBuffer(body) ? body : Buffer.from(body), end_of_stream: endOfStream }, metadata_context: context(meta) };
}
/** Sent (response_trailer_mode SEND) after response headers or a body not marked as the end. */
function responseTrailers(meta: unknown, trailers: Record<string, string>) {
  return { response_trailers: { trailers: headerMap(trailers) }, metadata_context: context(meta) };
}

const CUSTOMERS = {
  customers: [
    { id: 1, email: 'jane.doe@example.com', phone: '+1 415 555 2671', notes: 'paid with 4111 1111 1111 1111, cc jd@example.org' },
    { id: 2, email: 'bob@example.net', phone: '+1 415 555 2672', notes: 'vip' },
  ],
};
const RAW_VALUES = /jane\.doe|bob@|4111|jd@example|415 555/;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Reply = any;

/**
 * Sends the messages in order as Envoy does, each after the answer to the
 * one before, and stops at an ImmediateResponse or the end of the stream.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function exchange(messages: object[], via: any = client): Promise<Reply[]> {
  const call: ClientDuplexStream<object, Reply> = via.Process();
  const inbox: Reply[] = [];
  let waiting: ((r: Reply | null) => void) | null = null;
  let ended = false;
  const deliver = (r: Reply | null) => {
    if (waiting) {
      const w = waiting;
      waiting = null;
      w(r);
    } else if (r) inbox.push(r);
  };
  call.on('data', (r: Reply) => deliver(r));
  call.on('end', () => { ended = true; deliver(null); });
  call.on('error', () => { ended = true; deliver(null); });
  const next = () => (inbox.length ? Promise.resolve(inbox.shift()) : ended ? Promise.resolve(null) : new Promise<Reply | null>((resolve) => (waiting = resolve)));
  const replies: Reply[] = [];
  for (const message of messages) {
    call.write(message);
    const reply = await next();
    if (!reply) break;
    replies.push(reply);
    if (reply.immediate_response) break;
  }
  call.end();
  return replies;
}

const setHeaders = (mutation: Reply): Record<string, string> =>
  Object.fromEntries((mutation?.set_headers ?? []).map((h: Reply) => [h.header.key, Buffer.from(h.header.raw_value ?? []).toString()]));

/** The recorder flushed, the entries of a session once it has any (recording is asynchronous). */
async function recordedEntries(sessionId: string, what: string) {
  expect(await gateway.recorder.flush()).toBe(true);
  return waitFor(async () => {
    const found = await gateway.store.sessionEntries(sessionId);
    return found.length > 0 && found;
  }, what);
}

/** A session once the recorder has written it closed: its header (with dropped_entries) and its entries, whichever were kept. */
async function endedSession(sessionId: string, what: string) {
  expect(await gateway.recorder.flush()).toBe(true);
  const session = await waitFor(async () => {
    const found = await gateway.store.getSession(sessionId);
    return found?.ended_at != null && found;
  }, what);
  return { session, entries: await gateway.store.sessionEntries(sessionId) };
}

async function maskedBody(meta: ExchangeMetadata, body: Buffer | string, headers: Record<string, string>) {
  const replies = await exchange([requestHeaders(meta), responseHeaders(meta, headers), responseBody(meta, body)]);
  expect(replies.map((r) => r.response)).toEqual(['request_headers', 'response_headers', 'response_body']);
  return { replies, common: replies[2].response_body.response ?? {} };
}

// ── The exchange ──────────────────────────────────────────────────────────

describe('ExternalProcessor: masking JSON responses', () => {
  it('masks the fields of the decision, sets Content-Length and asks upstream for an identity encoding', async () => {
    const meta = metadata();
    const { replies, common } = await maskedBody(meta, JSON.stringify(CUSTOMERS), { 'content-type': 'application/json', 'content-length': String(JSON.stringify(CUSTOMERS).length) });
    expect(setHeaders(replies[0].request_headers.response.header_mutation)).toEqual({ 'accept-encoding': 'identity' });
    expect(replies[1].response_headers.response?.header_mutation).toBeUndefined();

    const body = common.body_mutation.body as Buffer;
    const masked = JSON.parse(body.toString()) as typeof CUSTOMERS;
    expect(masked.customers[0]!.email).toBe('j***@example.com');
    expect(masked.customers[0]!.phone).toMatch(/^hash:[0-9a-f]{16}$/);
    expect(masked.customers[0]!.notes).toBe('paid with [REDACTED:payment_card], cc [REDACTED:email]');
    expect(masked.customers[1]!.notes).toBe('vip');
    expect(body.toString()).not.toMatch(RAW_VALUES);
    expect(setHeaders(common.header_mutation)).toEqual({ 'content-length': String(body.length) });
    expect(common.header_mutation.remove_headers).toContain('content-encoding');
  });

  it.each([
    ['gzip', gzipSync],
    ['br', brotliCompressSync],
  ])('decodes a %s body, masks it and sends it back identity-encoded', async (encoding, compress) => {
    const { common } = await maskedBody(metadata(), compress(Buffer.from(JSON.stringify(CUSTOMERS))), { 'content-type': 'application/json; charset=utf-8', 'content-encoding': encoding });
    const body = common.body_mutation.body as Buffer;
    expect(JSON.parse(body.toString()).customers[1].email).toBe('b***@example.net');
    expect(body.toString()).not.toMatch(RAW_VALUES);
    expect(common.header_mutation.remove_headers).toContain('content-encoding');
    expect(setHeaders(common.header_mutation)['content-length']).toBe(String(body.length));
  });

  it('leaves a body nothing matched byte for byte; one that came compressed goes out decoded', async () => {
    const plain = await maskedBody(metadata(), '{"orders":[{"id":1}]}', { 'content-type': 'application/json' });
    expect(plain.common.body_mutation).toBeUndefined();
    expect(plain.common.header_mutation).toBeUndefined();
    // A gzip header's file name is bytes the decoder skips and a client can read: the credential, or PII, could ride there.
    const named = gzipSync(Buffer.from('{"orders":[{"id":1}]}'));
    const withName = Buffer.concat([named.subarray(0, 3), Buffer.from([named[3]! | 0x08]), named.subarray(4, 10), Buffer.from(`${CREDENTIAL}\0`), named.subarray(10)]);
    const { common } = await maskedBody(metadata(), withName, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    expect((common.body_mutation.body as Buffer).toString()).toBe('{"orders":[{"id":1}]}');
    expect(common.header_mutation.remove_headers).toContain('content-encoding');
  });

  it('keeps long numbers of a rewritten body as they came, and finds a 19-digit card sent as a number', async () => {
    const body = '{"customers":[{"id":1234567890123456789,"email":"jo@example.com","notes":4000123456789010016}]}';
    const { common } = await maskedBody(metadata(), body, { 'content-type': 'application/json' });
    expect((common.body_mutation.body as Buffer).toString()).toBe('{"customers":[{"id":1234567890123456789,"email":"j***@example.com","notes":"[REDACTED:payment_card]"}]}');
  });

  it('masks a JSON body served under another content type', async () => {
    const { common } = await maskedBody(metadata(), JSON.stringify(CUSTOMERS), { 'content-type': 'text/plain' });
    expect((common.body_mutation.body as Buffer).toString()).not.toMatch(RAW_VALUES);
  });

  it('masks what lenient readers take for JSON (NaN, comments, trailing commas) and sends it as strict JSON', async () => {
    const json = JSON.stringify(CUSTOMERS);
    for (const body of [json.replace('"id":2', '"id":NaN'), `// customers\n${json}`, json.replace(/}]}$/, '},]}')]) {
      const { common } = await maskedBody(metadata(), body, { 'content-type': 'text/plain' });
      const sent = (common.body_mutation.body as Buffer).toString();
      expect(sent, body).not.toMatch(RAW_VALUES);
      expect(() => JSON.parse(sent)).not.toThrow();
    }
  });

  it('masks JSON sequences (NDJSON, RFC 7464) and JSON behind an anti-XSSI prefix, as clients read them', async () => {
    const one = JSON.stringify(CUSTOMERS.customers[0]);
    const two = JSON.stringify(CUSTOMERS.customers[1]);
    for (const [type, body, shape] of [
      ['application/x-ndjson', `${one}\n${two}\n`, /^\{.*\}\n\{.*\}\n$/],
      ['application/x-ndjson', `0\n${one}\n`, /^0\n\{.*\}\n$/],
      ['text/plain', `"customers"\n${one}`, /^"customers"\n\{.*\}\n$/],
      ['text/plain', `{"a":1}\n${one}`, /^\{"a":1\}\n\{.*\}\n$/],
      ['application/json-seq', `\u001e${one}\n\u001e${two}\n`, new RegExp(String.raw`^\x1e\{.*\}\n\x1e\{.*\}\n$`)],
      ['application/json', `)]}',\n${JSON.stringify(CUSTOMERS)}`, /^\)\]\}',\n\{/],
      ['text/plain', `while(1);${JSON.stringify(CUSTOMERS)}`, /^while\(1\);\{/],
    ] as const) {
      const { common } = await maskedBody(metadata({ mask: [{ field: '$..email', strategy: 'partial' }, { field: '$..notes', detectors: ['payment_card'], strategy: 'redact' }] }), body, { 'content-type': type });
      const sent = (common.body_mutation.body as Buffer).toString();
      expect(sent, `${type}: ${body}`).not.toMatch(/jane\.doe|bob@|4111/);
      expect(sent).toMatch(shape);
    }
  });

  it('refuses, under field rules, a body that starts like JSON but is not JSON it can read whole, or JSON in a charset other than UTF-8', async () => {
    for (const [type, body] of [
      ['text/plain', `${JSON.stringify(CUSTOMERS)} trailing`],
      ['application/octet-stream', `${JSON.stringify(CUSTOMERS)}{}`],
      // UTF-8 bytes, but the client decodes UTF-7: "+AGU-mail" is "email" to it. However the parameter is spelled.
      ['application/json; charset=utf-7', '{"customers":[{"+AGU-mail":"ada+AEA-example.com"}]}'],
      ['application/json; charset = utf-7', '{"customers":[{"+AGU-mail":"ada+AEA-example.com"}]}'],
      ['application/json; charset=utf-8; CHARSET="UTF-7"', '{"customers":[{"+AGU-mail":"ada+AEA-example.com"}]}'],
      ['application/json, application/json; charset=utf-7', '{"customers":[{"+AGU-mail":"ada+AEA-example.com"}]}'],
      ['text/plain; charset=hz', '{"customers":[{"em~{~}ail":"ada@example.com"}]}'],
      ['text/plain; charset=utf-7', '+AHs-"customers":[{"email":"ada@example.com"}]}'],
      ['application/octet-stream; charset=cp037', Buffer.from([0xc0, 0x7f, 0x85, 0x94])],
      // Values a streaming or lenient client reads, though the whole is no JSON the gateway reads.
      ['application/x-ndjson', '0\n{"email":"ada@example.com"}\n<eof>\n'],
      ['text/plain', '0\r{"email":"ada@example.com"}\r'],
      ['text/plain', '0 {"em\\u0061il":"ada@example.com"}'],
      ['text/plain', "0 {'email': 'ada@example.com'}"],
      ['text/plain', '0 {"email" /* c */ : "ada@example.com"}'],
      ['text/plain', '0 {"\\x65mail": "ada@example.com"}'],
      // Keys without quotes, as JavaScript and JSON5 read them.
      ['application/javascript', 'cb({email:"ada@example.com"});'],
      ['text/plain', '0 {name: "Ada", email: "ada@example.com"}'],
      // JSON inside a JSON string: a client parses the string and reads the member.
      ['application/json', JSON.stringify({ data: JSON.stringify({ email: 'ada@example.com' }) })],
      ['application/json', JSON.stringify({ events: [{ payload: ` [${JSON.stringify({ customers: [] })}]` }] })],
      // Encoded twice, or as an array of encoded documents.
      ['application/json', JSON.stringify({ data: JSON.stringify(JSON.stringify({ email: 'ada@example.com' })) })],
      ['application/json', JSON.stringify({ data: JSON.stringify([JSON.stringify({ email: 'ada@example.com' })]) })],
      // In base64 (Pub/Sub's message.data) or base64url, as a JWT's claims, or base64 of base64.
      ['application/json', JSON.stringify({ message: { data: Buffer.from(JSON.stringify({ email: 'ada@example.com' })).toString('base64') } })],
      ['application/json', JSON.stringify({ id_token: `eyJhbGciOiJub25lIn0.${Buffer.from(JSON.stringify({ sub: 'u1', email: 'ada@example.com' })).toString('base64url')}.` })],
      ['application/json', JSON.stringify({ data: Buffer.from(Buffer.from('{"email":"ada@example.com"}').toString('base64')).toString('base64') })],
      // An event stream whose data lines split a member from its colon: an EventSource client joins them.
      ['text/event-stream', 'data: {"id":1,"email"\ndata: :"ada@example.com"}\n\n'],
      ['text/event-stream', 'event: x\r\ndata:{"id":1,"em\\u0061il"\r\ndata\r\ndata: :"ada@example.com"}\r\n\r\n'],
      // One byte that is not UTF-8: the rest is still JSON to a client that decodes Latin-1.
      ['text/plain', Buffer.concat([Buffer.from(`${' '.repeat(70)}{"customers":[{"email":"ada@example.com","note":"caf`), Buffer.from([0xe9]), Buffer.from('"}]}')])],
      ['application/octet-stream', Buffer.concat([Buffer.from('x\n{"email":"ada@example.com"}\n'), Buffer.from([0xe9])])],
    ] as const) {
      const replies = await exchange([requestHeaders(metadata()), responseHeaders(metadata(), { 'content-type': type }), responseBody(metadata(), body)]);
      expect(replies.at(-1).immediate_response?.status.code, `${type}: ${body.toString()}`).toBe('BadGateway');
    }
  });

  it('passes prose that names a masked member (under a "$" rule, which reads text), and JSON strings that hold other JSON', async () => {
    const textRule = metadata({ mask: [...CRM_RULES, { field: '$', detectors: ['email'], strategy: 'redact' }] });
    for (const [type, body] of [
      ['text/plain', 'Contact email: write to the support desk'],
      ['application/json', JSON.stringify({ customers: [], data: JSON.stringify({ status: 'ok' }) })],
      // Base64 that is not JSON with a masked member: an id, a digest, JSON of other members.
      ['application/json', JSON.stringify({ customers: [], etag: 'ZGVhZGJlZWZkZWFkYmVlZg==', id: 'abcdef0123456789', data: Buffer.from('{"status":"ok"}').toString('base64') })],
      ['text/event-stream', 'data: {"status":"ok"}\n\nevent: ping\ndata: keep-alive\n\n'],
    ] as const) {
      const replies = await exchange([requestHeaders(textRule), responseHeaders(textRule, { 'content-type': type }), responseBody(textRule, body)]);
      expect(replies.at(-1).immediate_response, `${type}: ${body}`).toBeUndefined();
    }
  });

  it('refuses JSON that is not UTF-8 under a type that does not say JSON (Latin-1, UTF-16, UTF-32)', async () => {
    const json = JSON.stringify(CUSTOMERS).replace('vip', 'vïp');
    for (const [type, body] of [
      ['text/plain; charset=iso-8859-1', Buffer.from(json, 'latin1')],
      ['text/plain', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(json, 'utf16le')])],
      ['text/plain', Buffer.from(json, 'utf16le').swap16()],
      ['application/octet-stream', Buffer.from([...Buffer.from(json, 'latin1')].flatMap((b) => [b, 0, 0, 0]))],
      // ASCII only: UTF-16 of it is valid UTF-8 (with NULs).
      ['text/plain', Buffer.from(JSON.stringify(CUSTOMERS), 'utf16le')],
      ['text/plain', Buffer.from(JSON.stringify(CUSTOMERS), 'utf16le').swap16()],
      // However much whitespace comes first.
      ['application/octet-stream', Buffer.from(' '.repeat(40) + JSON.stringify(CUSTOMERS), 'utf16le')],
      ['application/octet-stream', Buffer.from([...Buffer.from('\n'.repeat(33) + JSON.stringify(CUSTOMERS))].flatMap((b) => [0, 0, 0, b]))],
      // Not JSON a parser takes, but a member the rules mask, in UTF-16.
      ['text/plain', Buffer.from(`0 ${JSON.stringify(CUSTOMERS)}`, 'utf16le')],
    ] as const) {
      const replies = await exchange([requestHeaders(metadata()), responseHeaders(metadata(), { 'content-type': type }), responseBody(metadata(), body)]);
      expect(replies.at(-1).immediate_response?.status.code, `${type} ${body.subarray(0, 4).toString('hex')}`).toBe('BadGateway');
    }
    // Under field rules a declared charset other than UTF-8 is refused, whatever the body (clients decode by it).
    const declared = await exchange([requestHeaders(metadata()), responseHeaders(metadata(), { 'content-type': 'text/plain; charset=iso-8859-1' }), responseBody(metadata(), Buffer.from('Grüße aus Köln', 'latin1'))]);
    expect(declared.at(-1).immediate_response?.status.code).toBe('BadGateway');
  });

  it('refuses an approved request that repeats a header line (Check saw the lines joined with ",")', async () => {
    const repeated = (meta: ExchangeMetadata) => ({
      request_headers: { headers: { headers: [...headerMap(REQUEST_HEADERS).headers, { key: 'x-a', raw_value: Buffer.from('1') }, { key: 'x-a', raw_value: Buffer.from('2') }] }, end_of_stream: true },
      metadata_context: context(meta),
    });
    const approved = await exchange([repeated(metadata({ approval_id: randomUUID() }))]);
    expect(approved.at(-1).immediate_response?.status.code).toBe('Forbidden');
    // Without an approval the policy decided on the joined value, as Envoy sends it: it goes on.
    const plain = await exchange([repeated(metadata())]);
    expect(plain.at(-1).request_headers?.response).toBeDefined();
    const once = await exchange([requestHeaders(metadata({ approval_id: randomUUID() }), { 'x-a': '1,2' })]);
    expect(once.at(-1).request_headers?.response).toBeDefined();
  });

  it('refuses archives and compressed data it does not unpack when the policy masks the response, and passes them when it masks nothing', async () => {
    const json = Buffer.from(JSON.stringify(CUSTOMERS));
    // A ZIP's local file header, as any zip tool writes one: the rest of the archive does not matter to the check.
    const zip = Buffer.concat([Buffer.from('PK\x03\x04\x14\x00\x00\x00\x08\x00', 'latin1'), deflateRawSync(json)]);
    const bzip2 = Buffer.concat([Buffer.from('BZh91AY&SY', 'latin1'), Buffer.alloc(32, 7)]);
    const xz = Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.alloc(32, 7)]);
    for (const [type, body] of [['application/zip', zip], ['application/octet-stream', deflateSync(json)], ['application/x-bzip2', bzip2], ['application/x-xz', xz]] as const) {
      const replies = await exchange([requestHeaders(metadata()), responseHeaders(metadata(), { 'content-type': type }), responseBody(metadata(), body)]);
      expect(replies.at(-1).immediate_response?.status.code, type).toBe('BadGateway');
      const unmasked = await maskedBody(metadata({ mask: [] }), body, { 'content-type': type });
      expect(unmasked.common.body_mutation, type).toBeUndefined();
    }
    // Gzip left after the one layer the gateway decodes: a .json.gz served gzipped, gzip under br, or twice with no header.
    for (const [encoding, body] of [['gzip', gzipSync(gzipSync(json))], ['br', brotliCompressSync(gzipSync(json))], ['', gzipSync(gzipSync(json))]] as const) {
      const headers = { 'content-type': 'application/gzip', ...(encoding ? { 'content-encoding': encoding } : {}) };
      const replies = await exchange([requestHeaders(metadata()), responseHeaders(metadata(), headers), responseBody(metadata(), body)]);
      expect(replies.at(-1).immediate_response?.status.code, `gzip inside ${encoding || 'gzip, no header'}`).toBe('BadGateway');
    }
    // Text that happens to start with a zlib header's two bytes is text (read under a "$" rule: only it reads text).
    const text = await maskedBody(metadata({ mask: [...CRM_RULES, { field: '$', detectors: ['email'], strategy: 'redact' }] }), 'x^2 + y^2 = r^2', { 'content-type': 'text/plain' });
    expect(text.common.body_mutation).toBeUndefined();
  });

  it('refuses a body that is not JSON when the policy has only field rules (the caller picks the format), and scans it under a "$" detector rule', async () => {
    const text = 'Jane Doe <jane.doe@example.com>, card 4111 1111 1111 1111';
    // The records an API answers as JSON, asked for as CSV, XML or HTML (Accept, ?format=): no field rule reads them.
    for (const [type, body] of [
      ['text/plain', text],
      ['text/csv', 'id,name,email\n1,Ada,ada@example.com\n'],
      ['application/xml', '<customers><customer><email>ada@example.com</email></customer></customers>'],
      ['text/html', '<table><tr><td>ada@example.com</td></tr></table>'],
      ['application/yaml', 'customers:\n  - email: ada@example.com\n'],
      ['application/octet-stream', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0xff, 0x00])],
    ] as const) {
      const replies = await exchange([requestHeaders(metadata()), responseHeaders(metadata(), { 'content-type': type }), responseBody(metadata(), body)]);
      expect(replies.at(-1).immediate_response?.status.code, type).toBe('BadGateway');
      expect(replies.at(-1).immediate_response?.body.toString(), type).not.toContain('ada@example.com');
    }
    // Nothing to read: an empty or blank body passes.
    for (const body of ['', ' \r\n']) expect((await maskedBody(metadata(), body, { 'content-type': 'text/html' })).common.body_mutation).toBeUndefined();

    const scanned = await maskedBody(metadata({ mask: [...CRM_RULES, { field: '$', detectors: ['email', 'payment_card'], strategy: 'redact' }] }), text, { 'content-type': 'text/plain' });
    expect((scanned.common.body_mutation.body as Buffer).toString()).toBe('Jane Doe <[REDACTED:email]>, card [REDACTED:payment_card]');
    expect(setHeaders(scanned.common.header_mutation)['content-length']).toBe(String('Jane Doe <[REDACTED:email]>, card [REDACTED:payment_card]'.length));
  });

  it('replaces the whole body under a "$" rule without detectors', async () => {
    const { common } = await maskedBody(metadata({ mask: [{ field: '$', strategy: 'redact' }] }), '<html>secret</html>', { 'content-type': 'text/html' });
    expect((common.body_mutation.body as Buffer).toString()).toBe('[REDACTED]');
  });

  it('passes everything through untouched when the decision masks nothing', async () => {
    const replies = await exchange([requestHeaders(metadata({ mask: [] })), responseHeaders(metadata({ mask: [] }), { 'content-type': 'application/json' }), responseBody(metadata({ mask: [] }), 'not even json')]);
    // Identity encoding is still asked for: the body is read for the target's credential.
    expect(setHeaders(replies[0].request_headers.response.header_mutation)).toEqual({ 'accept-encoding': 'identity' });
    expect(replies[1].response_headers.response?.header_mutation).toBeUndefined();
    expect(replies[2].response_body.response?.body_mutation).toBeUndefined();
  });

  it('answers a response without a body at its headers', async () => {
    const replies = await exchange([requestHeaders(metadata()), responseHeaders(metadata(), { 'content-length': '0' }, true)]);
    expect(replies.map((r) => r.response)).toEqual(['request_headers', 'response_headers']);
  });
});

describe('ExternalProcessor: what must not come back', () => {
  it('takes the target\'s credential out of a body that echoes the request, whatever its type, masks or not', async () => {
    for (const [mask, type, body] of [
      [CRM_RULES, 'application/json', JSON.stringify({ headers: { 'x-crm-key': CREDENTIAL, accept: 'application/json' } })],
      [[], 'text/plain', `GET /api/customers HTTP/1.1\r\nx-crm-key: ${CREDENTIAL}\r\n`],
      [[], 'application/problem+json', JSON.stringify({ detail: `key ${CREDENTIAL} is not valid` })],
    ] as const) {
      const { common } = await maskedBody(metadata({ mask: [...mask] }), body, { 'content-type': type });
      const sent = (common.body_mutation.body as Buffer).toString();
      expect(sent).not.toContain(CREDENTIAL);
      expect(sent).toContain('[REDACTED:credential]');
      expect(setHeaders(common.header_mutation)['content-length']).toBe(String(Buffer.byteLength(sent)));
    }
  });

  it('takes the token out without its scheme, and refuses a binary body holding it', async () => {
    const meta = metadata({ mask: [], credential_header: 'authorization' });
    const replies = await exchange([
      requestHeaders(meta, { authorization: `Bearer ${CREDENTIAL}` }),
      responseHeaders(meta, { 'content-type': 'text/plain' }),
      responseBody(meta, `token ${CREDENTIAL} expired`),
    ]);
    expect((replies[2].response_body.response.body_mutation.body as Buffer).toString()).toBe('token [REDACTED:credential] expired');
    const binary = await exchange([
      requestHeaders(meta, { authorization: `Bearer ${CREDENTIAL}` }),
      responseHeaders(meta, { 'content-type': 'application/octet-stream' }),
      responseBody(meta, Buffer.concat([Buffer.from([0xff, 0xfe, 0x00]), Buffer.from(CREDENTIAL)])),
    ]);
    expect(binary.at(-1).immediate_response.status.code).toBe('BadGateway');
  });

  it('takes out the spellings an echo uses: JSON escapes, URL encoding, base64', async () => {
    const escaped = JSON.stringify({ echo: CREDENTIAL }).replace('-', '\\u002d');
    for (const body of [escaped, `{"url":"https://x/?k=${encodeURIComponent(CREDENTIAL)}"}`, `{"b64":"${Buffer.from(CREDENTIAL).toString('base64')}"}`]) {
      const { common } = await maskedBody(metadata({ mask: [] }), body, { 'content-type': 'application/json' });
      const sent = (common.body_mutation.body as Buffer).toString();
      expect(sent, body).toContain('[REDACTED:credential]');
      expect(JSON.stringify(JSON.parse(sent))).not.toContain(CREDENTIAL);
    }
  });

  it('finds the credential behind escapes in what lenient readers take for JSON, or refuses the body', async () => {
    const escaped = `\\u${CREDENTIAL.charCodeAt(0).toString(16).padStart(4, '0')}${CREDENTIAL.slice(1)}`;
    const lenient = await maskedBody(metadata({ mask: [] }), `{"n": NaN, "seen": "${escaped}"}`, { 'content-type': 'application/json5' });
    const sent = (lenient.common.body_mutation.body as Buffer).toString();
    expect(sent).toContain('[REDACTED:credential]');
    expect(sent).not.toContain(CREDENTIAL.slice(1));
    // Escaped in text that is not JSON at all: nothing to rewrite it in, so refused.
    const text = await exchange([requestHeaders(metadata({ mask: [] })), responseHeaders(metadata({ mask: [] }), { 'content-type': 'text/plain' }),
      responseBody(metadata({ mask: [] }), `key = '\\x${CREDENTIAL.charCodeAt(0).toString(16)}${CREDENTIAL.slice(1)}'`)]);
    expect(text.at(-1).immediate_response?.status.code).toBe('BadGateway');
  });

  it('refuses the credential written so that no spelling matches the text: wrapped, spaced, percent- or QP-encoded, continued, UTF-16', async () => {
    const echoed = Buffer.from(`x-pad: aaaaaaaaaaaaaaaaaaaa\r\nx-crm-key: ${CREDENTIAL}\r\n`);
    const wrapped = echoed.toString('base64').replace(/.{20}/g, '$&\n');
    const everyByte = [...Buffer.from(CREDENTIAL)].map((b) => `%${b.toString(16)}`).join('');
    for (const body of [
      wrapped,
      [...Buffer.from(CREDENTIAL)].map((b) => b.toString(16)).join(' '),
      [...Buffer.from(CREDENTIAL)].map((b) => b.toString(16)).join(':'),
      `k=${everyByte}`,
      // A URL nested in another's query: percent-encoded twice.
      `next=${encodeURIComponent(encodeURIComponent(`https://x.example/?key=${CREDENTIAL}`)).replaceAll('-', '%252D')}`,
      [...Buffer.from(CREDENTIAL)].map((b) => String(b)).join(' '),
      [...Buffer.from(CREDENTIAL)].map((b) => String(b)).join('\r\n'),
      [...Buffer.from(CREDENTIAL)].map((b) => String(b)).join(';'),
      `k=${[...Buffer.from(CREDENTIAL)].map((b) => `=${b.toString(16).toUpperCase()}`).join('')}`,
      `var seen = "${CREDENTIAL.slice(0, 5)}\\\n${CREDENTIAL.slice(5)}";`,
      Buffer.from(CREDENTIAL, 'utf16le').toString('hex'),
      Buffer.from(`k: ${CREDENTIAL}`, 'utf16le').toString('base64'),
      JSON.stringify({ type: 'Buffer', data: [...Buffer.from(CREDENTIAL)] }),
      [...Buffer.from(CREDENTIAL)].map((b) => b.toString(16)).join('-'),
      [...CREDENTIAL].map((c) => `&#${c.charCodeAt(0)};`).join(''),
      [...CREDENTIAL].map((c) => `\\u{${c.charCodeAt(0).toString(16)}}`).join(''),
      [...CREDENTIAL].map((c) => `\\${c.charCodeAt(0).toString(8)}`).join(''),
      [...CREDENTIAL].map((c) => `%u00${c.charCodeAt(0).toString(16)}`).join(''),
      [...CREDENTIAL].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join(''),
      [...CREDENTIAL].join('\u200b'),
      JSON.stringify([...CREDENTIAL]),
      // A combining grapheme joiner or tag characters between the characters; fullwidth letters.
      [...CREDENTIAL].join('\u034f'),
      [...CREDENTIAL].join('\u{e0020}'),
      CREDENTIAL.normalize('NFKC').replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0)),
    ]) {
      const replies = await exchange([requestHeaders(metadata({ mask: [] })), responseHeaders(metadata({ mask: [] }), { 'content-type': 'text/plain' }), responseBody(metadata({ mask: [] }), body)]);
      const sent = replies.at(-1).response_body?.response?.body_mutation?.body as Buffer | undefined;
      // Either taken out where it stood, or the body refused.
      expect(replies.at(-1).immediate_response?.status.code ?? (sent ? 'rewritten' : 'passed'), body).not.toBe('passed');
    }
  });

  it('finds the credential with anything between its characters, split by markup, reversed or in rot13, in a body or a header', async () => {
    const reversed = [...CREDENTIAL].reverse().join('');
    const rot13 = CREDENTIAL.replace(/[a-z]/g, (c) => String.fromCharCode(97 + ((c.charCodeAt(0) - 97 + 13) % 26)));
    const meta = metadata({ mask: [] });
    for (const [type, body] of [
      ['text/plain', `seen: ${[...CREDENTIAL].join('.')}`],
      ['text/plain', `seen: ${[...CREDENTIAL].join('-')}`],
      ['text/csv', `seen,${[...CREDENTIAL].join(',')}`],
      ['text/plain', `seen: ${CREDENTIAL.replaceAll('-', '')}`],
      ['text/html', `<p>seen: ${CREDENTIAL.slice(0, 9)}<b></b>${CREDENTIAL.slice(9)}</p>`],
      ['text/plain', `seen: ${reversed}`],
      ['text/plain', `seen: ${rot13}`],
      ['application/json', JSON.stringify({ seen: [...CREDENTIAL].join('.') })],
    ] as const) {
      const replies = await exchange([requestHeaders(meta), responseHeaders(meta, { 'content-type': type }), responseBody(meta, body)]);
      const last = replies.at(-1);
      const sent = (last.response_body?.response?.body_mutation?.body as Buffer | undefined)?.toString();
      // Either taken out where it stood (reversed, rot13: spellings like the others), or the body refused.
      expect(last.immediate_response?.status.code ?? (sent === undefined ? 'passed' : 'rewritten'), body).not.toBe('passed');
      if (sent !== undefined) expect(sent, body).toBe(body.replace(/\S+$/, '[REDACTED:credential]'));
    }
    const replies = await exchange([requestHeaders(meta), responseHeaders(meta, {
      'content-type': 'text/plain', 'x-dotted': [...CREDENTIAL].join('.'), 'x-reversed': reversed, 'x-rot13': rot13, 'x-fine': 'upstream crm',
    }), responseBody(meta, 'ok')]);
    expect(replies[1].response_headers.response.header_mutation.remove_headers).toEqual(['x-dotted', 'x-reversed', 'x-rot13']);
  });

  it('finds base64 of the echoed headers at any alignment, hex and changed case', async () => {
    // An echo of all request headers, base64-encoded: the caller moves the credential's offset with a header of its own.
    for (const pad of ['', 'a', 'aa']) {
      const echoed = Buffer.from(`x-pad: ${pad}\r\nx-crm-key: ${CREDENTIAL}\r\naccept: */*`);
      for (const body of [echoed.toString('base64'), echoed.toString('base64url'), echoed.toString('hex'), echoed.toString('hex').toUpperCase(), echoed.toString().toUpperCase()]) {
        const { common } = await maskedBody(metadata({ mask: [] }), body, { 'content-type': 'text/plain' });
        const sent = (common.body_mutation?.body as Buffer | undefined)?.toString();
        expect(sent, `pad ${JSON.stringify(pad)}: ${body}`).toContain('[REDACTED:credential]');
        expect(sent!.toLowerCase()).not.toContain(CREDENTIAL.toLowerCase());
      }
    }
  });

  it('refuses what it cannot read for the credential: UTF-16 text, compressed twice or unlabelled zlib, an encoding it cannot decode', async () => {
    const meta = metadata({ mask: [] });
    for (const [headers, body] of [
      [{ 'content-type': 'text/plain; charset=utf-16le' }, Buffer.from(`key ${CREDENTIAL}`, 'utf16le')],
      [{ 'content-type': 'application/octet-stream', 'content-encoding': 'gzip' }, gzipSync(gzipSync(Buffer.from(`{"k":"${CREDENTIAL}"}`)))],
      [{ 'content-type': 'application/octet-stream' }, deflateSync(Buffer.from(`{"k":"${CREDENTIAL}"}`))],
      [{ 'content-type': 'application/json', 'content-encoding': 'gzip' }, gzipSync(deflateSync(Buffer.from(`{"k":"${CREDENTIAL}"}`)))],
      [{ 'content-type': 'application/json', 'content-encoding': 'zstd' }, Buffer.from('(zstd bytes)')],
      // UTF-32, either byte order.
      [{ 'content-type': 'text/plain' }, Buffer.from([...Buffer.from(`key ${CREDENTIAL}`)].flatMap((b) => [b, 0, 0, 0]))],
      [{ 'content-type': 'text/plain' }, Buffer.from([...Buffer.from(`key ${CREDENTIAL}`)].flatMap((b) => [0, 0, 0, b]))],
    ] as const) {
      const replies = await exchange([requestHeaders(meta), responseHeaders(meta, headers), responseBody(meta, body)]);
      expect(replies.at(-1).immediate_response?.status.code, JSON.stringify(headers)).toBe('BadGateway');
    }
  });

  it('asks for the whole body when it masks or scans for the credential, and refuses a byte range that comes anyway', async () => {
    // Without masks too: an upstream echoing the credential could otherwise be read out a few bytes at a time.
    for (const meta of [metadata(), metadata({ mask: [] })]) {
      const partial = { response_headers: { headers: headerMap({ ':status': '206', 'content-type': 'application/json', 'content-range': 'bytes 40-46/300' }), end_of_stream: false }, metadata_context: context(meta) };
      const replies = await exchange([requestHeaders(meta, { range: 'bytes=40-46' }), partial]);
      expect(replies[0].request_headers.response.header_mutation.remove_headers, JSON.stringify(meta.mask)).toEqual(['range', 'if-range']);
      expect(replies[1].immediate_response.status.code).toBe('BadGateway');
    }
  });

  it('removes a response header that holds the credential, in its value or its name, in any spelling the body is searched for', async () => {
    const meta = metadata();
    const replies = await exchange([requestHeaders(meta), responseHeaders(meta, {
      'content-type': 'application/json', 'x-debug-auth': CREDENTIAL, [`x-${CREDENTIAL}`]: '1',
      'x-percent': CREDENTIAL.replace(/-/g, '%2D'), 'x-spaced': `${CREDENTIAL.slice(0, 6)} ${CREDENTIAL.slice(6)}`, 'x-cased': CREDENTIAL.toUpperCase().slice(0, 4) + CREDENTIAL.slice(4),
      'x-fine': 'nothing here',
    }), responseBody(meta, '{}')]);
    expect(replies[1].response_headers.response.header_mutation.remove_headers).toEqual(['x-debug-auth', `x-${CREDENTIAL}`, 'x-percent', 'x-spaced', 'x-cased']);
  });

  it('keeps every line of a repeated header when one of them is masked, as Envoy (here the stand-in) applies the mutation', async () => {
    const meta = metadata({ mask: [{ field: '$', detectors: ['email'], strategy: 'redact' }] });
    const lines = [{ key: ':status', raw_value: Buffer.from('200') }, { key: 'content-type', raw_value: Buffer.from('text/plain') },
      { key: 'set-cookie', raw_value: Buffer.from('sid=abc123') }, { key: 'set-cookie', raw_value: Buffer.from('u=ada@example.com') }];
    const replies = await exchange([requestHeaders(meta), { response_headers: { headers: { headers: lines }, end_of_stream: false }, metadata_context: context(meta) }, responseBody(meta, 'ok')]);
    const received = new HeaderMap([['content-type', 'text/plain'], ['set-cookie', 'sid=abc123'], ['set-cookie', 'u=ada@example.com']]);
    applyHeaderMutation(received, replies[1].response_headers.response.header_mutation);
    expect(received.getAll('set-cookie')).toEqual(['sid=abc123', expect.stringContaining('[REDACTED:email]') as string]);
  });

  it('refuses a response whose header Envoy would not let the gateway change (x-envoy-*, host) holds the credential or masked data', async () => {
    for (const [meta, name, value] of [
      [metadata(), 'x-envoy-echo', `Bearer ${CREDENTIAL}`],
      [metadata(), 'host', CREDENTIAL],
      [metadata({ mask: [{ field: '$', detectors: ['email'], strategy: 'redact' }] }), 'x-envoy-user', 'ada@example.com'],
    ] as const) {
      const replies = await exchange([requestHeaders(meta), responseHeaders(meta, { 'content-type': 'text/plain', [name]: value }), responseBody(meta, 'ok')]);
      expect(replies.at(-1).immediate_response?.status.code, name).toBe('BadGateway');
    }
  });

  it('screens response trailers as it screens response headers: the credential removed, "$" detector rules applied', async () => {
    const meta = metadata({ mask: [{ field: '$', detectors: ['email'], strategy: 'redact' }] });
    // A response without a body whose trailers come after its headers (HTTP/2, or HTTP/1.1 chunked with no data).
    const replies = await exchange([requestHeaders(meta), responseHeaders(meta, { 'content-type': 'text/plain' }), responseTrailers(meta, {
      'x-debug-auth': CREDENTIAL, [`x-${CREDENTIAL}`]: '1', 'x-spaced': [...CREDENTIAL].join(' '), 'x-user': 'ada@example.com', 'x-checksum': 'sha256-abc',
    })]);
    expect(replies.map((r) => r.response)).toEqual(['request_headers', 'response_headers', 'response_trailers']);
    const mutation = replies[2].response_trailers.header_mutation;
    expect(mutation.remove_headers).toEqual(['x-debug-auth', `x-${CREDENTIAL}`, 'x-spaced']);
    expect(setHeaders(mutation)).toEqual({ 'x-user': '[REDACTED:email]' });
    // Nothing to change: answered without a mutation.
    const clean = await exchange([requestHeaders(meta), responseHeaders(meta, { 'content-type': 'text/plain' }), responseTrailers(meta, { 'grpc-status': '0' })]);
    expect(clean[2].response_trailers).toEqual({});
  });

  it('screens the trailers after a body it does not read, and refuses a trailer Envoy would not let it change', async () => {
    // No credential header on the request and nothing to mask: the body goes on unread, its trailers still screened.
    const quiet = metadata({ mask: [], credential_header: 'x-absent' });
    const unread = await exchange([requestHeaders(quiet), responseHeaders(quiet, { 'content-type': 'text/plain' }), responseBody(quiet, 'part', false),
      responseTrailers(quiet, { 'x-user': 'ada@example.com' })]);
    expect(unread.map((r) => r.response)).toEqual(['request_headers', 'response_headers', 'response_body', 'response_trailers']);
    const meta = metadata();
    const stuck = await exchange([requestHeaders(meta), responseHeaders(meta, { 'content-type': 'text/plain' }), responseTrailers(meta, { 'x-envoy-echo': `Bearer ${CREDENTIAL}` })]);
    expect(stuck.at(-1).immediate_response?.status.code).toBe('BadGateway');
  });

  it('scans response header values under a "$" detector rule, as the body', async () => {
    const meta = metadata({ mask: [{ field: '$', detectors: ['email', 'us_ssn'], strategy: 'redact' }] });
    const replies = await exchange([requestHeaders(meta), responseHeaders(meta, {
      'content-type': 'text/plain', 'x-user-email': 'ada@example.com', location: '/next?who=ada@example.com&page=2',
      'x-ssn': '078-05-1120', 'x-fine': 'nothing here', etag: '"ada@example.com"',
    }), responseBody(meta, 'ok')]);
    const mutation = replies[1].response_headers.response.header_mutation;
    const set = setHeaders(mutation);
    // A query's "who=" is allowed in an address's local part: the redaction takes it along.
    expect(set).toEqual({ 'x-user-email': '[REDACTED:email]', location: expect.stringMatching(/^\S*\[REDACTED:email\]&page=2$/) as string, 'x-ssn': '[REDACTED:us_ssn]' });
    expect(mutation.remove_headers ?? []).toEqual([]);
    // Field rules alone leave headers as they are: they name places in a JSON document.
    const fieldsOnly = await exchange([requestHeaders(metadata()), responseHeaders(metadata(), { 'content-type': 'application/json', 'x-user-email': 'ada@example.com' }), responseBody(metadata(), '{}')]);
    expect(fieldsOnly[1].response_headers.response?.header_mutation).toBeUndefined();
  });

  it('refuses a body that is not UTF-8 but holds the credential in any spelling (read as Latin-1)', async () => {
    for (const body of [Buffer.concat([Buffer.from([0xe9, 0x20]), Buffer.from(`${CREDENTIAL.slice(0, 10)}\n${CREDENTIAL.slice(10)}`)]),
      Buffer.concat([Buffer.from([0xe9, 0x20]), Buffer.from([...Buffer.from(CREDENTIAL)].map((b) => `%${b.toString(16)}`).join(''))])]) {
      const replies = await exchange([requestHeaders(metadata({ mask: [] })), responseHeaders(metadata({ mask: [] }), { 'content-type': 'application/octet-stream' }), responseBody(metadata({ mask: [] }), body)]);
      expect(replies.at(-1).immediate_response?.status.code).toBe('BadGateway');
    }
  });

  it('re-serialises a JSON body with a key twice in one object, so the first copy cannot pass unmasked', async () => {
    const body = '{"customers":[{"email":"jane.doe@example.com","email":null}],"customers":[]}';
    const { common } = await maskedBody(metadata(), body, { 'content-type': 'application/json' });
    expect((common.body_mutation.body as Buffer).toString()).toBe('{"customers":[]}');
    const nested = await maskedBody(metadata(), '{"customers":[{"id":1,"notes":"card 4111 1111 1111 1111","notes":"ok"}]}', { 'content-type': 'application/json' });
    expect((nested.common.body_mutation.body as Buffer).toString()).toBe('{"customers":[{"id":1,"notes":"ok"}]}');
  });

  it('decodes every Content-Encoding line, and gzip that no header names', async () => {
    const gzipped = gzipSync(Buffer.from(JSON.stringify(CUSTOMERS)));
    const twoLines = await exchange([
      requestHeaders(metadata()),
      { response_headers: { headers: { headers: [[':status', '200'], ['content-encoding', 'identity'], ['content-encoding', 'gzip']].map(([key, value]) => ({ key, raw_value: Buffer.from(value!) })) }, end_of_stream: false }, metadata_context: context(metadata()) },
      responseBody(metadata(), gzipped),
    ]);
    expect((twoLines[2].response_body.response.body_mutation.body as Buffer).toString()).not.toMatch(RAW_VALUES);
    const unlabelled = await maskedBody(metadata(), gzipped, {});
    expect((unlabelled.common.body_mutation.body as Buffer).toString()).not.toMatch(RAW_VALUES);
  });
});

describe('ExternalProcessor: failing closed', () => {
  const immediate = (reply: Reply) => ({ status: reply.immediate_response.status.code, body: JSON.parse(Buffer.from(reply.immediate_response.body).toString()) });

  it('refuses a body that claims JSON and does not parse, without echoing it', async () => {
    const meta = metadata();
    const replies = await exchange([requestHeaders(meta), responseHeaders(meta, { 'content-type': 'application/json' }), responseBody(meta, '{"email": "jane.doe@example.com", oops')]);
    expect(replies.at(-1).response).toBe('immediate_response');
    const { status, body } = immediate(replies.at(-1));
    expect(status).toBe('BadGateway');
    expect(body).toEqual({ error: 'gatehouse: the response could not be masked', decision_id: meta.decision_id });
    expect(JSON.stringify(replies)).not.toContain('jane.doe');
  });

  it('refuses an encoding it cannot decode, a corrupt gzip body and binary data under a "$" rule', async () => {
    const meta = metadata();
    for (const [headers, body] of [
      [{ 'content-type': 'application/json', 'content-encoding': 'zstd' }, Buffer.from('whatever')],
      [{ 'content-type': 'application/json', 'content-encoding': 'gzip' }, Buffer.from('not gzip at all')],
    ] as const) {
      const replies = await exchange([requestHeaders(meta), responseHeaders(meta, headers), responseBody(meta, body)]);
      expect(immediate(replies.at(-1)).status).toBe('BadGateway');
    }
    const dollar = metadata({ mask: [{ field: '$', detectors: ['email'], strategy: 'redact' }] });
    const replies = await exchange([requestHeaders(dollar), responseHeaders(dollar, { 'content-type': 'application/octet-stream' }), responseBody(dollar, Buffer.from([0xff, 0xfe, 0x00, 0x41]))]);
    expect(immediate(replies.at(-1)).status).toBe('BadGateway');
  });

  it('refuses a body that decodes past the size limit (a compression bomb)', async () => {
    const meta = metadata();
    const bomb = gzipSync(Buffer.from(`{"pad":"${'a'.repeat(100_000)}"}`));
    const replies = await exchange([requestHeaders(meta), responseHeaders(meta, { 'content-type': 'application/json', 'content-encoding': 'gzip' }), responseBody(meta, bomb)], smallClient);
    expect(immediate(replies.at(-1)).status).toBe('BadGateway');
  });

  it('denies a request that carries no Gatehouse metadata (it did not pass Check)', async () => {
    const replies = await exchange([{ request_headers: { headers: headerMap(REQUEST_HEADERS), end_of_stream: true } }]);
    expect(replies).toHaveLength(1);
    expect(immediate(replies[0])).toEqual({ status: 'Forbidden', body: { error: 'gatehouse: request not authorized by the gateway' } });
  });

  it('fails with 500 on malformed metadata and on rules it cannot enforce', async () => {
    const malformed = await exchange([requestHeaders({ ...metadata(), record: 'yes' })]);
    expect(immediate(malformed[0]).status).toBe('InternalServerError');
    const notJson = await exchange([{
      ...requestHeaders(metadata()),
      metadata_context: { filter_metadata: { 'envoy.filters.http.ext_authz': jsonToStruct({ gatehouse: { decision_id: 'd', exchange: '{"decision_id":' } }) } },
    }]);
    expect(immediate(notJson[0]).status).toBe('InternalServerError');
    const unknownDetector = await exchange([requestHeaders(metadata({ mask: [{ field: 'a', detectors: ['shoe_size'], strategy: 'redact' }] }))]);
    expect(immediate(unknownDetector[0]).status).toBe('InternalServerError');
    const badField = await exchange([requestHeaders(metadata({ mask: [{ field: 'a...b', strategy: 'redact' }] }))]);
    expect(immediate(badField[0]).status).toBe('InternalServerError');
  });

  it('refuses a response on a stream that never had the request headers, and request headers sent twice: what must not come back is not known', async () => {
    const echo = `{"k":"${CREDENTIAL}"}`;
    const refused = { status: 'InternalServerError', body: { error: 'gatehouse: the gateway received ext_proc messages out of order', decision_id: expect.any(String) } };
    for (const first of ['response_headers', 'response_body', 'response_trailers'] as const) {
      const meta = metadata({ mask: [], record: true });
      const message = first === 'response_headers' ? responseHeaders(meta, { 'content-type': 'application/json', 'x-echo': CREDENTIAL })
        : first === 'response_body' ? responseBody(meta, echo) : responseTrailers(meta, { 'x-echo': CREDENTIAL });
      const replies = await exchange([message, responseBody(meta, echo)]);
      expect(replies, first).toHaveLength(1);
      expect(immediate(replies[0]), first).toEqual(refused);
      const [stored] = await recordedEntries(meta.session_id, 'the refused exchange to be recorded');
      expect(JSON.parse(stored!.entry).error, first).toBe(`the gateway answered 500: ext_proc messages out of order: ${first} came before the request headers`);
      expect(stored!.entry).not.toContain(CREDENTIAL);
    }
    // A second set without the credential would have emptied what the response is screened for.
    const meta = metadata({ mask: [] });
    const twice = await exchange([
      requestHeaders(meta),
      { request_headers: { headers: headerMap({ ':method': 'GET', ':path': '/', ':authority': 'crm.internal' }), end_of_stream: true }, metadata_context: context(meta) },
      responseHeaders(meta, { 'content-type': 'application/json' }),
      responseBody(meta, echo),
    ]);
    expect(twice).toHaveLength(2);
    expect(immediate(twice[1])).toEqual(refused);
  });

  it('refuses a response body that arrives in chunks when it must be masked', async () => {
    const meta = metadata();
    const replies = await exchange([requestHeaders(meta), responseHeaders(meta, { 'content-type': 'application/json' }), responseBody(meta, '{"customers":', false)]);
    expect(immediate(replies.at(-1)).status).toBe('InternalServerError');
  });
});

// ── Bodies off the main thread ────────────────────────────────────────────

describe('ExternalProcessor: a body that takes long to read', () => {
  it('holds up no other exchange while it is read: bodies are read on a body thread', async () => {
    // 3.5 MB of escapes: about a second of parsing and credential views here, all of it synchronous (round 21 sent
    // 16 MiB, from 24 KB of gzip, and held every Check for 9 s). Nothing in it to mask: it goes on as it came.
    const text = `{"x":"${'\\u0061'.repeat(580_000)}"}`;
    const slowMeta = metadata();
    let slowDone = false;
    const slowReplies = exchange([
      requestHeaders(slowMeta),
      responseHeaders(slowMeta, { 'content-type': 'application/json' }),
      responseBody(slowMeta, text),
    ]).finally(() => { slowDone = true; });
    await waitFor(() => bodies.reading > 0, 'the slow body to be handed to a body thread');
    // Other exchanges, one after another, go through while it is read. On the main thread, none would: it would
    // not read their messages until the slow body was done.
    let others = 0;
    while (!slowDone) {
      const quickMeta = metadata();
      const quick = await exchange([requestHeaders(quickMeta), responseHeaders(quickMeta, { 'content-type': 'application/json' }, true)]);
      expect(quick.map((r) => r.response)).toEqual(['request_headers', 'response_headers']);
      others++;
    }
    expect(others).toBeGreaterThanOrEqual(3);
    const replies = await slowReplies;
    expect(replies.map((r) => r.response)).toEqual(['request_headers', 'response_headers', 'response_body']);
    expect(replies[2].response_body.response.body_mutation).toBeFalsy();
  }, 120_000);
});

describe('ExternalProcessor: a slow body whose exchange is gone, and bodies past the queue', () => {
  // One body thread and one body that may wait, as on a two-core machine under load; a logger that keeps its lines.
  const oneThread = new BodyThreads({ hashKey: HASH_KEY, threads: 1, maxQueue: 1 });
  const lines: { level: number; msg: string; why?: string }[] = [];
  const capturing = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  let oneServer: Server;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let oneClient: any;
  /** Round 22: `{}` lines under a field rule, cheap to send (12 MB in about 12 KB of gzip) and seconds to read. */
  const slowBody = gzipSync(Buffer.from('{}\n'.repeat(4_000_000)));
  const slowHeaders = { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' };
  const maskedExchange = (meta: ExchangeMetadata) => exchange([
    requestHeaders(meta), responseHeaders(meta, { 'content-type': 'application/json' }), responseBody(meta, JSON.stringify(CUSTOMERS)),
  ], oneClient);

  /** A Process stream the test drives itself: each message answered before the next, and cancelled at will. */
  function stream() {
    const call: ClientDuplexStream<object, Reply> = oneClient.Process();
    const inbox: Reply[] = [];
    let waiting: ((r: Reply) => void) | null = null;
    call.on('data', (r: Reply) => {
      if (waiting) {
        waiting(r);
        waiting = null;
      } else inbox.push(r);
    });
    call.on('error', () => undefined);
    const answer = (message: object) => {
      call.write(message);
      return inbox.length ? Promise.resolve(inbox.shift()) : new Promise<Reply>((resolve) => (waiting = resolve));
    };
    return { call, answer };
  }

  /** A stream with its slow body handed to the body threads (read, or waiting for the thread). */
  async function slowStream(reading: number) {
    const meta = metadata();
    const s = stream();
    expect((await s.answer(requestHeaders(meta))).response).toBe('request_headers');
    expect((await s.answer(responseHeaders(meta, slowHeaders))).response).toBe('response_headers');
    s.call.write(responseBody(meta, slowBody));
    await waitFor(() => oneThread.reading === reading, 'the slow body to be handed to the body threads');
    return s;
  }

  beforeAll(async () => {
    const one = await serve(undefined, { bodies: oneThread, logger: capturing });
    oneServer = one.server;
    oneClient = new (envoyServices().grpc.envoy.service.ext_proc.v3.ExternalProcessor)(one.address, credentials.createInsecure());
    // The thread is up before a test counts on a body going to it at once.
    expect((await maskedExchange(metadata())).map((r) => r.response)).toEqual(['request_headers', 'response_headers', 'response_body']);
  });
  afterAll(async () => {
    oneClient?.close();
    oneServer?.forceShutdown();
    await oneThread.close();
  });

  it('stops reading a body whose stream the client cancelled, and reads the next exchange\'s body on a fresh thread before the slow one would have finished', async () => {
    const reads = vi.spyOn(oneThread, 'read');
    try {
      const slow = await slowStream(1);
      const slowRead = reads.mock.results[0]!.value as ReturnType<BodyThreads['read']>;
      let slowFinished = false;
      slowRead.then(() => { slowFinished = true; }, () => undefined);
      const [reader] = oneThread.threadIds;
      lines.length = 0;
      // Envoy resets the stream at message_timeout.
      slow.call.cancel();

      const replies = await maskedExchange(metadata());
      expect(replies.map((r) => r.response)).toEqual(['request_headers', 'response_headers', 'response_body']);
      expect(replies[2].response_body.response.body_mutation.body.toString()).not.toMatch(RAW_VALUES);
      // The next body was read while the slow one never finished: its thread was stopped (with one thread and the slow
      // body read on, the next would have waited for it on that same thread), and the cancelled exchange got nothing.
      expect(slowFinished).toBe(false);
      await expect(slowRead).rejects.toBeInstanceOf(BodyReadAborted);
      expect(oneThread.threadIds).not.toContain(reader);
      expect(oneThread.reading).toBe(0);
      // Dropped quietly: not an internal error, and nothing answered in the upstream's place.
      expect(lines.filter((l) => l.level >= 40).map((l) => l.msg)).toEqual([]);
      expect(lines.map((l) => l.msg)).toContain('ext_proc body read dropped: the exchange is gone');
    } finally {
      reads.mockRestore();
    }
  }, 60_000);

  it('refuses a body at once (502) when the thread is busy and as many bodies wait as may: never passed unmasked', async () => {
    const slow = await slowStream(1);
    const waiting = await slowStream(2);
    lines.length = 0;
    const replies = await maskedExchange(metadata());
    expect(replies.map((r) => r.response)).toEqual(['request_headers', 'response_headers', 'immediate_response']);
    const refused = replies[2].immediate_response;
    expect(refused.status.code).toBe('BadGateway');
    expect(Buffer.from(refused.body).toString()).toContain('the response could not be masked');
    expect(Buffer.from(refused.body).toString()).not.toMatch(RAW_VALUES);
    expect(lines.find((l) => l.msg === 'ext_proc answered in the upstream\'s place')?.why).toBe('the body thread is busy and 1 body already waits, the most that may');
    slow.call.cancel();
    waiting.call.cancel();
    await waitFor(() => oneThread.reading === 0, 'the cancelled exchanges to let go of the body thread');
  }, 60_000);
});

// ── Evidence ──────────────────────────────────────────────────────────────

describe('ExternalProcessor: evidence', () => {
  let meta: ExchangeMetadata;
  let entry: HttpExchangeEntry;

  beforeAll(async () => {
    // A real decision for the request, as Check would have made it.
    const sessionId = randomUUID();
    const token = await mintDevToken(config.identity.dev_issuer, { sub: 'agent:support-bot', groups: ['support-agents'], ttlSeconds: 300, agent: true });
    const action = {
      attributes: { request: { http: { method: 'GET', path: '/api/customers?limit=2', host: 'crm.internal', scheme: 'https', headers: { ':method': 'GET', ':path': '/api/customers?limit=2', ':authority': 'crm.internal' }, body: '' } } },
      parsed_path: ['api', 'customers'], parsed_query: { limit: ['2'] }, parsed_body: null,
    };
    const result = await gateway.authorizer.authorize({ token, target: 'crm-api', action, sessionId, sourceIp: '10.0.4.17' });
    expect(result.decision.action).toBe('allow');
    meta = metadata({
      decision_id: result.decision_id,
      session_id: sessionId,
      audit: { stream: result.audit!.stream, seq: result.audit!.seq },
      mask: result.decision.mask.map(({ field, detectors, strategy }) => ({ field: field!, strategy, ...(detectors ? { detectors } : {}) })),
      record: true,
    });
    const json = JSON.stringify(CUSTOMERS);
    await exchange([
      requestHeaders(meta, { 'content-type': 'application/json', range: 'bytes=0-5' }, false),
      { request_body: { body: Buffer.from('{"search":"vip customers"}'), end_of_stream: true }, metadata_context: context(meta) },
      responseHeaders(meta, { 'content-type': 'application/json', 'content-length': String(json.length), 'set-cookie': 'upstream-session=1' }),
      responseBody(meta, json),
    ]);
    const entries = await recordedEntries(sessionId, 'the exchange to be recorded');
    expect(entries).toHaveLength(1);
    entry = JSON.parse(entries[0]!.entry) as HttpExchangeEntry;
  });

  it('records the exchange as a HAR entry with the masked response body', () => {
    expect(entry).toMatchObject({ seq: 1, decision: 'allow', decision_id: meta.decision_id, audit: meta.audit, error: null });
    const { request, response } = entry.har;
    expect(request.method).toBe('GET');
    expect(request.url).toBe('https://crm.internal/api/customers?limit=2&access_token=[REDACTED]');
    expect(response.status).toBe(200);
    expect(JSON.parse(response.content.text!).customers[0].email).toBe('j***@example.com');
    expect(response.content.mimeType).toBe('application/json');
    expect(response.headers).toContainEqual({ name: 'content-length', value: String(response.content.size) });
    expect(entry.masked).toContainEqual({ column: '$..email', detector: null, count: 2 });
    expect(request.postData).toEqual({ mimeType: 'application/json', text: '{"search":"vip customers"}' });
    // The request as the upstream got it: whole and uncompressed, as the gateway asked, not as the client sent it.
    expect(request.headers).toContainEqual({ name: 'accept-encoding', value: 'identity' });
    expect(request.headers.map((h) => h.name)).not.toContain('range');
    expect(request.headers.filter((h) => h.name === 'accept-encoding')).toHaveLength(1);
  });

  it('never records a credential or an unmasked response value', () => {
    const { har } = entry;
    const text = JSON.stringify(har);
    for (const secret of [CREDENTIAL, 'agent-jwt', 'agent-cookie', 'agent-query-token', 'upstream-session']) expect(text).not.toContain(secret);
    expect(text).not.toMatch(RAW_VALUES);
    expect(har.request.headers.map((h) => h.name)).toEqual(expect.arrayContaining(['accept', 'content-type']));
    expect(har.request.headers.map((h) => h.name)).not.toEqual(expect.arrayContaining(['x-crm-key']));
  });

  it('writes the masking counts to the audit trail, linked by decision id', async () => {
    const event = await waitFor(async () => {
      for await (const record of gateway.store.readAudit({ stream: 'gw-ext-proc' })) {
        const e = JSON.parse(record.event) as { activity_name?: string; policy?: { uid?: string }; unmapped?: { masked?: unknown } };
        if (e.activity_name === 'Masked' && e.policy?.uid === meta.decision_id) return e;
      }
      return undefined;
    }, 'the Masked audit event');
    expect(event.unmapped?.masked).toEqual(expect.arrayContaining([{ column: '$..email', detector: null, count: 2 }]));
    expect(JSON.stringify(event)).not.toMatch(RAW_VALUES);
  });

  it('replays through `gatehouse sessions replay`, linked to the decision\'s audit event, and exports HAR', () => {
    const text = runCli(['sessions', 'replay', meta.session_id, '-c', configFile]);
    expect(text.stderr).toBe('');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/ALLOW {2}GET https:\/\/crm\.internal\/api\/customers\?limit=2&access_token=\[REDACTED\] → 200 OK {2}\(.*masked \$\.\.email×2/);
    expect(text.stdout).toContain(`decision ${meta.decision_id}, audit gw-ext-proc#${meta.audit!.seq}`);
    expect(text.stdout).toMatch(/recorded: 1 exchange, 0 denied/);

    const har = runCli(['sessions', 'replay', meta.session_id, '-c', configFile, '--har']);
    expect(har.code).toBe(0);
    const log = (JSON.parse(har.stdout) as { log: { version: string; entries: Array<Record<string, unknown>> } }).log;
    expect(log.version).toBe('1.2');
    expect(log.entries).toHaveLength(1);
    expect(log.entries[0]).toMatchObject({ request: { method: 'GET' }, response: { status: 200 }, _gatehouse: { decision_id: meta.decision_id } });
    expect(har.stdout).not.toMatch(RAW_VALUES);
  });

  it('records an exchange whatever method the agent sent (as sent, cut past 32 characters), linked to its decision\'s audit event', async () => {
    const sre = await mintDevToken(config.identity.dev_issuer, { sub: 'agent:sre-bot', groups: ['sre-agents'], ttlSeconds: 300, agent: true });
    for (const method of ['get', 'FOO_BAR', 'A'.repeat(40)]) {
      const sessionId = randomUUID();
      const http = { method, path: '/api/customers', host: 'crm.internal', scheme: 'https', headers: { ':method': method, ':path': '/api/customers', ':authority': 'crm.internal' }, body: '' };
      const check = { token: sre, target: 'crm-api', action: { attributes: { request: { http } }, parsed_path: ['api', 'customers'], parsed_query: {}, parsed_body: null }, sessionId, sourceIp: '10.0.4.17' };
      // Any method but GET, HEAD and OPTIONS is a write, and a write to crm-api (env: prod) needs an SRE lead's approval.
      const pending = await gateway.authorizer.authorize(check);
      await gateway.approvals.vote(pending.approval!.id, { sub: 'lead', iss: 'urn:test', groups: ['sre-leads'], agent: false, act: null, claims: {} }, 'approve', null);
      const result = await gateway.authorizer.authorize(check);
      expect(result.decision.action, `${method}: ${result.decision.reasons.join('; ')}`).toBe('allow');
      const m = metadata({ decision_id: result.decision_id, session_id: sessionId, audit: { stream: result.audit!.stream, seq: result.audit!.seq }, mask: [], record: true, approval_id: result.approval!.id });
      const replies = await exchange([requestHeaders(m, { ':method': method, ':path': '/api/customers' }), responseHeaders(m, { 'content-type': 'text/plain' }), responseBody(m, 'ok')]);
      expect(replies.map((r) => r.response), method).toEqual(['request_headers', 'response_headers', 'response_body']);
      const { session, entries } = await endedSession(sessionId, 'the session to be recorded');
      expect(session.dropped_entries, method).toBe(0);
      expect(entries, method).toHaveLength(1);
      const e = JSON.parse(entries[0]!.entry) as HttpExchangeEntry;
      expect(e.har.request.method, method).toBe(method.slice(0, 32));
      expect(e.request_method_truncated, method).toBe(method.length > 32 ? true : undefined);
      const replay = runCli(['sessions', 'replay', sessionId, '-c', configFile]);
      expect(replay.stdout, method).not.toContain('AUDIT LINK BROKEN');
      expect(replay.code, replay.stderr).toBe(0);
    }
  });

  it('records an exchange with more header lines than it keeps: the first 200, marked as cut', async () => {
    const lines = (prefix: string) => Object.fromEntries(Array.from({ length: 201 }, (_, i) => [`${prefix}-${i}`, 'v']));
    for (const side of ['request', 'response'] as const) {
      const m = metadata({ mask: [], record: true });
      await exchange([
        requestHeaders(m, side === 'request' ? lines('x-h') : {}),
        responseHeaders(m, { 'content-type': 'text/plain', ...(side === 'response' ? lines('x-r') : {}) }),
        responseBody(m, 'ok'),
      ]);
      const { session, entries } = await endedSession(m.session_id, 'the session to be recorded');
      expect(session.dropped_entries, side).toBe(0);
      expect(entries, side).toHaveLength(1);
      const e = JSON.parse(entries[0]!.entry) as HttpExchangeEntry;
      expect(e.har[side].headers, side).toHaveLength(200);
      expect(e[`${side}_headers_truncated`], side).toBe(true);
      expect(e.har[side].comment, side).toMatch(/header lines? after the first 200 (is|are) not recorded/);
      expect(entries[0]!.entry, side).not.toContain(CREDENTIAL);
    }
  });

  it('masks query and request header values in the recording under a "$" detector rule, as it masks the request body', async () => {
    const m = metadata({ mask: [{ field: '$', detectors: ['email', 'payment_card'], strategy: 'redact' }], record: true });
    await exchange([
      requestHeaders(m, {
        ':path': '/api/customers?email=jane.doe@example.com&card=4111111111111111&who=bob%40example.net&limit=2',
        'x-user-email': 'jane.doe@example.com', 'x-card': '4111 1111 1111 1111', 'content-type': 'application/json',
      }, false),
      { request_body: { body: Buffer.from('{"search":"jd@example.org"}'), end_of_stream: true }, metadata_context: context(m) },
      responseHeaders(m, { 'content-type': 'text/plain' }),
      responseBody(m, 'ok'),
    ]);
    const [stored] = await recordedEntries(m.session_id, 'the exchange to be recorded');
    expect(stored!.entry).not.toMatch(RAW_VALUES);
    const e = JSON.parse(stored!.entry) as HttpExchangeEntry;
    expect(e.har.request.url).toBe('https://crm.internal/api/customers?email=[REDACTED:email]&card=[REDACTED:payment_card]&who=[REDACTED:email]&limit=2');
    expect(e.har.request.queryString).toContainEqual({ name: 'email', value: '[REDACTED:email]' });
    expect(e.har.request.headers).toEqual(expect.arrayContaining([{ name: 'x-user-email', value: '[REDACTED:email]' }, { name: 'x-card', value: '[REDACTED:payment_card]' }]));
    expect(e.har.request.postData?.text).toBe('{"search":"[REDACTED:email]"}');
    // What the agent sent is masked for the recording only: not counted as masked in the response.
    expect(e.masked).toEqual([]);
  });

  it('records nothing when the target does not record', async () => {
    const quiet = metadata({ record: false });
    await exchange([requestHeaders(quiet), responseHeaders(quiet, { 'content-type': 'application/json' }), responseBody(quiet, JSON.stringify(CUSTOMERS))]);
    expect(await gateway.recorder.flush()).toBe(true);
    expect(await gateway.store.getSession(quiet.session_id)).toBeNull();
  });

  it('records an exchange whose response ended with its trailers as complete', async () => {
    const withTrailers = metadata({ record: true });
    await exchange([requestHeaders(withTrailers), responseHeaders(withTrailers, { 'content-type': 'application/json' }), responseTrailers(withTrailers, { 'x-checksum': 'abc' })]);
    const [stored] = await recordedEntries(withTrailers.session_id, 'the exchange to be recorded');
    const e = JSON.parse(stored!.entry) as HttpExchangeEntry;
    expect(e.error).toBeNull();
    expect(e.har.response.status).toBe(200);
  });

  it('never records the credential in why it refused, when a header or trailer it could not change is named with it', async () => {
    for (const stage of ['header', 'trailer'] as const) {
      const refused = metadata({ record: true });
      const named = { [`x-envoy-${CREDENTIAL}`]: '1' };
      await exchange([requestHeaders(refused), responseHeaders(refused, { 'content-type': 'text/plain', ...(stage === 'header' ? named : {}) }),
        ...(stage === 'trailer' ? [responseTrailers(refused, named)] : [])]);
      const [stored] = await recordedEntries(refused.session_id, 'the refused exchange to be recorded');
      const e = JSON.parse(stored!.entry) as HttpExchangeEntry;
      expect(e.har.response.status, stage).toBe(502);
      expect(e.error, stage).toBe(`the gateway answered 502: response ${stage} [REDACTED:credential] holds what must not reach the client, and Envoy does not let ext_proc change it`);
      expect(stored!.entry, stage).not.toContain(CREDENTIAL);
    }
  });

  it('records a refused exchange with the gateway\'s answer and why', async () => {
    const refused = metadata({ record: true });
    await exchange([requestHeaders(refused), responseHeaders(refused, { 'content-type': 'application/json' }), responseBody(refused, '{"email": "jane.doe@example.com",')]);
    const [stored] = await recordedEntries(refused.session_id, 'the refused exchange to be recorded');
    const e = JSON.parse(stored!.entry) as HttpExchangeEntry;
    expect(e.har.response.status).toBe(502);
    expect(e.error).toBe('the gateway answered 502: the body is declared as JSON but is not valid JSON');
    expect(stored!.entry).not.toContain('jane.doe');
  });
});
