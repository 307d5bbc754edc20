import { availableParallelism } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { resolveReference, type ReferenceContext } from './references.js';
import { Secret } from './secret.js';

export const DEFAULT_ENTRYPOINTS = {
  http: 'gatehouse/http/decision',
  postgres: 'gatehouse/postgres/decision',
  ssh: 'gatehouse/ssh/decision',
} as const;

const HOST_PORT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

/**
 * listeners.ext_authz.body_threads when unset: one fewer than the cores (the
 * main thread keeps one), at least one, at most four. Each thread may take
 * up to a 2 GiB heap reading a body, so one per core made memory grow with
 * the machine (red-team round 22: 8 threads reading 16 MiB bodies peaked at
 * 5 GiB RSS); more than four is for an operator to choose.
 */
export function defaultBodyThreads(cores = availableParallelism()): number {
  return Math.min(4, Math.max(1, cores - 1));
}

/**
 * The schema of gatehouse.yaml. It is built per load because some fields are
 * resolved while validating: `${env:…}`/`${file:…}` secrets, and paths that
 * are relative to the config file.
 */
export function configSchema(ctx: ReferenceContext) {
  const secret = z.string().min(1).transform((raw, check) => {
    const resolved = resolveReference(raw, ctx);
    if (!resolved.ok && ctx.deferUnresolvedSecrets) return Secret.unresolved(resolved.problem);
    if (!resolved.ok) {
      check.addIssue({ code: 'custom', message: resolved.problem });
      return z.NEVER;
    }
    return new Secret(resolved.value, resolved.origin);
  });

  /** A key: a secret of at least `bytes` bytes once resolved (an HMAC key shorter than that is guessable). */
  const key = (bytes: number) => secret.refine(
    (s) => s.origin === 'unresolved' || Buffer.byteLength(s.reveal()) >= bytes,
    { message: `expected a key of at least ${bytes} bytes, e.g. \${file:keys/…} holding \`openssl rand -hex ${bytes}\`` },
  );

  const path = z.string().min(1).transform((p) => (isAbsolute(p) ? p : resolve(ctx.baseDir, p)));

  const hostPort = z.string().regex(HOST_PORT, { message: 'expected host:port, e.g. 127.0.0.1:8181' });

  const bundleSource = z.string().min(1).transform((source) =>
    /^https?:\/\//.test(source)
      ? ({ kind: 'http', url: source } as const)
      : ({ kind: 'file', path: isAbsolute(source) ? source : resolve(ctx.baseDir, source) } as const),
  );

  const verificationKey = z.strictObject({
    id: z.string().min(1),
    algorithm: z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'HS256', 'HS384', 'HS512']),
    key: secret.describe('PEM public key (or the shared secret for HS*)'),
  });

  const bundle = z
    .strictObject({
      source: bundleSource,
      /** File sources: how often to look for a new bundle. */
      poll_interval_ms: z.int().min(50).max(60_000).default(250),
      /** HTTP sources: OPA's polling settings. */
      polling: z
        .strictObject({
          min_delay_seconds: z.number().positive().default(10),
          max_delay_seconds: z.number().positive().default(20),
        })
        .refine((p) => p.max_delay_seconds >= p.min_delay_seconds, {
          message: 'max_delay_seconds must be at least min_delay_seconds',
        })
        .default({ min_delay_seconds: 10, max_delay_seconds: 20 }),
      token: secret.optional(),
      verification: z
        .strictObject({
          required: z.boolean().default(true),
          scope: z.string().min(1).optional(),
          keys: z.array(verificationKey).min(1, { message: 'list at least one verification key' }),
        })
        .optional(),
    });

  const recording = z
    .strictObject({
      enabled: z.boolean().default(true),
      /**
       * What happens when the recorder cannot keep an entry (its queue is
       * full while the store fails): false denies the target's requests
       * until it can; true lets them go on, their entries dropped and counted.
       */
      fail_open: z.boolean().default(false),
    })
    .default({ enabled: true, fail_open: false });
  /** Escape hatch for a target whose decisions must go on when the audit store is down. */
  const targetAudit = z.strictObject({ fail_open: z.boolean().default(false) }).default({ fail_open: false });
  const approval = z.strictObject({
    /** Used when the policy's approval rule does not name a mode itself. */
    mode: z.enum(['hold', 'ticket']),
    timeout_seconds: z.int().positive().default(300),
  });
  const common = {
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, {
      message: 'expected a lower-case name of letters, digits, ".", "_" or "-", e.g. orders-db',
    }),
    labels: z.record(z.string(), z.string()).default({}),
    recording,
    approval: approval.optional(),
    audit: targetAudit,
  };

  const target = z.discriminatedUnion(
    'kind',
    [
      z.strictObject({
        ...common,
        kind: z.literal('postgres'),
        upstream: z.strictObject({
          address: hostPort,
          database: z.string().min(1),
          tls: z.boolean().default(false),
          /** PEM CA bundle that signs the server's certificate; the system's CAs when absent. The name checked is the address's host. */
          tls_ca_file: path.optional(),
        }),
        credentials: z.strictObject({ username: z.string().min(1), password: secret }),
      }),
      z.strictObject({
        ...common,
        kind: z.literal('ssh'),
        upstream: z.strictObject({ address: hostPort, host_key: z.string().min(1).optional() }),
        credentials: z
          .strictObject({ username: z.string().min(1), private_key: secret.optional(), password: secret.optional() })
          .refine((c) => c.private_key !== undefined || c.password !== undefined, {
            message: 'give private_key or password',
          }),
      }),
      z.strictObject({
        ...common,
        kind: z.literal('http'),
        upstream: z.strictObject({ address: z.url({ protocol: /^https?$/, message: 'expected an http(s) URL' }) }),
        credentials: z.strictObject({ header: z.string().min(1), value: secret }),
      }),
    ],
    { error: 'expected kind to be one of postgres, ssh, http' },
  );

  const jwtAlgorithm = z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']);

  const issuer = z
    .strictObject({
      issuer: z.string().min(1),
      audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
      jwks_uri: z.url({ protocol: /^https?$/, message: 'expected an http(s) URL' }).optional(),
      jwks_file: path.optional(),
      algorithms: z.array(jwtAlgorithm).min(1).default(['RS256', 'ES256']),
      clock_skew_seconds: z.int().min(0).max(300).default(30),
      required_claims: z.array(z.string().min(1)).default([]),
      groups_claim: z.string().min(1).default('groups'),
    })
    .refine((i) => (i.jwks_uri === undefined) !== (i.jwks_file === undefined), {
      message: 'give exactly one of jwks_uri or jwks_file',
    });

  const identity = z
    .strictObject({
      issuers: z.array(issuer).default([]),
      /** Tokens longer than this are refused before any parsing. */
      max_token_bytes: z.int().min(256).max(65_536).default(8192),
      /** A local issuer for development (`gatehouse token`); never enable it in production. */
      dev_issuer: z
        .strictObject({
          enabled: z.boolean().default(false),
          key_file: path,
          issuer: z.string().min(1).default('urn:gatehouse:dev'),
          audience: z.string().min(1).default('gatehouse'),
        })
        .optional(),
    })
    .default({ issuers: [], max_token_bytes: 8192 });

  const audit = z
    .strictObject({
      /** This process's chain; processes sharing a store need distinct streams. Defaults to host name and API port. */
      stream: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/).optional(),
      checkpoint: z
        .strictObject({
          /** Private key (PKCS#8 PEM, EC P-256 or Ed25519) that signs checkpoints; keep it apart from the store. */
          key_file: path,
          algorithm: z.enum(['ES256', 'EdDSA']).default('ES256'),
          interval_seconds: z.int().min(1).max(86_400).default(60),
          /** Also write the newest checkpoint here, e.g. on another volume, to anchor `audit verify`. */
          export_file: path.optional(),
        })
        .optional(),
      /** Group commit: at most this many events per durable write. */
      max_batch: z.int().min(1).max(10_000).default(1000),
    })
    .default({ max_batch: 1000 });

  const approvals = z
    .strictObject({
      /** Base URL put in status links, e.g. https://gatehouse.example.com; defaults to the API address. */
      public_url: z.url({ protocol: /^https?$/ }).optional(),
      /**
       * Seals every vote (HMAC-SHA256, at least 32 bytes; the same on every gateway sharing the
       * store): a request is then spent only on votes a gateway took, never on ones written into
       * the store by other means.
       */
      seal_key: key(32).optional(),
      webhook: z
        .strictObject({
          url: z.url({ protocol: /^https?$/, message: 'expected an http(s) URL' }),
          /** HMAC-SHA256 key for the X-Gatehouse-Signature header. */
          secret: secret,
          format: z.enum(['json', 'slack']).default('json'),
          timeout_ms: z.int().min(100).max(30_000).default(5000),
        })
        .optional(),
      /**
       * Pending requests one requester (sub and issuer) may have open at once; past it a new request is
       * denied until one is decided or expires, so one agent cannot bury the approvers' queue and webhook.
       */
      max_pending_per_requester: z.int().min(1).max(100_000).default(100),
    })
    .default({ max_pending_per_requester: 100 });

  /** Session recordings (engine/recording): how they are written, and who may read them on the API. */
  const recordings = z
    .strictObject({
      /** Members of these groups may read every session on /v1/sessions; others see only their own. */
      viewer_groups: z.array(z.string().min(1)).default([]),
      /** Entries per store write: a full batch is written at once, a partial one after flush_interval_ms. */
      max_batch: z.int().min(1).max(10_000).default(500),
      flush_interval_ms: z.int().min(10).max(60_000).default(250),
      /** Entries held in memory while the store cannot be written; beyond this, new entries are dropped (logged, counted, marked on the session). */
      max_queue: z.int().min(1000).max(10_000_000).default(100_000),
    })
    .default({ viewer_groups: [], max_batch: 500, flush_interval_ms: 250, max_queue: 100_000 });

  return z.strictObject({
    listeners: z
      .strictObject({
        api: z.strictObject({ address: hostPort.default('127.0.0.1:8181') }).default({ address: '127.0.0.1:8181' }),
        /** The Postgres proxy; it listens only when this section is present. */
        postgres: z
          .strictObject({
            address: hostPort.default('127.0.0.1:15432'),
            tls: z
              .strictObject({
                cert_file: path,
                key_file: path,
                /** Refuse clients that do not ask for TLS (the JWT travels as the password). */
                required: z.boolean().default(false),
              })
              .optional(),
            /** Larger client messages close that connection (SQLSTATE 54000). */
            max_message_bytes: z.int().min(1024).max(1024 * 1024 * 1024).default(1024 * 1024),
            /** How long to wait for the database when a client logs in. */
            connect_timeout_ms: z.int().min(100).max(60_000).default(5000),
            /** How long a client has to log in, TLS handshake included (PostgreSQL's authentication_timeout). */
            login_timeout_ms: z.int().min(100).max(600_000).default(60_000),
            /**
             * Connections not yet logged in (no token checked yet), from one source address and in all.
             * More are refused at once with SQLSTATE 53300, as PostgreSQL refuses past max_connections.
             */
            max_logins_per_source: z.int().min(1).max(100_000).default(64),
            max_logins: z.int().min(1).max(1_000_000).default(1024),
            /**
             * Sessions one identity (issuer and subject) may hold at once: each holds a connection to
             * its target's server, whose max_connections every caller shares. Past it a login is
             * refused (FATAL 53300) and audited.
             */
            max_sessions_per_identity: z.int().min(1).max(1_000_000).default(32),
            /**
             * A larger message from the database (a row, a notice) ends the session (SQLSTATE 54000):
             * rows are held whole to be masked, and the detectors read every byte of a masked value.
             */
            max_server_message_bytes: z.int().min(64 * 1024).max(1024 * 1024 * 1024 + 1024 * 1024).default(256 * 1024 * 1024),
            /**
             * Prepared statements a session holds, each kept (SQL, facts, decision) until the client
             * closes it: past either cap a Parse is refused (SQLSTATE 54000) and the session goes on.
             * Named statements (the unnamed one replaces itself), and the bytes of their SQL and names.
             */
            max_prepared_statements: z.int().min(1).max(10_000_000).default(10_000),
            max_prepared_statement_bytes: z.int().min(1024).max(64 * 1024 * 1024 * 1024).default(64 * 1024 * 1024),
            /**
             * Named portals a session holds, each kept from its Bind until Close or the end of its
             * transaction: past it a Bind is refused (SQLSTATE 54000) and the session goes on. A count
             * of its own, so that a refused Bind names a cap about portals. The bytes of their names
             * are held to max_prepared_statement_bytes, counted apart from the statements': a portal
             * holds no SQL of its own (its statement is shared), so a byte figure of its own would
             * tune nothing a client needs.
             */
            max_portals: z.int().min(1).max(10_000_000).default(10_000),
            /**
             * Cursor and prepared-statement names a session made with SQL (DECLARE, PREPARE) whose
             * policy revision it keeps, for the life of the session (the proxy cannot see which were
             * closed). Past it the session goes on; after a policy reload, a masked caller's FETCH,
             * MOVE or EXECUTE of a name it did not keep is refused (it may predate the reload).
             */
            max_sql_names: z.int().min(1).max(10_000_000).default(10_000),
            /**
             * How long a session trusts the database catalog's answers that masking relies on (which
             * functions and views the database defines, what a view reads, what a table inherits), and
             * the mask plans built from them: another connection's DDL is seen at most this long after
             * it commits. 0 asks again for every statement.
             */
            catalog_cache_ms: z.int().min(0).max(3_600_000).default(2000),
          })
          .optional(),
        /**
         * Envoy's ext_authz (envoy.service.auth.v3.Authorization/Check) and
         * ext_proc (envoy.service.ext_proc.v3.ExternalProcessor/Process) on one
         * gRPC server; served only when this section is present.
         */
        ext_authz: z
          .strictObject({
            address: hostPort.default('127.0.0.1:9191'),
            /** The target a Check is for when Envoy's route names none (check_settings.context_extensions.target). */
            default_target: z.string().min(1).optional(),
            /**
             * TLS for Envoy's calls. An allowed Check carries the target's
             * credential back to Envoy, so anywhere but a private loopback give
             * it a certificate and require Envoy's client certificate (mTLS).
             */
            tls: z
              .strictObject({
                cert_file: path,
                key_file: path,
                /** CA bundle that signs Envoy's client certificate; when given, calls without one are refused. */
                client_ca_file: path.optional(),
              })
              .optional(),
            /**
             * Worker threads that read response bodies (decode, mask, scan for
             * the credential), each with a 2 GiB heap cap: memory grows with
             * them. Default: one fewer than the cores, at least 1, at most 4
             * (defaultBodyThreads). Bodies beyond them wait, 16 per thread at
             * most; more are refused (502) at once.
             */
            body_threads: z.int().min(1).max(64).default(() => defaultBodyThreads()),
          })
          .optional(),
        /**
         * The Envoy stand-in (proxies/http): an HTTP/1.1 front that calls the
         * ext_authz and ext_proc services over gRPC as Envoy's filters do. For
         * machines without Envoy (CI, a laptop); production runs Envoy with
         * envoy/envoy.yaml.
         */
        http_standin: z
          .strictObject({
            address: hostPort.default('127.0.0.1:10000'),
            /** Where the ext_authz/ext_proc gRPC services listen (Envoy: the gatehouse_ext_authz cluster). */
            ext_authz_address: hostPort.default('127.0.0.1:9191'),
            /** Envoy's ext_authz grpc_service.timeout: no answer in time is a 403. */
            check_timeout_ms: z.int().min(1).max(3_600_000).default(500),
            /** Envoy's ext_proc message_timeout, per processing message. */
            processing_timeout_ms: z.int().min(1).max(60_000).default(1000),
            /** Envoy's ext_authz with_request_body.max_request_bytes (allow_partial_message: true). */
            max_request_bytes: z.int().min(0).max(64 * 1024 * 1024).default(8192),
            /** Longest path prefix wins; each route's upstream is its target's upstream.address. */
            routes: z
              .array(z.strictObject({
                prefix: z.string().regex(/^\//, { message: 'a route prefix starts with "/"' }),
                target: z.string().min(1),
              }))
              .min(1, { message: 'list at least one route, e.g. {prefix: /, target: crm-api}' }),
          })
          .optional(),
      })
      .default({ api: { address: '127.0.0.1:8181' } }),
    policy: z.strictObject({
      bundle,
      timeout_ms: z.number().positive().max(10_000).default(50),
      entrypoints: z
        .strictObject({
          http: z.string().min(1).default(DEFAULT_ENTRYPOINTS.http),
          postgres: z.string().min(1).default(DEFAULT_ENTRYPOINTS.postgres),
          ssh: z.string().min(1).default(DEFAULT_ENTRYPOINTS.ssh),
        })
        .default(DEFAULT_ENTRYPOINTS),
    }),
    identity,
    audit,
    approvals,
    recordings,
    masking: z
      .strictObject({
        /**
         * Keys the "hash" mask strategy (HMAC-SHA256), at least 16 bytes. Give
         * one to keep hashes stable across restarts and processes (joins on
         * hashed columns); without it each process draws a random key.
         */
        hash_key: key(16).optional(),
        /**
         * Members of these groups may list, on /v1/masking/places, the places where the Postgres proxy
         * has found masked columns, and forget one (audited) that no longer holds a masked column
         * (a column renamed to hold hashes, say): a place is masked until it is forgotten. Empty: no one may.
         */
        admin_groups: z.array(z.string().min(1)).default([]),
      })
      .default({ admin_groups: [] }),
    store: z
      .union([
        z.strictObject({ sqlite: z.strictObject({ path }) }),
        z.strictObject({ postgres: z.strictObject({ url: secret }) }),
      ], { error: 'expected store to be either {sqlite: {path}} or {postgres: {url}}' })
      .default({ sqlite: { path: resolve(ctx.baseDir, 'gatehouse.db') } }),
    targets: z
      .array(target)
      .default([])
      .superRefine((targets, check) => {
        const seen = new Map<string, number>();
        targets.forEach((t, i) => {
          const first = seen.get(t.name);
          if (first !== undefined) {
            check.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate target name "${t.name}" (also targets[${first}])` });
          }
          seen.set(t.name, i);
        });
      }),
  }).superRefine((config, check) => {
    // Listeners that name targets: a typo must fail at load, not at the first request.
    const httpTargets = new Set(config.targets.filter((t) => t.kind === 'http').map((t) => t.name));
    const known = [...httpTargets].join(', ') || 'none is configured';
    const defaultTarget = config.listeners.ext_authz?.default_target;
    if (defaultTarget !== undefined && !httpTargets.has(defaultTarget)) {
      check.addIssue({ code: 'custom', path: ['listeners', 'ext_authz', 'default_target'], message: `"${defaultTarget}" is not an http target (http targets: ${known})` });
    }
    config.listeners.http_standin?.routes.forEach((route, i) => {
      if (!httpTargets.has(route.target)) {
        check.addIssue({ code: 'custom', path: ['listeners', 'http_standin', 'routes', i, 'target'], message: `"${route.target}" is not an http target (http targets: ${known})` });
      }
    });
  });
}

export type GatehouseConfig = z.output<ReturnType<typeof configSchema>>;
export type TargetConfig = GatehouseConfig['targets'][number];
export type PostgresTargetConfig = Extract<TargetConfig, { kind: 'postgres' }>;
export type PostgresListenerConfig = NonNullable<GatehouseConfig['listeners']['postgres']>;
export type HttpTargetConfig = Extract<TargetConfig, { kind: 'http' }>;
export type ExtAuthzListenerConfig = NonNullable<GatehouseConfig['listeners']['ext_authz']>;
export type HttpStandinConfig = NonNullable<GatehouseConfig['listeners']['http_standin']>;
export type BundleSourceConfig = GatehouseConfig['policy']['bundle']['source'];
export type IdentityConfig = GatehouseConfig['identity'];
export type IssuerConfig = IdentityConfig['issuers'][number];
export type AuditConfig = GatehouseConfig['audit'];
export type ApprovalsConfig = GatehouseConfig['approvals'];
export type StoreConfig = GatehouseConfig['store'];
export type RecordingsConfig = GatehouseConfig['recordings'];
