/**
 * The Check call, with Envoy's ext_authz failure semantics
 * (failure_mode_allow: false, status_on_error 403): a gRPC error, a deadline
 * exceeded or an unreadable answer is an error; a non-OK google.rpc.Status
 * is a denial whether or not it carries a denied_response.
 */
import { credentials, type Client, type ServiceError } from '@grpc/grpc-js';
import { envoyServices } from '../../ext-authz/envoy-protos.js';
import type { CheckResponse, HeaderValueOption, StructMessage } from './envoy-types.js';
import { httpStatusCode } from './http-status.js';

export type CheckOutcome =
  | {
    kind: 'ok';
    headers: HeaderValueOption[];
    headersToRemove: string[];
    responseHeadersToAdd: HeaderValueOption[];
    queryParametersToSet: Array<{ key: string; value: string }>;
    queryParametersToRemove: string[];
    /** Filed by Envoy under envoy.filters.http.ext_authz. */
    dynamicMetadata: StructMessage | null;
  }
  | { kind: 'denied'; status: number; headers: HeaderValueOption[]; body: string }
  | { kind: 'error'; reason: string };

type CheckClient = Client & {
  Check(request: unknown, options: { deadline: Date }, callback: (err: ServiceError | null, response?: CheckResponse) => void): { cancel(): void };
};

export class ExtAuthzClient {
  private readonly client: CheckClient;

  constructor(address: string, private readonly timeoutMs: number) {
    const Authorization = envoyServices().grpc.envoy.service.auth.v3.Authorization;
    this.client = new Authorization(address, credentials.createInsecure()) as CheckClient;
  }

  /**
   * `downstreamGone` fires when the client disconnects: as Envoy resets
   * the stream, the call is cancelled, so a request held for approval is
   * withdrawn rather than run later for no one.
   */
  check(request: unknown, downstreamGone?: AbortSignal): Promise<CheckOutcome> {
    return new Promise((resolve) => {
      const call = this.client.Check(request, { deadline: new Date(Date.now() + this.timeoutMs) }, (err, response) => {
        downstreamGone?.removeEventListener('abort', cancel);
        if (err) resolve({ kind: 'error', reason: `ext_authz gRPC error ${err.code} (${err.details})` });
        else if (!response) resolve({ kind: 'error', reason: 'ext_authz sent no response' });
        else resolve(outcomeOf(response));
      });
      const cancel = (): void => call.cancel();
      if (downstreamGone?.aborted) cancel();
      else downstreamGone?.addEventListener('abort', cancel, { once: true });
    });
  }

  close(): void {
    this.client.close();
  }
}

export function outcomeOf(response: CheckResponse): CheckOutcome {
  if ((response.status?.code ?? 0) !== 0) {
    const denied = response.denied_response;
    return {
      kind: 'denied',
      // No status, or one an HTTP/1.1 reply cannot carry: Envoy's default, 403.
      status: httpStatusCode(denied?.status) ?? 403,
      headers: denied?.headers ?? [],
      body: denied?.body ?? '',
    };
  }
  const ok = response.ok_response ?? {};
  return {
    kind: 'ok',
    headers: ok.headers ?? [],
    headersToRemove: ok.headers_to_remove ?? [],
    responseHeadersToAdd: ok.response_headers_to_add ?? [],
    queryParametersToSet: (ok.query_parameters_to_set ?? []).filter((q): q is { key: string; value: string } => typeof q.key === 'string' && q.key !== '').map((q) => ({ key: q.key, value: q.value ?? '' })),
    queryParametersToRemove: ok.query_parameters_to_remove ?? [],
    // The deprecated ok_response.dynamic_metadata overrides the top-level field while it exists (external_auth.proto).
    dynamicMetadata: ok.dynamic_metadata ?? response.dynamic_metadata ?? null,
  };
}
