/**
 * envoy.service.auth.v3.Authorization/Check: one CheckRequest in, one
 * engine decision, one CheckResponse out. Everything that decides lives in
 * the engine (Authorizer); this file only translates. A failure of its own
 * answers with a gRPC error, which Envoy (failure_mode_allow: false) turns
 * into a denial.
 */
import { randomUUID } from 'node:crypto';
import { status as GrpcStatus, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { AuthorizeResult, Authorizer } from '../../engine/authorize/authorizer.js';
import type { HttpTargetConfig, TargetConfig } from '../../engine/config/schema.js';
import type { HashKey } from '../../engine/masking/strategies.js';
import type { ExchangeMetadata } from '../exchange-metadata.js';
import { allowResponse, denyResponse, type CheckResponse, type Credential } from './check-response.js';
import { envoyInput, type CheckAttributes } from './envoy-input.js';
import { MaskPlanCheck } from './mask-plan.js';

export interface CheckServiceOptions {
  targets: readonly TargetConfig[];
  /** The target when the route's context_extensions name none. */
  defaultTarget?: string | undefined;
  authorizer: Pick<Authorizer, 'authenticate' | 'authorize' | 'refuseInvalid'>;
  logger: Logger;
  statusUrl(approvalId: string): string;
  /** Whether "hash" mask rules can be applied (a key is configured or drawn). */
  hashKey?: HashKey | undefined;
  /** Retry-After on a ticket (seconds). */
  ticketRetrySeconds?: number;
}

interface CheckRequest {
  attributes?: CheckAttributes;
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

export function createCheckService(options: CheckServiceOptions) {
  const { authorizer, logger } = options;
  const httpTargets = new Map(options.targets.filter((t): t is HttpTargetConfig => t.kind === 'http').map((t) => [t.name, t]));
  const otherTargets = new Map(options.targets.filter((t) => t.kind !== 'http').map((t) => [t.name, t.kind]));
  const retryAfter = options.ticketRetrySeconds ?? 30;
  const maskPlans = new MaskPlanCheck(options.hashKey);

  async function check(request: CheckRequest, cancellation: LazyCancellation, deadline: number | undefined): Promise<CheckResponse> {
    const attributes = request.attributes ?? {};
    const http = attributes.request?.http ?? {};
    const targetName = attributes.contextExtensions?.target ?? options.defaultTarget ?? '';
    const token = BEARER.exec(http.headers?.authorization ?? '')?.[1];
    const sessionId = randomUUID();
    const sourceIp = sourceAddress(attributes);
    const input = envoyInput(attributes);
    const action = 'invalid' in input ? { attributes: { request: { http: { method: http.method, path: http.path, host: http.host } } } } : input;

    const login = await authorizer.authenticate({ token, target: targetName, action, sessionId, sourceIp });
    if (!login.identity) return denied(login.result, true);
    const authorizeRequest = { token, identity: login.identity, target: targetName, action, sessionId, sourceIp };
    if ('invalid' in input) return denied(await authorizer.refuseInvalid(authorizeRequest, input.invalid));
    const target = httpTargets.get(targetName);
    if (!target && otherTargets.has(targetName)) {
      return denied(await authorizer.refuseInvalid(authorizeRequest, `target ${targetName} is a ${otherTargets.get(targetName)} target; an Envoy route must name an http target`));
    }

    const result = await authorizer.authorize(authorizeRequest, {
      // Read only when a request is held; most Checks never build the signal.
      get signal() {
        return cancellation.signal;
      },
      holdDeadline: deadline,
      enforce: async (decision) => maskPlans.problem(decision.mask),
    });
    if (result.decision.action !== 'allow' || !target) return denied(result);
    return allowResponse(result.decision, credentialOf(target), exchangeOf(result, target, sessionId, sourceIp));
  }

  function denied(result: AuthorizeResult, unauthenticated = false): CheckResponse {
    const pending = result.approval?.status === 'pending' ? result.approval : null;
    return denyResponse(result.decision, {
      decisionId: result.decision_id,
      unauthenticated,
      ...(pending ? { approval: { id: pending.id, statusUrl: options.statusUrl(pending.id), retryAfterSeconds: retryAfter } } : {}),
    });
  }

  return {
    Check(call: ServerUnaryCall<CheckRequest, CheckResponse>, callback: sendUnaryData<CheckResponse>): void {
      // Envoy cancels the call when the client goes away, and a request held
      // for approval is withdrawn. Envoy's ext_authz timeout arrives as the
      // call's deadline: a hold that would outlast it is answered as a ticket
      // just before, so the agent learns where to follow its request.
      const cancellation = lazyCancellation(call);
      const abort = (): void => cancellation.abort();
      call.once('cancelled', abort);
      // grpc-js reports every finished call as cancelled: stop listening before answering,
      // or each answer would abort (and build a DOMException) for nothing.
      check(call.request, cancellation, deadlineOf(call)).then(
        (response) => {
          call.off('cancelled', abort);
          callback(null, response);
        },
        (err: unknown) => {
          call.off('cancelled', abort);
          logger.error({ err }, 'Check failed; Envoy will deny the request');
          callback({ code: GrpcStatus.INTERNAL, details: 'gatehouse could not decide the request' });
        },
      );
    },
  };
}

function credentialOf(target: HttpTargetConfig): Credential {
  return { header: target.credentials.header.toLowerCase(), value: target.credentials.value.reveal() };
}

function exchangeOf(result: AuthorizeResult, target: HttpTargetConfig, sessionId: string, sourceIp: string | null): ExchangeMetadata {
  const identity = result.identity!;
  return {
    decision_id: result.decision_id,
    session_id: sessionId,
    target: target.name,
    identity: { sub: identity.sub, iss: identity.iss, groups: [...identity.groups], agent: identity.agent, act: identity.act ? { sub: identity.act.sub } : null },
    source_ip: sourceIp,
    audit: result.audit ? { stream: result.audit.stream, seq: result.audit.seq } : null,
    mask: result.decision.mask.flatMap((rule) => (rule.field === undefined ? [] : [{
      field: rule.field,
      strategy: rule.strategy,
      ...(rule.detectors ? { detectors: rule.detectors } : {}),
    }])),
    record: target.recording.enabled,
    credential_header: target.credentials.header.toLowerCase(),
    approval_id: result.approval?.status === 'consumed' ? result.approval.id : null,
  };
}

function sourceAddress(attributes: CheckAttributes): string | null {
  const source = attributes.source as { address?: { socketAddress?: { address?: unknown } } } | undefined;
  const address = source?.address?.socketAddress?.address;
  return typeof address === 'string' && address !== '' ? address : null;
}

function deadlineOf(call: ServerUnaryCall<unknown, unknown>): number | undefined {
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) ? ms : undefined;
}

interface LazyCancellation {
  /** Built on first read, already aborted if the call was cancelled before. */
  readonly signal: AbortSignal;
  abort(): void;
}

/** An AbortController costs a few µs per call; only a held Check needs one. */
function lazyCancellation(call: ServerUnaryCall<unknown, unknown>): LazyCancellation {
  let controller: AbortController | null = null;
  return {
    get signal() {
      controller ??= new AbortController();
      if (call.cancelled) controller.abort();
      return controller.signal;
    },
    abort() {
      controller?.abort();
    },
  };
}
