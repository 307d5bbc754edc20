/**
 * What every JSON body must be before a route reads it: text that is
 * well-formed Unicode, nested no deeper than an audit event may be. A lone
 * surrogate or a deeper tree has no canonical JSON (RFC 8785), so its audit
 * event could not be written; refused here, before anything is decided or
 * changed, it cannot leave a vote committed with no event for it.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { hasLoneSurrogate, MAX_DEPTH as EVENT_DEPTH } from '../engine/audit/canonical.js';

/** What canonical JSON allows, less room for the event the body ends up in. */
const MAX_DEPTH = EVENT_DEPTH - 20;

export async function refuseUnwritableBody(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const problem = unwritable(request.body, 0);
  if (problem) await reply.code(400).send({ error: `the body ${problem}` });
}

function unwritable(value: unknown, depth: number): string | null {
  if (typeof value === 'string') return hasLoneSurrogate(value) ? 'holds text that is not well-formed Unicode (a lone surrogate)' : null;
  if (typeof value !== 'object' || value === null) return null;
  if (depth >= MAX_DEPTH) return `is nested deeper than ${MAX_DEPTH} levels`;
  for (const key in value) {
    const problem = unwritable(key, depth) ?? unwritable((value as Record<string, unknown>)[key], depth + 1);
    if (problem) return problem;
  }
  return null;
}
