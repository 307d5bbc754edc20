import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { isHuman, type Identity, type TokenVerifier } from '../../engine/identity/identity.js';
import { entryView, sessionView } from '../../engine/recording/views.js';
import { MAX_SESSION_PAGE } from '../../engine/store/recordings.js';
import type { SessionSummary, Store } from '../../engine/store/store.js';
import { authenticate } from '../auth.js';
import { guarded, parseInput, RouteError } from './guarded.js';

export interface SessionRouteOptions {
  store: Pick<Store, 'listSessions' | 'getSession' | 'sessionEntries'>;
  verifier: TokenVerifier;
  /** recordings.viewer_groups: members may read every session. */
  viewerGroups: readonly string[];
}

const listQuery = z.strictObject({
  target: z.string().min(1).optional(),
  who: z.string().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
const entriesQuery = z.strictObject({
  after_seq: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(MAX_SESSION_PAGE).default(1000),
});

/**
 * The sessions API, read-only. Like /v1/approvals, every call carries an
 * OIDC bearer token. A caller sees the sessions it ran and those an agent
 * ran on its behalf (act); members of recordings.viewer_groups see all.
 *
 * GET /v1/sessions[?target=&who=&limit=]      newest first
 * GET /v1/sessions/:id[?after_seq=&limit=]    the session and a page of its transcript
 */
export function registerSessionRoutes(app: FastifyInstance, { store, verifier, viewerGroups }: SessionRouteOptions): void {
  const isViewer = (caller: Identity): boolean => isHuman(caller) && caller.groups.some((g) => viewerGroups.includes(g));

  app.get('/v1/sessions', async (request, reply) => guarded(reply, 'session request', async () => {
    const caller = await authenticate(request, verifier);
    const { who, ...query } = parseInput(listQuery, request.query, 'query');
    if (!isViewer(caller) && who !== undefined && who !== caller.sub) {
      throw new RouteError(403, `${caller.sub} may list only its own sessions (recordings.viewer_groups may list others')`);
    }
    // A subject names someone only within its issuer: the same sub from another issuer is someone else.
    const own = isViewer(caller) ? (who === undefined ? undefined : { sub: who }) : { sub: caller.sub, iss: caller.iss };
    const sessions = await store.listSessions({ ...query, who: own });
    return { sessions: sessions.map(sessionView) };
  }));

  app.get<{ Params: { id: string } }>('/v1/sessions/:id', async (request, reply) => guarded(reply, 'session request', async () => {
    const caller = await authenticate(request, verifier);
    const page = parseInput(entriesQuery, request.query, 'query');
    const session = await store.getSession(request.params.id);
    if (!session) throw new RouteError(404, `no session recording with id ${request.params.id}`);
    if (!mayView(session, caller, isViewer(caller))) {
      throw new RouteError(403, `${caller.sub} is neither the session's caller nor the human it acted for, nor in recordings.viewer_groups`);
    }
    const entries = await store.sessionEntries(session.id, { afterSeq: page.after_seq, limit: page.limit });
    const last = entries.at(-1);
    return {
      session: sessionView(session),
      entries: entries.map((e) => entryView(e, session.started_at)),
      next_after_seq: entries.length === page.limit && last ? last.seq : null,
    };
  }));
}

/** Sessions recorded before the issuer was kept (iss null) are for viewers only: their subject could be anyone's. */
function mayView(session: SessionSummary, caller: Identity, viewer: boolean): boolean {
  return viewer || (session.iss === caller.iss && (session.sub === caller.sub || session.act_sub === caller.sub));
}
