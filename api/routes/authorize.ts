import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { Authorizer, AuthorizeResult, Refusal } from '../../engine/authorize/authorizer.js';
import { bearerToken } from '../auth.js';
import { approvalView, authorizeView } from '../views.js';

const authorizeBody = z.strictObject({
  target: z.string().min(1),
  action: z.record(z.string(), z.unknown()),
  session_id: z.string().min(1).max(200).optional(),
});

const REFUSAL_STATUS: Record<Refusal, number> = { unauthenticated: 401, unknown_target: 404, invalid_action: 400 };

export interface AuthorizeRouteOptions {
  authorizer: Authorizer;
  statusUrl(id: string): string;
}

/**
 * POST /v1/authorize with `Authorization: Bearer <token>` and
 * {"target", "action", "session_id"?}: the engine's authorize() for custom
 * integrations. A held request answers when a human decides. A client that
 * sends `Accept: application/x-ndjson` gets a line as soon as the request is
 * held (with the approval id to pass on), then the decision.
 */
export function registerAuthorizeRoutes(app: FastifyInstance, { authorizer, statusUrl }: AuthorizeRouteOptions): void {
  app.post('/v1/authorize', async (request, reply) => {
    const body = authorizeBody.safeParse(request.body);
    if (!body.success) {
      return reply.code(400).send({ error: 'the body must be {"target": "<name>", "action": {...}, "session_id"?: "<id>"}' });
    }
    // A held request ends when its caller goes away, so nobody approves an action that will never run.
    const gone = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) gone.abort();
    });
    const call = {
      token: bearerToken(request),
      target: body.data.target,
      action: body.data.action,
      sessionId: body.data.session_id,
      sourceIp: request.ip,
    };

    if (!(request.headers.accept ?? '').includes('application/x-ndjson')) {
      const result = await authorizer.authorize(call, { signal: gone.signal });
      return reply.code(statusOf(result)).send(authorizeView(result, statusUrl));
    }
    return streamDecision(reply, (onHeld) => authorizer.authorize(call, { signal: gone.signal, onHeld }), statusUrl);
  });
}

function statusOf(result: AuthorizeResult): number {
  return result.refused ? REFUSAL_STATUS[result.refused] : 200;
}

function streamDecision(
  reply: FastifyReply,
  run: (onHeld: (approval: Parameters<typeof approvalView>[0]) => void) => Promise<AuthorizeResult>,
  statusUrl: (id: string) => string,
): FastifyReply {
  const lines = new PassThrough();
  const write = (line: object): void => {
    lines.write(`${JSON.stringify(line)}\n`);
  };
  run((approval) => write({ status: 'held', approval: approvalView(approval, statusUrl(approval.id)) })).then(
    (result) => {
      write({ status: 'decided', http_status: statusOf(result), ...authorizeView(result, statusUrl) });
      lines.end();
    },
    (err: unknown) => {
      reply.log.error({ err }, 'authorize failed');
      write({ status: 'error', error: 'authorization failed; the request is denied' });
      lines.end();
    },
  );
  return reply.type('application/x-ndjson').send(lines);
}
