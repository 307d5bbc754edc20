/**
 * The stand-in's last step: a real node:http server writing responses the
 * way proxies/http/server.ts does, read back by a real client.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HeaderMap } from '../../proxies/http/header-map.js';
import { writeResponse, type HttpResponse } from '../../proxies/http/http-response.js';

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

async function served(response: HttpResponse, method = 'GET'): Promise<Response> {
  server = createServer((_req, res) => writeResponse(res, response, method));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { method });
}

function upstream(headers: [string, string][], body: string, status = 200): HttpResponse {
  const map = new HeaderMap();
  for (const [name, value] of headers) map.add(name, value);
  return { status, headers: map, body: Buffer.from(body), details: 'via_upstream' };
}

describe('writeResponse', () => {
  it('sends the body whole with its own length, whatever the upstream framed', async () => {
    const res = await served(upstream([['content-length', '999'], ['transfer-encoding', 'chunked'], ['x-kept', 'yes']], 'masked body'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe('11');
    expect(res.headers.get('x-kept')).toBe('yes');
    expect(await res.text()).toBe('masked body');
  });

  it('drops an upstream Trailer header: no trailers follow a body sent with a length', async () => {
    const res = await served(upstream([['trailer', 'x-checksum'], ['content-type', 'application/json']], '{}'));
    expect(res.status).toBe(200);
    expect(res.headers.get('trailer')).toBeNull();
    expect(await res.text()).toBe('{}');
  });
});
