import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import type { Gateway } from '../engine/gateway.js';
import { refuseUnwritableBody } from './body-checks.js';
import { registerApprovalRoutes } from './routes/approvals.js';
import { registerAuthorizeRoutes } from './routes/authorize.js';
import { registerEvalRoutes } from './routes/eval.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerMaskingRoutes } from './routes/masking.js';
import { registerSessionRoutes } from './routes/sessions.js';

export interface ApiServerOptions {
  engine: Engine;
  logger: Logger;
  /** The engine services; without them only health, metrics and eval are served. */
  gateway?: Gateway;
}

/** The HTTP API: health, metrics, policy evaluation, authorize, approvals, sessions, and masked column places. */
export function createApiServer({ engine, logger, gateway }: ApiServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: logger.child({ component: 'api' }) as FastifyBaseLogger,
    // One log line per request would drown the decision logs that matter.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
  });
  app.addHook('preValidation', refuseUnwritableBody);
  registerHealthRoutes(app, engine, gateway?.recorder);
  registerEvalRoutes(app, engine);
  if (gateway) {
    registerAuthorizeRoutes(app, gateway);
    registerApprovalRoutes(app, gateway);
    registerSessionRoutes(app, { store: gateway.store, verifier: gateway.verifier, viewerGroups: gateway.recorder.settings.viewer_groups });
    registerMaskingRoutes(app, { places: gateway.maskedColumnPlaces, verifier: gateway.verifier });
  }
  return app;
}

/** Splits `host:port` (IPv6 in brackets) for listen(). */
export function parseAddress(address: string): { host: string; port: number } {
  const cut = address.lastIndexOf(':');
  return { host: address.slice(0, cut).replace(/^\[|\]$/g, ''), port: Number(address.slice(cut + 1)) };
}
