import type { FastifyInstance } from 'fastify';
import type { Engine } from '../../engine/engine.js';
import type { SessionRecorder } from '../../engine/recording/recorder.js';

export function registerHealthRoutes(app: FastifyInstance, engine: Engine, recorder?: Pick<SessionRecorder, 'healthy' | 'queued'>): void {
  // Unhealthy until a bundle is active: with no policy every decision denies.
  // Failing recording writes do not stop decisions (entries wait in memory),
  // so they make the gateway "degraded", still 200, for monitoring to see.
  app.get('/health', async (_request, reply) => {
    const policy = engine.status();
    const recordings = recorder ? { healthy: recorder.healthy, queued: recorder.queued } : undefined;
    if (policy.revision === null) return reply.code(503).send({ status: 'no_policy', policy, recordings });
    return reply.code(200).send({ status: recordings?.healthy === false ? 'degraded' : 'ok', policy, recordings });
  });

  app.get('/metrics', async (_request, reply) => {
    const registry = engine.metrics.registry;
    return reply.type(registry.contentType).send(await registry.metrics());
  });
}
