import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ApprovalError, type ApprovalErrorCode } from '../../engine/approvals/errors.js';
import { isRequester, isRequestersHuman } from '../../engine/approvals/rules.js';
import type { ApprovalService } from '../../engine/approvals/service.js';
import { isHuman, type Identity, type TokenVerifier } from '../../engine/identity/identity.js';
import type { ApprovalRecord, ApprovalStatus } from '../../engine/store/store.js';
import { authenticate } from '../auth.js';
import { approvalView } from '../views.js';
import { guarded, parseInput } from './guarded.js';

export interface ApprovalRouteOptions {
  approvals: ApprovalService;
  verifier: TokenVerifier;
  statusUrl(id: string): string;
}

const STATUSES = ['pending', 'approved', 'denied', 'expired', 'revoked', 'consumed'] as const;
const listQuery = z.strictObject({
  status: z.enum([...STATUSES, 'all']).default('pending'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
const approveBody = z.strictObject({
  comment: z.string().max(2000).optional(),
  /** The action hash the approver read: approving is refused if the record no longer holds it. */
  action_hash: z.string().regex(/^[0-9a-f]{64}$/, 'must be the 64 hex digits of the action\'s SHA-256').optional(),
}).default({});
const denyBody = z.strictObject({ reason: z.string().min(1, { message: 'say why' }).max(2000) });
const revokeBody = z.strictObject({ reason: z.string().max(2000).optional() }).default({});

const ERROR_STATUS: Record<ApprovalErrorCode, number> = { not_found: 404, forbidden: 403, conflict: 409, invalid: 400, too_many: 429 };
const approvalStatus = (err: unknown) => (err instanceof ApprovalError ? ERROR_STATUS[err.code] : undefined);

type Params = { id: string };

/**
 * The approvals API. Every call carries an OIDC bearer token: approvers
 * must be in the policy's groups, and requesters may follow their own
 * requests. Votes go through the service, which enforces the two-person rule.
 */
export function registerApprovalRoutes(app: FastifyInstance, { approvals, verifier, statusUrl }: ApprovalRouteOptions): void {
  const view = (a: ApprovalRecord): Record<string, unknown> => approvalView(a, statusUrl(a.id));

  app.get('/v1/approvals', async (request, reply) => guarded(reply, 'approval request', async () => {
    const caller = await authenticate(request, verifier);
    const query = parseInput(listQuery, request.query, 'query');
    const status: ApprovalStatus | undefined = query.status === 'all' ? undefined : query.status;
    // Filtered page by page: others' requests, however many, must not push the caller's own off the list.
    const visible: ApprovalRecord[] = [];
    let after: { created_at: string; id: string } | undefined;
    for (let page = 0; page < MAX_PAGES && visible.length < query.limit; page++) {
      const found = await approvals.list({ status, limit: query.limit, ...(after ? { after } : {}) });
      for (const a of found) if (mayView(a, caller) && visible.length < query.limit) visible.push(a);
      if (found.length < query.limit) break;
      const last = found.at(-1)!;
      after = { created_at: last.created_at, id: last.id };
    }
    return { approvals: visible.map(view) };
  }, approvalStatus));

  app.get<{ Params: Params }>('/v1/approvals/:id', async (request, reply) => guarded(reply, 'approval request', async () => {
    const caller = await authenticate(request, verifier);
    const approval = await approvals.get(request.params.id);
    if (!mayView(approval, caller)) throw new ApprovalError('forbidden', `${caller.sub} is neither the requester nor an approver of ${approval.id}`);
    return view(approval);
  }, approvalStatus));

  app.post<{ Params: Params }>('/v1/approvals/:id/approve', async (request, reply) => guarded(reply, 'approval request', async () => {
    const caller = await authenticate(request, verifier);
    const { comment, action_hash: seenHash } = parseInput(approveBody, request.body, 'body');
    return view(await approvals.vote(request.params.id, caller, 'approve', comment ?? null, seenHash));
  }, approvalStatus));

  app.post<{ Params: Params }>('/v1/approvals/:id/deny', async (request, reply) => guarded(reply, 'approval request', async () => {
    const caller = await authenticate(request, verifier);
    const { reason } = parseInput(denyBody, request.body, 'body');
    return view(await approvals.vote(request.params.id, caller, 'deny', reason));
  }, approvalStatus));

  app.post<{ Params: Params }>('/v1/approvals/:id/revoke', async (request, reply) => guarded(reply, 'approval request', async () => {
    const caller = await authenticate(request, verifier);
    const { reason } = parseInput(revokeBody, request.body, 'body');
    return view(await approvals.revoke(request.params.id, caller, reason ?? null));
  }, approvalStatus));
}

/** Pages of `limit` records looked through for the caller's at most: a bound on one listing's work. */
const MAX_PAGES = 50;

function mayView(approval: ApprovalRecord, caller: Identity): boolean {
  return isRequester(approval, caller)
    || isRequestersHuman(approval, caller)
    || (isHuman(caller) && caller.groups.some((g) => approval.groups.includes(g)));
}
