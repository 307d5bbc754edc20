import type { FastifyReply } from 'fastify';
import type { z } from 'zod';
import { TokenError } from '../../engine/identity/identity.js';

/** A refusal a route makes itself, with its HTTP status. */
export class RouteError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** `value` checked against `schema`; a mismatch is a 400 naming each field (`where` when the whole input is wrong). */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown, where: 'body' | 'query'): z.output<T> {
  const parsed = schema.safeParse(value ?? undefined);
  if (!parsed.success) {
    throw new RouteError(400, parsed.error.issues.map((i) => `${i.path.join('.') || where}: ${i.message}`).join('; '));
  }
  return parsed.data;
}

/**
 * Runs a route's handler. Known refusals become a status and one line (a bad
 * token 401, a RouteError its status, and whatever `statusOf` recognises);
 * anything else is a 500 without details, logged as `what` failed.
 */
export async function guarded(
  reply: FastifyReply,
  what: string,
  handler: () => Promise<unknown>,
  statusOf: (err: unknown) => number | undefined = () => undefined,
): Promise<unknown> {
  try {
    return await handler();
  } catch (err) {
    if (err instanceof TokenError) return reply.code(401).send({ error: `token rejected (${err.reason}): ${err.message}` });
    const status = err instanceof RouteError ? err.status : statusOf(err);
    if (status !== undefined) return reply.code(status).send({ error: (err as Error).message });
    reply.log.error({ err }, `${what} failed`);
    return reply.code(500).send({ error: 'internal error' });
  }
}
