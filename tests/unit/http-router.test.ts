import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HeaderMap } from '../../proxies/http/header-map.js';
import { Router } from '../../proxies/http/router.js';

/** An upstream that answers every connection with these raw bytes. */
async function rawUpstream(answer: string): Promise<{ server: Server; url: URL }> {
  const server = createServer((socket) => socket.once('data', () => socket.write(answer)));
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const address = server.address() as { port: number };
  return { server, url: new URL(`http://127.0.0.1:${address.port}`) };
}

describe('Router (the stand-in\'s upstream side)', () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  it('answers a protocol upgrade (101) from the upstream with a 502 instead of waiting for ever', async () => {
    const upstream = await rawUpstream('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    server = upstream.server;
    const response = await new Router(1 << 20).forward({
      upstream: upstream.url,
      // The stand-in takes Upgrade off the request (hop by hop); a hostile upstream switches anyway.
      headers: new HeaderMap([[':method', 'GET'], [':path', '/']]),
      body: { replaced: Buffer.alloc(0) },
    });
    expect([response.status, response.details]).toEqual([502, 'upstream_upgrade_refused']);
  });

  it('drops the upstream\'s trailers: the response it hands on holds none, for ext_proc or the client', async () => {
    // Envoy (response_trailer_mode SEND) has ext_proc screen them; the stand-in's response goes out with a
    // Content-Length and no trailers, so it drops them instead of passing them on unscreened.
    const upstream = await rawUpstream('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: x-echo\r\n\r\n'
      + '2\r\nok\r\n0\r\nx-echo: crm-upstream-secret-5d1e\r\n\r\n');
    server = upstream.server;
    const response = await new Router(1 << 20).forward({
      upstream: upstream.url,
      headers: new HeaderMap([[':method', 'GET'], [':path', '/']]),
      body: { replaced: Buffer.alloc(0) },
    });
    expect([response.status, response.body.toString()]).toEqual([200, 'ok']);
    expect(response.headers.has('x-echo')).toBe(false);
    expect(JSON.stringify(response)).not.toContain('crm-upstream-secret');
  });
});
