/**
 * `gatehouse serve` with the ext_authz/ext_proc gRPC listener, the project's
 * policy bundle and an http target (crm-api), plus a grpc-js client that
 * speaks to it with Envoy's own messages. The Envoy stand-in tests build on
 * it (http-stack.ts); the Check contract tests use it as it is.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import { envoyServices } from '../../ext-authz/envoy-protos.js';
import { devToken, freePort, startServe, stopServe, type startCli } from './cli.js';
import { makeBundle, policiesWithApprovalMode } from './gateway-bundle.js';
import { makeTempDir, removeDir } from './opa.js';

export const CRM_API_TOKEN = 'crm-upstream-secret-5d1e';

export interface ExtAuthzStackOptions {
  /** The crm-api target's upstream (the stand-in routes to it; Check alone never calls it). */
  upstreamUrl?: string;
  /** More YAML under `listeners.ext_authz:` (e.g. tls), indented by four spaces. */
  extAuthzYaml?: string;
  /** More YAML under `listeners:` (e.g. the stand-in), indented by two spaces. */
  listenersYaml?: string;
  /** A bundle to run instead of the project's (e.g. an OPA-Envoy policy), and its http entrypoint. */
  bundle?: { file: string; httpEntrypoint: string };
  /** More targets, as YAML list items under `targets:` (indented by two spaces). */
  targetsYaml?: string;
  /** YAML under `masking:` (e.g. `hash_key: ...`). */
  maskingYaml?: string;
  approvalTimeoutSeconds?: number;
  /** The mode of the policy's prod-api-writes approval rule (ticket in policies/); the bundle is built from a copy when given. */
  approvalMode?: 'hold' | 'ticket';
}

export interface ExtAuthzStack {
  dir: string;
  config: string;
  /** http://127.0.0.1:<api port> */
  api: string;
  /** host:port of the gRPC listener. */
  grpcAddress: string;
  serve: ReturnType<typeof startCli>;
  /** A fresh dev-issuer token; `human` for approvers. */
  token(sub: string, groups: string[], options?: { human?: boolean }): string;
  /** Authorization/Check, as Envoy calls it (snake_case fields, proto names). */
  check(request: unknown, deadlineMs?: number): Promise<CheckResponseMessage>;
  /** A raw client for the Authorization service, for calls the helper does not cover. */
  authorizationClient(): Client;
  stop(): Promise<void>;
}

/** The CheckResponse as a proto-loader client decodes it (proto field names). */
export interface CheckResponseMessage {
  status?: { code?: number; message?: string };
  http_response?: 'ok_response' | 'denied_response';
  ok_response?: {
    headers?: Array<{ header: { key: string; value: string }; append_action?: string }>;
    headers_to_remove?: string[];
    response_headers_to_add?: Array<{ header: { key: string; value: string }; append_action?: string }>;
    query_parameters_to_set?: Array<{ key: string; value: string }>;
    query_parameters_to_remove?: string[];
  };
  denied_response?: {
    status?: { code?: string | number };
    headers?: Array<{ header: { key: string; value: string } }>;
    body?: string;
  };
  dynamic_metadata?: { fields?: Record<string, unknown> };
}

export async function startExtAuthzStack(options: ExtAuthzStackOptions = {}): Promise<ExtAuthzStack> {
  const dir = makeTempDir('gatehouse-ext-authz-');
  try {
    const policySrc = options.approvalMode ? policiesWithApprovalMode(dir, 'prod-api-writes', options.approvalMode) : undefined;
    const bundle = options.bundle?.file ?? makeBundle({ out: join(dir, 'bundle.tar.gz'), policySrc });
    const apiPort = await freePort();
    const grpcPort = await freePort();
    const config = join(dir, 'gatehouse.yaml');
    writeFileSync(config, `
listeners:
  api:
    address: 127.0.0.1:${apiPort}
  ext_authz:
    address: 127.0.0.1:${grpcPort}
${options.extAuthzYaml ?? ''}
${options.listenersYaml ?? ''}
policy:
  bundle:
    source: ${bundle}
  timeout_ms: 1000
${options.bundle ? `  entrypoints:\n    http: ${options.bundle.httpEntrypoint}\n` : ''}
identity:
  dev_issuer:
    enabled: true
    key_file: dev-issuer.jwk
store:
  sqlite:
    path: gatehouse.db
${options.maskingYaml ? `masking:\n${options.maskingYaml}\n` : ''}
targets:
  - name: crm-api
    kind: http
    labels: {env: prod}
    upstream: {address: ${options.upstreamUrl ?? 'http://127.0.0.1:9'}}
    credentials:
      header: Authorization
      value: \${env:CRM_API_TOKEN}
    approval: {mode: ${options.approvalMode ?? 'ticket'}, timeout_seconds: ${options.approvalTimeoutSeconds ?? 60}}
${options.targetsYaml ?? ''}
`);
    const api = `http://127.0.0.1:${apiPort}`;
    const serve = await startServe(config, api, { CRM_API_TOKEN: `Bearer ${CRM_API_TOKEN}` });
    const grpcAddress = `127.0.0.1:${grpcPort}`;
    const { grpc } = envoyServices();
    // With TLS on the listener the test brings its own client (authorizationClient is then unusable).
    const client: Client = new grpc.envoy.service.auth.v3.Authorization(grpcAddress, credentials.createInsecure());

    return {
      dir,
      config,
      api,
      grpcAddress,
      serve,
      token: (sub, groups, tokenOptions) => devToken(config, sub, groups, tokenOptions),
      check(request, deadlineMs = 10_000) {
        return new Promise((resolve, reject) => {
          (client as unknown as { Check: (r: unknown, m: Metadata, o: { deadline: number }, cb: (e: ServiceError | null, res: CheckResponseMessage) => void) => void })
            .Check(request, new Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res)));
        });
      },
      authorizationClient: () => client,
      async stop() {
        client.close();
        await stopServe(serve);
        removeDir(dir);
      },
    };
  } catch (err) {
    removeDir(dir);
    throw err;
  }
}

/** A CheckRequest as Envoy's ext_authz filter builds it for an HTTP/1.1 request (proto field names). */
export function envoyCheckRequest(request: {
  method: string;
  path: string;
  token?: string;
  headers?: Record<string, string>;
  body?: string;
  target?: string | null;
}): unknown {
  const headers: Record<string, string> = {
    ':authority': 'crm.internal',
    ':method': request.method,
    ':path': request.path,
    ':scheme': 'http',
    'user-agent': 'curl/8.14.1',
    'x-request-id': '3b1f6c2e-8d0a-4e55-9c1b-2a7d5f0e9b41',
    ...(request.token ? { authorization: `Bearer ${request.token}` } : {}),
    ...(request.body !== undefined ? { 'content-length': String(Buffer.byteLength(request.body)) } : {}),
    ...request.headers,
  };
  return {
    attributes: {
      source: { address: { socket_address: { address: '10.1.2.3', port_value: 51234 } } },
      destination: { address: { socket_address: { address: '127.0.0.1', port_value: 10000 } } },
      request: {
        time: { seconds: String(Math.floor(Date.now() / 1000)), nanos: 123_000_000 },
        http: {
          // Envoy's stream id; the x-request-id travels in the headers.
          id: '7401931852210117843',
          method: request.method,
          headers,
          path: request.path,
          host: 'crm.internal',
          scheme: 'http',
          protocol: 'HTTP/1.1',
          size: String(request.body === undefined ? 0 : Buffer.byteLength(request.body)),
          ...(request.body !== undefined ? { body: request.body } : {}),
        },
      },
      context_extensions: request.target === null ? {} : { target: request.target ?? 'crm-api' },
    },
  };
}

/** The headers of a CheckResponse's header list as one lower-case map. */
export function headerMap(list: Array<{ header: { key: string; value: string } }> | undefined): Record<string, string> {
  return Object.fromEntries((list ?? []).map((h) => [h.header.key.toLowerCase(), h.header.value]));
}
