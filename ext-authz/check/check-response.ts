/**
 * A decision as Envoy's CheckResponse (JSON names: the Check service is
 * loaded with them). The HTTP fields follow the OPA-Envoy plugin: `headers`
 * go upstream on allow and to the client on deny, `response_headers_to_add`
 * to the client on allow, `http_status` and `body` make the denied answer.
 * On allow Gatehouse adds its own part: the agent's bearer token is removed
 * and the target's credential set, and the ExternalProcessor's instructions
 * ride in dynamic_metadata.
 */
import type { Decision } from '../../engine/policy/decision.js';
import { EXCHANGE_KEY, exchangeMetadataValue, type ExchangeMetadata } from '../exchange-metadata.js';
import { jsonToStruct } from '../struct.js';

/** google.rpc.Code values Envoy reads in CheckResponse.status. */
const RPC_OK = 0;
const RPC_PERMISSION_DENIED = 7;
const RPC_UNAUTHENTICATED = 16;

type HeaderMap = NonNullable<Decision['headers']>;

interface HeaderValueOption {
  header: { key: string; value: string };
  appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' | 'APPEND_IF_EXISTS_OR_ADD';
}

export interface CheckResponse {
  status: { code: number; message?: string };
  okResponse?: {
    headers: HeaderValueOption[];
    headersToRemove: string[];
    responseHeadersToAdd: HeaderValueOption[];
    queryParametersToSet: Array<{ key: string; value: string }>;
    queryParametersToRemove: string[];
  };
  deniedResponse?: {
    status: { code: number };
    headers: HeaderValueOption[];
    body: string;
  };
  dynamicMetadata?: ReturnType<typeof jsonToStruct>;
}

export interface Credential {
  /** Lower-case header name. */
  header: string;
  value: string;
}

export function allowResponse(decision: Decision, credential: Credential, exchange: ExchangeMetadata): CheckResponse {
  // The agent's token must not reach the upstream. When the credential goes
  // in the same header, overwriting it is the removal: setting and removing
  // one header in the same answer would leave the result to the order in
  // which Envoy applies the two lists.
  const removed = new Set((decision.request_headers_to_remove ?? []).map((h) => h.toLowerCase()));
  removed.add('authorization');
  // A client that has the gateway configured as its HTTP proxy sends the token here too; a proxy consumes it.
  removed.add('proxy-authorization');
  removed.delete(credential.header);
  return {
    status: { code: RPC_OK },
    okResponse: {
      headers: [
        ...headerOptions(omit(decision.headers, credential.header)),
        { header: { key: credential.header, value: credential.value }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      ],
      headersToRemove: [...removed],
      responseHeadersToAdd: headerOptions(decision.response_headers_to_add),
      queryParametersToSet: Object.entries(decision.query_parameters_to_set ?? {}).flatMap(([key, value]) =>
        (Array.isArray(value) ? value : [value]).map((v) => ({ key, value: v }))),
      queryParametersToRemove: decision.query_parameters_to_remove ?? [],
    },
    dynamicMetadata: jsonToStruct({ ...decision.dynamic_metadata, [EXCHANGE_KEY]: exchangeMetadataValue(exchange) }),
  };
}

export interface DenialDetails {
  decisionId: string;
  /** The caller's token was missing or refused: 401 with a Bearer challenge, unless the policy chose a status. */
  unauthenticated?: boolean;
  /** A ticket: the approval the caller waits for. */
  approval?: { id: string; statusUrl: string; retryAfterSeconds: number };
}

export function denyResponse(decision: Decision, details: DenialDetails): CheckResponse {
  const headers: HeaderMap = { ...decision.headers };
  let status = decision.http_status ?? (details.unauthenticated ? 401 : 403);
  let body = decision.body;
  if (details.unauthenticated && decision.http_status === undefined) {
    headers['www-authenticate'] = 'Bearer realm="gatehouse", error="invalid_token"';
  }
  if (details.approval) {
    status = decision.http_status ?? 403;
    headers['retry-after'] = String(details.approval.retryAfterSeconds);
    headers['x-gatehouse-approval-id'] = details.approval.id;
    headers.link = `<${details.approval.statusUrl}>; rel="status"`;
  }
  if (body === undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify({
      error: details.approval ? 'approval_required' : details.unauthenticated ? 'unauthenticated' : 'denied',
      reasons: decision.reasons,
      decision_id: details.decisionId,
      ...(details.approval ? { approval_id: details.approval.id, status_url: details.approval.statusUrl } : {}),
    });
  }
  return {
    status: { code: details.unauthenticated ? RPC_UNAUTHENTICATED : RPC_PERMISSION_DENIED },
    deniedResponse: { status: { code: status }, headers: headerOptions(headers), body },
    ...(decision.dynamic_metadata ? { dynamicMetadata: jsonToStruct(decision.dynamic_metadata) } : {}),
  };
}

/** A list value sets the header to its first entry and appends the rest. */
function headerOptions(headers: HeaderMap | undefined): HeaderValueOption[] {
  if (!headers) return [];
  const options: HeaderValueOption[] = [];
  for (const [key, value] of Object.entries(headers)) {
    (Array.isArray(value) ? value : [value]).forEach((v, i) => options.push({
      header: { key, value: v },
      appendAction: i === 0 ? 'OVERWRITE_IF_EXISTS_OR_ADD' : 'APPEND_IF_EXISTS_OR_ADD',
    }));
  }
  return options;
}

function omit(headers: HeaderMap | undefined, name: string): HeaderMap | undefined {
  if (!headers) return headers;
  return Object.fromEntries(Object.entries(headers).filter(([key]) => key.toLowerCase() !== name));
}
