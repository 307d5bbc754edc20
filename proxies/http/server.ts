/**
 * The Envoy stand-in: an HTTP/1.1 front for machines without Envoy (CI, a
 * laptop, `make demo`). It calls Gatehouse's ext_authz and ext_proc gRPC
 * services exactly as Envoy's filters do, so the services under test are the
 * ones production runs behind Envoy (envoy/envoy.yaml). It is not the
 * production path: no TLS, no HTTP/2, no retries, no load balancing, one
 * fixed ext_proc processing mode.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { HttpStandinConfig, TargetConfig } from '../../engine/config/schema.js';
import { logAccess, pathWithoutQuery } from './access-log.js';
import { ExtAuthzClient } from './ext-authz-client.js';
import { ExtProcClient } from './ext-proc-client.js';
import { runExchange, type Stages } from './exchange.js';
import { localReply, writeResponse } from './http-response.js';
import { Router } from './router.js';
import { RouteTable } from './routes.js';

export interface HttpStandinOptions {
  config: HttpStandinConfig;
  /** Routes resolve to these targets' upstream.address; nothing else of a target is read. */
  targets: readonly TargetConfig[];
  logger: Logger;
  /** Envoy's buffer limit for a response body (per_connection_buffer_limit_bytes); 1 MiB, Envoy's default. */
  maxResponseBytes?: number;
}

export interface HttpStandin {
  /** host:port it listens on. */
  address: string;
  close(): Promise<void>;
}

const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;
/** How long close() lets requests in flight finish before cutting their connections. */
const CLOSE_GRACE_MS = 5000;

export async function startHttpStandin(options: HttpStandinOptions): Promise<HttpStandin> {
  const { config } = options;
  const logger = options.logger.child({ component: 'http-standin' });
  const stages: Stages = {
    routes: new RouteTable(config.routes, options.targets),
    extAuthz: new ExtAuthzClient(config.ext_authz_address, config.check_timeout_ms),
    extProc: new ExtProcClient(config.ext_authz_address, config.processing_timeout_ms),
    router: new Router(options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES),
    maxRequestBytes: config.max_request_bytes,
  };

  const server = createServer((req, res) => void handle(req, res, stages, logger));
  const { host, port } = splitAddress(config.address);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    stages.extAuthz.close();
    stages.extProc.close();
    stages.router.close();
    throw err;
  }
  const bound = server.address() as AddressInfo;
  const address = `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
  logger.warn(
    { address, ext_authz: config.ext_authz_address, routes: config.routes },
    'the HTTP stand-in for Envoy is listening: it is for development and tests, not the production path; production HTTP traffic goes through Envoy with envoy/envoy.yaml',
  );

  return {
    address,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const cutoff = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS).unref();
      await closed;
      clearTimeout(cutoff);
      stages.extAuthz.close();
      stages.extProc.close();
      stages.router.close();
    },
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, stages: Stages, logger: Logger): Promise<void> {
  const started = performance.now();
  const method = req.method ?? 'GET';
  const downstreamGone = new AbortController();
  const gone = (): void => {
    if (!res.writableFinished) downstreamGone.abort();
  };
  // The socket too: a response queued behind another on a keep-alive connection gets no 'close' of its own.
  res.once('close', gone);
  req.socket.once('close', gone);
  res.once('finish', () => req.socket.off('close', gone));
  try {
    const result = await runExchange(req, stages, downstreamGone.signal);
    const sent = writeResponse(res, result.response, method);
    logAccess(logger, {
      request_id: result.headers.get('x-request-id') ?? '',
      method,
      path: pathWithoutQuery(req.url ?? '/'),
      target: result.target,
      status: result.response.status,
      details: result.response.details,
      bytes_received: result.bytesReceived,
      bytes_sent: sent,
      duration_ms: round(performance.now() - started),
      check_ms: result.checkMs === null ? null : round(result.checkMs),
      upstream_ms: result.upstreamMs === null ? null : round(result.upstreamMs),
    });
  } catch (err) {
    // A bug or a client that vanished mid-body: this request ends, the listener goes on.
    logger.error({ err, method, path: pathWithoutQuery(req.url ?? '/') }, 'http stand-in: request failed');
    if (!res.headersSent) writeResponse(res, localReply(500, '', 'standin_internal_error'), method);
    else res.destroy();
  }
}

const round = (ms: number): number => Math.round(ms * 100) / 100;

function splitAddress(address: string): { host: string; port: number } {
  const cut = address.lastIndexOf(':');
  return { host: address.slice(0, cut).replace(/^\[|\]$/g, ''), port: Number(address.slice(cut + 1)) };
}
