/**
 * envoy/envoy.yaml, checked without an Envoy binary: decoded strictly against
 * Envoy's own v3 protos (tests/helpers/envoy-bootstrap.ts), then held to the
 * properties Gatehouse relies on. conftest checks some of the same properties
 * (policies/conftest/envoy); this side also knows the protos.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { EXT_AUTHZ_NAMESPACE } from '../../ext-authz/exchange-metadata.js';
import { checkEnvoyBootstrapYaml, checkEnvoyMessage, type DecodeIssue } from '../helpers/envoy-bootstrap.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const source = readFileSync(join(repoRoot, 'envoy/envoy.yaml'), 'utf8');

// The file is loosely typed on purpose: tests navigate it as plain JSON.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
const bootstrap = (): Json => parse(source);

const HCM_PATH = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';
const hcmOf = (doc: Json): Json => doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
const filterIndex = (doc: Json, name: string): number => hcmOf(doc).http_filters.findIndex((f: Json) => f.name === name);
const filterOf = (doc: Json, name: string): Json => hcmOf(doc).http_filters[filterIndex(doc, name)].typed_config;
const filterPath = (name: string): string => `${HCM_PATH}.http_filters[${filterIndex(bootstrap(), name)}].typed_config`;
const routesOf = (doc: Json): Json[] => hcmOf(doc).route_config.virtual_hosts.flatMap((vh: Json) => vh.routes);

const EXT_AUTHZ = 'envoy.filters.http.ext_authz';
const EXT_PROC = 'envoy.filters.http.ext_proc';
const JWT_AUTHN = 'envoy.filters.http.jwt_authn';
const ROUTER = 'envoy.filters.http.router';

/** Envoy's proto3 JSON Duration ("310s", "0.25s") in seconds. */
const seconds = (duration: string): number => {
  const match = /^(\d+(?:\.\d+)?)s$/.exec(duration);
  if (!match?.[1]) throw new Error(`not a duration: ${duration}`);
  return Number(match[1]);
};

/** One issue, at exactly `path`, saying something matching `message`. */
const exactly = (path: string, message: RegExp): DecodeIssue[] => [{ path, message: expect.stringMatching(message) as unknown as string }];

describe('envoy/envoy.yaml decodes as envoy.config.bootstrap.v3.Bootstrap', () => {
  it('has no unknown field, wrong type or unknown @type anywhere', () => {
    expect(checkEnvoyBootstrapYaml(source)).toEqual([]);
  });

  it('points at the line of a mistake in the YAML source', () => {
    const broken = source.replace('failure_mode_allow: false', 'failure_mode_alow: false');
    const line = broken.split('\n').findIndex((l) => l.includes('failure_mode_alow')) + 1;
    expect(line).toBeGreaterThan(0);
    expect(checkEnvoyBootstrapYaml(broken)).toEqual([
      { path: `${filterPath(EXT_AUTHZ)}.failure_mode_alow`, line, message: expect.stringContaining('did you mean failure_mode_allow?') },
    ]);
  });

  it('accepts conftest\'s known-bad file: its faults are Gatehouse properties, not Envoy schema errors', () => {
    // So conftest's refusals of it (make conftest-test) come from its rules,
    // not from a file Envoy itself would reject.
    const bad = readFileSync(join(repoRoot, 'policies/conftest/testdata/bad-envoy.yaml'), 'utf8');
    expect(checkEnvoyBootstrapYaml(bad)).toEqual([]);
  });

  it('reports YAML syntax errors instead of decoding half a file', () => {
    const issues = checkEnvoyBootstrapYaml('admin:\n  address: [unclosed\n');
    expect(issues.length).toBeGreaterThan(0);
    expect(issues[0]!.message).toMatch(/^YAML: /);
  });
});

describe('a mutated copy of envoy/envoy.yaml fails, at the path of the mistake', () => {
  const cases: { name: string; mutate: (doc: Json) => void; issues: () => DecodeIssue[] }[] = [
    {
      name: 'a typo in a field name',
      mutate: (doc) => {
        const authz = filterOf(doc, EXT_AUTHZ);
        authz.failure_mode_alow = authz.failure_mode_allow;
        delete authz.failure_mode_allow;
      },
      issues: () => exactly(`${filterPath(EXT_AUTHZ)}.failure_mode_alow`, /^unknown field "failure_mode_alow" in envoy\.extensions\.filters\.http\.ext_authz\.v3\.ExtAuthz; did you mean failure_mode_allow\?$/),
    },
    {
      name: 'a number where a Duration string belongs',
      mutate: (doc) => { filterOf(doc, EXT_AUTHZ).grpc_service.timeout = 5; },
      issues: () => exactly(`${filterPath(EXT_AUTHZ)}.grpc_service.timeout`, /expected a duration string .* got number 5/),
    },
    {
      name: 'a quoted "false" where a bool belongs',
      mutate: (doc) => { filterOf(doc, EXT_PROC).failure_mode_allow = 'false'; },
      issues: () => exactly(`${filterPath(EXT_PROC)}.failure_mode_allow`, /expected true or false, got string "false"/),
    },
    {
      name: 'a port out of range for uint32',
      mutate: (doc) => { doc.static_resources.listeners[0].address.socket_address.port_value = -1; },
      issues: () => exactly('static_resources.listeners[0].address.socket_address.port_value', /-1 is out of range for uint32/),
    },
    {
      name: 'a word where a wrapped bool (BoolValue) belongs',
      mutate: (doc) => { hcmOf(doc).generate_request_id = 'yes'; },
      issues: () => exactly(`${HCM_PATH}.generate_request_id`, /expected true or false, got string "yes"/),
    },
    {
      name: 'a single string where a repeated field needs a list',
      mutate: (doc) => { filterOf(doc, EXT_PROC).metadata_options.forwarding_namespaces.untyped = EXT_AUTHZ_NAMESPACE; },
      issues: () => exactly(`${filterPath(EXT_PROC)}.metadata_options.forwarding_namespaces.untyped`, /expected a list for repeated field untyped/),
    },
    {
      name: 'an enum value with a typo',
      mutate: (doc) => { filterOf(doc, EXT_PROC).processing_mode.response_body_mode = 'BUFFERD'; },
      issues: () => exactly(`${filterPath(EXT_PROC)}.processing_mode.response_body_mode`, /"BUFFERD" is not a value of envoy\.extensions\.filters\.http\.ext_proc\.v3\.ProcessingMode\.BodySendMode \(NONE, STREAMED, BUFFERED, BUFFERED_PARTIAL\)/),
    },
    {
      name: 'an @type Envoy has no message for',
      mutate: (doc) => { filterOf(doc, ROUTER)['@type'] = 'type.googleapis.com/envoy.extensions.filters.http.routr.v3.Router'; },
      issues: () => exactly(`${filterPath(ROUTER)}.@type`, /unknown type envoy\.extensions\.filters\.http\.routr\.v3\.Router/),
    },
    {
      name: 'a typed_config without @type',
      mutate: (doc) => { delete filterOf(doc, ROUTER)['@type']; },
      issues: () => exactly(`${filterPath(ROUTER)}.@type`, /google\.protobuf\.Any needs "@type"/),
    },
    {
      name: 'a network filter config in http_filters (wrong extension category)',
      mutate: (doc) => {
        hcmOf(doc).http_filters[filterIndex(doc, ROUTER)].typed_config = {
          '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
          stat_prefix: 'nested',
        };
      },
      issues: () => exactly(`${filterPath(ROUTER)}.@type`, /HttpConnectionManager is not an extension of category envoy\.filters\.http/),
    },
    {
      name: "another filter's config under the ext_proc filter",
      mutate: (doc) => { filterOf(doc, EXT_PROC)['@type'] = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz'; },
      // A real HTTP filter type, so only its fields give it away.
      issues: () => ['message_timeout', 'processing_mode', 'metadata_options'].map((key) => ({
        path: `${filterPath(EXT_PROC)}.${key}`,
        message: expect.stringContaining(`unknown field "${key}" in envoy.extensions.filters.http.ext_authz.v3.ExtAuthz`) as unknown as string,
      })),
    },
    {
      name: 'two members of a oneof (grpc_service and http_service)',
      mutate: (doc) => { filterOf(doc, EXT_AUTHZ).http_service = { server_uri: { uri: 'http://127.0.0.1:9191', cluster: 'gatehouse_ext_authz', timeout: '1s' } }; },
      issues: () => exactly(`${filterPath(EXT_AUTHZ)}.http_service`, /grpc_service and http_service are both set, but they are alternatives \(oneof services\)/),
    },
    {
      name: 'two members of a oneof inside a per-route Any inside the connection manager Any',
      mutate: (doc) => { routesOf(doc)[1].typed_per_filter_config[EXT_AUTHZ].disabled = true; },
      issues: () => exactly(
        `${HCM_PATH}.route_config.virtual_hosts[0].routes[1].typed_per_filter_config["${EXT_AUTHZ}"].disabled`,
        /^check_settings and disabled are both set, but they are alternatives \(oneof override\)/,
      ),
    },
  ];

  it.each(cases)('$name', ({ mutate, issues }) => {
    const doc = bootstrap();
    mutate(doc);
    expect(checkEnvoyMessage(doc)).toEqual(issues());
  });
});

describe('proto3 JSON, as Envoy parses it', () => {
  it('accepts lowerCamelCase JSON names and refuses a field set under both names', () => {
    const doc = bootstrap();
    const authz = filterOf(doc, EXT_AUTHZ);
    authz.failureModeAllow = false;
    delete authz.failure_mode_allow;
    authz.withRequestBody = { maxRequestBytes: 8192, allowPartialMessage: true };
    delete authz.with_request_body;
    expect(checkEnvoyMessage(doc)).toEqual([]);

    authz.failure_mode_allow = false;
    expect(checkEnvoyMessage(doc)).toEqual(exactly(`${filterPath(EXT_AUTHZ)}.failure_mode_allow`, /sets failure_mode_allow again \(already set as "failureModeAllow"\)/));
  });

  it('takes 64-bit integers as numbers or decimal strings, range-checked', () => {
    expect(checkEnvoyMessage({ start: 1, end: '9223372036854775807' }, 'envoy.type.v3.Int64Range')).toEqual([]);
    expect(checkEnvoyMessage({ start: '9223372036854775808', end: 1.5 }, 'envoy.type.v3.Int64Range')).toEqual([
      { path: 'start', message: '9223372036854775808 is out of range for int64' },
      { path: 'end', message: 'expected an integer (int64), got number 1.5' },
    ]);
  });

  it('takes bytes as base64', () => {
    expect(checkEnvoyMessage({ inline_bytes: 'aGVsbG8=' }, 'envoy.config.core.v3.DataSource')).toEqual([]);
    expect(checkEnvoyMessage({ inline_bytes: 'not base64!' }, 'envoy.config.core.v3.DataSource')).toEqual([
      { path: 'inline_bytes', message: 'expected base64-encoded bytes, got string "not base64!"' },
    ]);
  });

  it('takes Struct as any JSON object and checks an Any holding a well-known type', () => {
    const metadata = {
      filter_metadata: { 'gatehouse': { anything: [1, 'two', { three: null }] } },
      typed_filter_metadata: { 'x': { '@type': 'type.googleapis.com/google.protobuf.Duration', value: '1s' } },
    };
    expect(checkEnvoyMessage(metadata, 'envoy.config.core.v3.Metadata')).toEqual([]);
    expect(checkEnvoyMessage({ filter_metadata: { gatehouse: [1] }, typed_filter_metadata: { x: { '@type': 'type.googleapis.com/google.protobuf.Duration', value: 1 } } }, 'envoy.config.core.v3.Metadata')).toEqual([
      { path: 'filter_metadata.gatehouse', message: 'expected an object (google.protobuf.Struct), got a list' },
      { path: 'typed_filter_metadata.x.value', message: expect.stringMatching(/expected a duration string/) as unknown as string },
    ]);
  });

  it('takes Empty as {} only', () => {
    const type = 'envoy.extensions.filters.http.jwt_authn.v3.JwtRequirement';
    expect(checkEnvoyMessage({ allow_missing: {} }, type)).toEqual([]);
    expect(checkEnvoyMessage({ allow_missing: { why: 'not' } }, type)).toEqual([
      { path: 'allow_missing', message: 'expected {} (google.protobuf.Empty), got an object' },
    ]);
  });

  it('takes Timestamp as RFC 3339 and enums by name or number', () => {
    const request = 'envoy.service.auth.v3.AttributeContext.Request';
    expect(checkEnvoyMessage({ time: '2024-05-01T12:00:00.5Z' }, request)).toEqual([]);
    expect(checkEnvoyMessage({ time: 1714564800 }, request)).toEqual([
      { path: 'time', message: expect.stringMatching(/expected an RFC 3339 timestamp/) as unknown as string },
    ]);
    const mode = 'envoy.extensions.filters.http.ext_proc.v3.ProcessingMode';
    expect(checkEnvoyMessage({ response_body_mode: 2, request_header_mode: 'SKIP' }, mode)).toEqual([]);
    expect(checkEnvoyMessage({ response_body_mode: 7 }, mode)).toEqual([
      { path: 'response_body_mode', message: expect.stringMatching(/^number 7 is not a value of/) as unknown as string },
    ]);
  });
});

describe('envoy/envoy.yaml has the properties Gatehouse relies on', () => {
  const doc = bootstrap();
  const hcm = hcmOf(doc);
  const names: string[] = hcm.http_filters.map((f: Json) => f.name);
  const authz = filterOf(doc, EXT_AUTHZ);
  const proc = filterOf(doc, EXT_PROC);

  it('runs jwt_authn, ext_authz, ext_proc, router in that order', () => {
    // ext_proc after ext_authz: it only ever sees allowed requests, and Check's
    // metadata exists by the time it runs. The router is last: filters after it never run.
    expect(names).toEqual([JWT_AUTHN, EXT_AUTHZ, EXT_PROC, ROUTER]);
  });

  it('fails closed: both Gatehouse filters refuse when Gatehouse cannot answer', () => {
    expect(authz.failure_mode_allow).toBe(false);
    expect(authz.status_on_error).toEqual({ code: 'Forbidden' });
    expect(proc.failure_mode_allow).toBe(false);
  });

  it('calls Check over gRPC V3 with a deadline and a bounded request body', () => {
    expect(authz.transport_api_version).toBe('V3');
    expect(authz.grpc_service.envoy_grpc.cluster_name).toBe('gatehouse_ext_authz');
    expect(authz.with_request_body).toEqual({ max_request_bytes: 8192, allow_partial_message: true });
    // gRPC header mutations from Check apply unless allowed_headers-style
    // filters or mutation rules are set; the credential header is per target.
    expect(authz).not.toHaveProperty('decoder_header_mutation_rules');
    expect(authz).not.toHaveProperty('http_service');
  });

  it('lets a held request outlast the approval timeout, each outer timer longer than the inner one', () => {
    const approvalTimeout = 300; // engine/config/schema.ts: approval.timeout_seconds default
    const holdRoute = routesOf(doc).find((r) => r.route?.idle_timeout !== undefined);
    expect(holdRoute?.name).toBe('crm-api-writes');
    const ladder = [approvalTimeout, seconds(authz.grpc_service.timeout), seconds(holdRoute.route.idle_timeout), seconds(hcm.request_timeout)];
    expect(ladder).toEqual([...ladder].sort((a, b) => a - b));
    expect(new Set(ladder).size).toBe(ladder.length);
  });

  it('sends ext_proc the response body buffered, its trailers, and Check\'s metadata namespace', () => {
    expect(proc.grpc_service.envoy_grpc.cluster_name).toBe('gatehouse_ext_authz');
    expect(proc.processing_mode).toEqual({
      request_header_mode: 'SEND',
      request_body_mode: 'NONE',
      request_trailer_mode: 'SKIP',
      response_header_mode: 'SEND',
      response_body_mode: 'BUFFERED',
      // Trailers can carry what headers can (the echoed credential, PII): Process screens them.
      response_trailer_mode: 'SEND',
    });
    expect(proc.metadata_options.forwarding_namespaces.untyped).toContain(EXT_AUTHZ_NAMESPACE);
    expect(seconds(proc.message_timeout)).toBeGreaterThan(0);
  });

  it('names a Gatehouse http target on every route that forwards; the others answer themselves', () => {
    const example = parse(readFileSync(join(repoRoot, 'examples/gatehouse.yaml'), 'utf8')) as Json;
    const httpTargets = (example.targets as Json[]).filter((t) => t.kind === 'http').map((t) => t.name);
    const routes = routesOf(doc);
    const forwarding = routes.filter((route) => route.route !== undefined);
    expect(forwarding.length).toBeGreaterThan(0);
    for (const route of forwarding) {
      const target = route.typed_per_filter_config?.[EXT_AUTHZ]?.check_settings?.context_extensions?.target;
      expect(httpTargets, `route ${route.name}`).toContain(target);
      expect(route.route.cluster).toBe('upstream_api');
    }
    for (const route of routes.filter((r) => r.route === undefined)) expect(route.direct_response?.status, `route ${route.name}`).toBeGreaterThanOrEqual(400);
  });

  it('refuses a dot segment with path parameters (..;) before any filter, which normalize_path leaves for a Servlet upstream to resolve', () => {
    const [first] = routesOf(doc);
    expect(first.name).toBe('dot-segment-with-parameters');
    const regex = new RegExp(`^(?:${first.match.safe_regex.regex})$`);
    for (const path of ['/people/..;/admin', '/people/%2e%2e;x=1/admin', '/a/.;/b', '/a/..%3B/b']) expect(regex.test(path), path).toBe(true);
    for (const path of ['/people/42', '/a;b/c', '/a/...;/b', '/a/b..;c']) expect(regex.test(path), path).toBe(false);
  });

  it('gives per-route configs only to filters in the chain, of that filter\'s own package', () => {
    const packageOf = (typeUrl: string): string => typeUrl.replace(/^.*\//, '').replace(/\.[A-Za-z]+$/, '');
    for (const route of routesOf(doc)) {
      for (const [name, config] of Object.entries(route.typed_per_filter_config ?? {}) as [string, Json][]) {
        expect(names, `route ${route.name}`).toContain(name);
        expect(packageOf(config['@type'])).toBe(packageOf(filterOf(doc, name)['@type']));
      }
    }
  });

  it('keeps jwt_authn optional: off unless a route asks, and the token forwarded to Gatehouse', () => {
    const jwt = filterOf(doc, JWT_AUTHN);
    expect(jwt.rules ?? []).toEqual([]);
    for (const provider of Object.values(jwt.providers) as Json[]) expect(provider.forward).toBe(true);
  });

  it('takes no client for internal: Envoy strips the x-envoy-* headers agents send', () => {
    expect(hcm.use_remote_address).toBe(true);
    // Unset, or with no ranges, RFC 1918 addresses count as internal.
    expect(hcm.internal_address_config.cidr_ranges).toEqual([{ address_prefix: '192.0.2.255', prefix_len: 32 }]);
  });

  it('generates x-request-id and logs it, and never the credential-bearing header', () => {
    expect(hcm.generate_request_id).toBe(true);
    expect(hcm.preserve_external_request_id).toBe(false);
    expect(hcm.access_log).toHaveLength(1);
    const format = JSON.stringify(hcm.access_log[0].typed_config.log_format.json_format);
    expect(format).toContain('%REQ(X-REQUEST-ID)%');
    expect(format.toUpperCase()).not.toContain('AUTHORIZATION');
  });

  it('listens where the design brief says and reaches Gatehouse over HTTP/2', () => {
    expect(doc.admin.address.socket_address).toEqual({ address: '127.0.0.1', port_value: 9901 });
    expect(doc.static_resources.listeners[0].address.socket_address.port_value).toBe(10000);
    const cluster = (name: string): Json => doc.static_resources.clusters.find((c: Json) => c.name === name);
    const endpoint = (name: string): Json => cluster(name).load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
    expect(endpoint('gatehouse_ext_authz')).toEqual({ address: '127.0.0.1', port_value: 9191 });
    expect(endpoint('upstream_api')).toEqual({ address: '127.0.0.1', port_value: 18080 });
    const options = cluster('gatehouse_ext_authz').typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
    expect(options.explicit_http_config).toHaveProperty('http2_protocol_options');
  });
});
