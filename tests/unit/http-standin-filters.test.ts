/**
 * The Envoy stand-in's filter semantics, one rule at a time: how Check's
 * answer changes the request (ext_authz.cc), the CheckRequest's body fields
 * (check_request_utils.cc), and what an ExternalProcessor that fails or
 * stays silent costs the request (ext_proc.cc), the latter against a real
 * gRPC server speaking Envoy's protos.
 */
import type { IncomingMessage } from 'node:http';
import { Server, ServerCredentials, status as GrpcStatus, type ServerDuplexStream } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { envoyServices } from '../../ext-authz/envoy-protos.js';
import { buildCheckRequest } from '../../proxies/http/check-request.js';
import { ExtAuthzClient, outcomeOf } from '../../proxies/http/ext-authz-client.js';
import { applyCheckOutcome, mutateQuery } from '../../proxies/http/ext-authz-filter.js';
import { ExtProcClient, ProcessingFailure } from '../../proxies/http/ext-proc-client.js';
import { HeaderMap, stripHopByHop } from '../../proxies/http/header-map.js';
import { applyHeaderOption, EXT_AUTHZ_RULES, EXT_PROC_RULES } from '../../proxies/http/header-mutation.js';

const option = (key: string, value: string, extra: Record<string, unknown> = {}) => ({ header: { key, value }, ...extra });

describe('header options (HeaderValueOption as CheckResponse and ProcessingResponse use it)', () => {
  const start = () => new HeaderMap([['x-a', '1'], ['x-a', '2']]);

  it('overwrites when neither append nor a non-default append_action is given', () => {
    const headers = start();
    applyHeaderOption(headers, option('X-A', 'new'), EXT_AUTHZ_RULES);
    expect(headers.getAll('x-a')).toEqual(['new']);
  });

  it('follows append and each append_action', () => {
    const cases: Array<[Record<string, unknown>, string[]]> = [
      [{ append: { value: true } }, ['1', '2', 'new']],
      [{ append: { value: false } }, ['new']],
      [{ append_action: 'ADD_IF_ABSENT' }, ['1', '2']],
      [{ append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }, ['new']],
      [{ append_action: 'OVERWRITE_IF_EXISTS' }, ['new']],
    ];
    for (const [extra, want] of cases) {
      const headers = start();
      applyHeaderOption(headers, option('x-a', 'new', extra), EXT_AUTHZ_RULES);
      expect(headers.getAll('x-a'), JSON.stringify(extra)).toEqual(want);
    }
    const absent = new HeaderMap();
    applyHeaderOption(absent, option('x-b', 'v', { append_action: 'OVERWRITE_IF_EXISTS' }), EXT_AUTHZ_RULES);
    expect(absent.has('x-b')).toBe(false);
  });

  it('reads raw_value bytes, and drops empty values unless keep_empty_value', () => {
    const headers = new HeaderMap();
    applyHeaderOption(headers, { header: { key: 'x-raw', raw_value: Buffer.from('bytes') } }, EXT_PROC_RULES);
    applyHeaderOption(headers, option('x-empty', ''), EXT_PROC_RULES);
    applyHeaderOption(headers, option('x-kept', '', { keep_empty_value: true }), EXT_PROC_RULES);
    expect([...headers]).toEqual([['x-raw', 'bytes'], ['x-kept', '']]);
  });

  it('ignores what each service may not touch', () => {
    const headers = new HeaderMap([[':path', '/a'], ['host', 'h']]);
    applyHeaderOption(headers, option(':path', '/admin'), EXT_AUTHZ_RULES);
    applyHeaderOption(headers, option('host', 'evil'), EXT_AUTHZ_RULES);
    applyHeaderOption(headers, option('x-envoy-original-path', '/x'), EXT_PROC_RULES);
    applyHeaderOption(headers, option(':authority', 'evil'), EXT_PROC_RULES);
    expect([...headers]).toEqual([[':path', '/a'], ['host', 'h']]);
  });
});

describe("Check's answer applied to the request", () => {
  it('sets, then removes, then rewrites the query; keeps response headers and metadata for later', () => {
    const headers = new HeaderMap([[':path', '/c?keep=1&drop=2&page=1'], ['authorization', 'Bearer agent'], ['x-debug', '1']]);
    const result = applyCheckOutcome(outcomeOf({
      ok_response: {
        headers: [option('authorization', 'Bearer upstream', { append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }), option('x-debug', 'set')],
        headers_to_remove: ['x-debug', ':path', 'host'],
        response_headers_to_add: [option('x-gatehouse', 'yes')],
        query_parameters_to_set: [{ key: 'page', value: '2' }],
        query_parameters_to_remove: ['drop'],
      },
      dynamic_metadata: { fields: { k: { string_value: 'v' } } },
    }), headers);
    expect(result.allowed).toBe(true);
    // Set before remove: a header both set and removed is gone (so the credential must only be set).
    expect(headers.get('x-debug')).toBeUndefined();
    expect(headers.get('authorization')).toBe('Bearer upstream');
    expect(headers.get(':path')).toBe('/c?keep=1&page=2');
    expect(result.allowed && result.responseHeadersToAdd).toHaveLength(1);
    expect(result.allowed && result.dynamicMetadata).toEqual({ fields: { k: { string_value: 'v' } } });
  });

  it("denies with the service's status, headers and body; 403 when it names no status; 403 empty on an error", () => {
    const denied = applyCheckOutcome(outcomeOf({
      status: { code: 7 },
      denied_response: { status: { code: 'TooManyRequests' }, headers: [option('retry-after', '5')], body: 'slow down' },
    }), new HeaderMap());
    expect(denied.allowed === false && denied.reply).toMatchObject({ status: 429, body: Buffer.from('slow down') });
    expect(denied.allowed === false && denied.reply.headers.get('retry-after')).toBe('5');
    expect(denied.allowed === false && denied.reply.headers.get('content-type')).toBe('text/plain');

    const bare = applyCheckOutcome(outcomeOf({ status: { code: 16 } }), new HeaderMap());
    expect(bare.allowed === false && bare.reply.status).toBe(403);
    const error = applyCheckOutcome({ kind: 'error', reason: 'UNAVAILABLE' }, new HeaderMap());
    expect(error.allowed === false && [error.reply.status, error.reply.body.length]).toEqual([403, 0]);
  });

  it('leaves a path alone when no query mutation is asked for', () => {
    expect(mutateQuery('/a?x=%20y&x=2', [], [])).toBe('/a?x=%20y&x=2');
    expect(mutateQuery('/a?x=1&x=2', [{ key: 'x', value: '3' }], [])).toBe('/a?x=3');
    expect(mutateQuery('/a?x=1', [], ['x'])).toBe('/a');
  });
});

describe('the CheckRequest', () => {
  const req = { socket: { remoteAddress: '::ffff:10.0.0.7', remotePort: 40000, localAddress: '127.0.0.1', localPort: 10000 } } as unknown as IncomingMessage;
  const headers = () => new HeaderMap([[':authority', 'crm'], [':path', '/c?q=1'], [':method', 'POST'], [':scheme', 'http'], ['x-envoy-auth-partial-body', 'forged'], ['accept', 'a'], ['accept', 'b']]);
  const http = (request: Record<string, unknown>) => (request.attributes as { request: { http: Record<string, unknown> } }).request.http;

  it('carries the first max_request_bytes of a longer body, marked partial, and Envoy\'s fields', () => {
    const request = buildCheckRequest({ req, headers: headers(), body: { bytes: Buffer.from('0123456789'), ended: false }, maxRequestBytes: 4, target: 'crm-api', startedAt: new Date(1_700_000_000_123), streamId: '42' });
    expect(http(request)).toMatchObject({
      id: '42', method: 'POST', path: '/c?q=1', host: 'crm', scheme: 'http', protocol: 'HTTP/1.1', size: '10', body: '0123',
      headers: { ':path': '/c?q=1', accept: 'a,b', 'x-envoy-auth-partial-body': 'true' },
    });
    expect(request).toMatchObject({
      attributes: {
        source: { address: { socket_address: { address: '10.0.0.7', port_value: 40000 } } },
        destination: { address: { socket_address: { address: '127.0.0.1', port_value: 10000 } } },
        request: { time: { seconds: '1700000000', nanos: 123_000_000 } },
        context_extensions: { target: 'crm-api' },
      },
    });
  });

  it('keeps a byte order mark in the body Check sees: the upstream gets it too', () => {
    const withBom = buildCheckRequest({ req, headers: headers(), body: { bytes: Buffer.from('\ufeff{"a":1}'), ended: true }, maxRequestBytes: 8192, target: 't', startedAt: new Date(), streamId: '1' });
    expect(http(withBom).body).toBe('\ufeff{"a":1}');
  });

  it('sends bytes that are not UTF-8 as raw_body, and no body fields without a body', () => {
    const binary = buildCheckRequest({ req, headers: headers(), body: { bytes: Buffer.from([0xff, 0xfe, 0x00]), ended: true }, maxRequestBytes: 8192, target: 't', startedAt: new Date(), streamId: '1' });
    expect(http(binary).raw_body).toEqual(Buffer.from([0xff, 0xfe, 0x00]));
    expect(http(binary).body).toBeUndefined();
    expect((http(binary).headers as Record<string, string>)['x-envoy-auth-partial-body']).toBe('false');
    const none = buildCheckRequest({ req, headers: headers(), body: { bytes: Buffer.alloc(0), ended: true }, maxRequestBytes: 8192, target: 't', startedAt: new Date(), streamId: '1' });
    expect(Object.keys(http(none))).not.toContain('body');
    expect(Object.keys(http(none).headers as object)).not.toContain('x-envoy-auth-partial-body');
  });

  it('never carries connection-level headers', () => {
    const map = new HeaderMap([['connection', 'keep-alive, x-hop'], ['x-hop', '1'], ['te', 'trailers, gzip'], ['transfer-encoding', 'chunked'], ['x-end', '2']]);
    stripHopByHop(map);
    expect([...map]).toEqual([['x-end', '2'], ['te', 'trailers']]);
  });
});

describe('an ExternalProcessor that fails (failure_mode_allow: false)', () => {
  let server: Server | null = null;
  afterEach(() => {
    server?.forceShutdown();
    server = null;
  });

  async function processor(onMessage: (call: ServerDuplexStream<unknown, unknown>) => void): Promise<string> {
    server = new Server();
    server.addService(envoyServices().externalProcessor, { Process: (call: ServerDuplexStream<unknown, unknown>) => call.on('data', () => onMessage(call)) });
    const port = await new Promise<number>((resolve, reject) => server!.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    return `127.0.0.1:${port}`;
  }

  const failureOf = async (address: string, timeoutMs: number): Promise<ProcessingFailure> => {
    const client = new ExtProcClient(address, timeoutMs);
    const stream = client.open();
    try {
      const error = await stream.send({ request_headers: { headers: { headers: [] }, end_of_stream: true } }).then(() => null, (err: unknown) => err);
      expect(error).toBeInstanceOf(ProcessingFailure);
      return error as ProcessingFailure;
    } finally {
      stream.close();
      client.close();
    }
  };

  it('is a 504 when an answer does not come within the message timeout', async () => {
    const failure = await failureOf(await processor(() => undefined), 200);
    expect([failure.status, failure.details]).toEqual([504, 'ext_proc_error_per-message_timeout_exceeded']);
  });

  it('is a 500 when the stream fails', async () => {
    const failure = await failureOf(await processor((call) => call.emit('error', { code: GrpcStatus.INTERNAL, details: 'boom' })), 5000);
    expect(failure.status).toBe(500);
    expect(failure.details).toMatch(/^ext_proc_error_gRPC_error_13/);
  });

  it('is a 500 when the processor closes the stream without answering', async () => {
    const failure = await failureOf(await processor((call) => call.end()), 5000);
    expect(failure.status).toBe(500);
  });
});

describe('an ext_authz service that does not answer in time (grpc_service.timeout)', () => {
  let server: Server | null = null;
  afterEach(() => {
    server?.forceShutdown();
    server = null;
  });

  it('is an error, which the filter answers with an empty 403: nothing goes upstream', async () => {
    server = new Server();
    // Holds every call: like a wedged gateway, or a hold longer than Envoy waits.
    server.addService(envoyServices().authorization, { Check: () => undefined });
    const port = await new Promise<number>((resolve, reject) => server!.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    const client = new ExtAuthzClient(`127.0.0.1:${port}`, 200);
    try {
      const outcome = await client.check({ attributes: {} });
      expect(outcome).toMatchObject({ kind: 'error', reason: expect.stringMatching(/gRPC error 4 /) });
      const applied = applyCheckOutcome(outcome, new HeaderMap([]));
      expect(applied.allowed).toBe(false);
      expect(applied.allowed ? null : [applied.reply.status, applied.reply.body.length]).toEqual([403, 0]);
    } finally {
      client.close();
    }
  });
});
