import type { FastifyInstance } from 'fastify';
import type { Engine } from '../../engine/engine.js';

export function registerHealthRoutes(app: FastifyInstance, engine: Engine): void {
  // Unhealthy until a bundle is active: with no policy every decision denies.
  app.get('/health', async (_request, reply) => {
    const policy = engine.status();
    const healthy = policy.revision !== null;
    return reply.code(healthy ? 200 : 503).send({ status: healthy ? 'ok' : 'no_policy', policy });
  });

  app.get('/metrics', async (_request, reply) => {
    const registry = engine.metrics.registry;
    return reply.type(registry.contentType).send(await registry.metrics());
  });
}
