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
 * The schema of gatehouse.yaml. It is built per load because some fields are
 * resolved while validating: `${env:…}`/`${file:…}` secrets, and paths that
 * are relative to the config file.
 */
export function configSchema(ctx: ReferenceContext) {
  const secret = z.string().min(1).transform((raw, check) => {
    const resolved = resolveReference(raw, ctx);
    if (!resolved.ok) {
      check.addIssue({ code: 'custom', message: resolved.problem });
      return z.NEVER;
    }
    return new Secret(resolved.value, resolved.origin);
  });

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

  const recording = z.strictObject({ enabled: z.boolean() }).default({ enabled: true });
  const approval = z.strictObject({
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
  };

  const target = z.discriminatedUnion(
    'kind',
    [
      z.strictObject({
        ...common,
        kind: z.literal('postgres'),
        upstream: z.strictObject({ address: hostPort, database: z.string().min(1), tls: z.boolean().default(false) }),
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

  return z.strictObject({
    listeners: z
      .strictObject({
        api: z.strictObject({ address: hostPort.default('127.0.0.1:8181') }).default({ address: '127.0.0.1:8181' }),
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
    store: z
      .union([
        z.strictObject({ sqlite: z.strictObject({ path }) }),
        z.strictObject({ postgres: z.strictObject({ url: secret }) }),
      ], { error: 'expected store to be either {sqlite: {path}} or {postgres: {url}}' })
      .optional(),
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
  });
}

export type GatehouseConfig = z.output<ReturnType<typeof configSchema>>;
export type TargetConfig = GatehouseConfig['targets'][number];
export type BundleSourceConfig = GatehouseConfig['policy']['bundle']['source'];
