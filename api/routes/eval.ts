import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { nowNs } from '../../engine/clock.js';
import type { Engine } from '../../engine/engine.js';

const evalRequest = z.strictObject({ input: z.record(z.string(), z.unknown()) });

/**
 * POST /v1/eval/<entrypoint>, e.g. /v1/eval/gatehouse/postgres/decision, with
 * `{"input": {...}}` as OPA's data API takes it. The answer is the engine's:
 * a decision that failed to evaluate comes back as a deny with its reason.
 */
export function registerEvalRoutes(app: FastifyInstance, engine: Engine): void {
  app.post<{ Params: { '*': string } }>('/v1/eval/*', async (request, reply) => {
    const entrypoint = request.params['*'];
    if (!entrypoint) return reply.code(404).send({ error: 'name an entrypoint: POST /v1/eval/gatehouse/<protocol>/decision' });
    const body = evalRequest.safeParse(request.body);
    if (!body.success) {
      return reply.code(400).send({ error: 'the body must be a JSON object {"input": {...}}' });
    }
    const input = body.data.input;
    // The gateway is the clock; a caller may pin it to replay a decision.
    input.now_ns ??= nowNs();
    return engine.evaluate(entrypoint, input);
  });
}
