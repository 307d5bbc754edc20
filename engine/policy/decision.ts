import { z } from 'zod';

/**
 * The policy output contract (design brief, "Output"). Anything that does not
 * match is a policy bug, and a policy bug must deny, so the schema is strict:
 * a misspelt key ("reason", "masks") fails validation instead of being ignored.
 */

const maskStrategy = z.enum(['redact', 'partial', 'hash', 'null']);

const maskRule = z
  .strictObject({
    column: z.string().min(1).optional(),
    field: z.string().min(1).optional(),
    detectors: z.array(z.string().min(1)).optional(),
    strategy: maskStrategy,
  })
  .refine((rule) => (rule.column === undefined) !== (rule.field === undefined), {
    message: 'a mask rule names exactly one of "column" or "field"',
  });

const approvalRequirement = z.strictObject({
  groups: z.array(z.string().min(1)).min(1),
  min: z.int().min(1).default(1),
  ttl_seconds: z.int().min(1).default(900),
  // Absent when the rule names no mode: the target's config decides, then hold.
  mode: z.enum(['hold', 'ticket']).optional(),
});

const headerMap = z.record(z.string(), z.union([z.string(), z.array(z.string())]));

export const decisionSchema = z
  .strictObject({
    action: z.enum(['allow', 'deny', 'approve']),
    reasons: z.array(z.string()).default([]),
    mask: z.array(maskRule).default([]),
    approval: approvalRequirement.optional(),
    // Postgres only: run the session's transactions in the server's read-only mode (a caller that may only read).
    read_only: z.boolean().optional(),
    // HTTP only, in the OPA-Envoy plugin's vocabulary.
    headers: headerMap.optional(),
    response_headers_to_add: headerMap.optional(),
    request_headers_to_remove: z.array(z.string()).optional(),
    query_parameters_to_set: z.record(z.string(), z.union([z.string(), z.array(z.string())])).optional(),
    query_parameters_to_remove: z.array(z.string()).optional(),
    http_status: z.int().min(100).max(599).optional(),
    body: z.string().optional(),
    dynamic_metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .refine((d) => d.action !== 'approve' || d.approval !== undefined, {
    message: 'an "approve" decision must say who approves ("approval")',
    path: ['approval'],
  });

export type Decision = z.infer<typeof decisionSchema>;
export type MaskRule = Decision['mask'][number];
export type ApprovalRequirement = NonNullable<Decision['approval']>;
export type Action = Decision['action'];

/** Why an evaluation was turned into a deny without the policy saying so. */
export type FailureKind =
  | 'no_bundle'
  | 'unknown_entrypoint'
  | 'evaluation_error'
  | 'no_decision'
  | 'invalid_output'
  | 'timeout';

/**
 * The OPA-Envoy plugin's result forms, so a policy written for it runs
 * unchanged: a boolean, or an object with a boolean `allowed` beside the
 * plugin's HTTP fields. They become Gatehouse's form (`action`) before the
 * schema check; anything else is passed on as it is. The plugin also takes
 * `headers` as a list of objects; it is merged into one object of lists.
 */
export function fromEnvoyResult(output: unknown, entrypoint: string): unknown {
  if (typeof output === 'boolean') {
    return output ? { action: 'allow' } : { action: 'deny', reasons: [`${entrypoint} is false`] };
  }
  if (typeof output !== 'object' || output === null || Array.isArray(output)) return output;
  const result = output as Record<string, unknown>;
  if ('action' in result || typeof result.allowed !== 'boolean') return output;
  const { allowed, headers, ...http } = result;
  return {
    action: allowed ? 'allow' : 'deny',
    reasons: allowed ? [] : [`${entrypoint} returned allowed: false`],
    ...http,
    ...(headers === undefined ? {} : { headers: mergeHeaderList(headers) }),
  };
}

function mergeHeaderList(headers: unknown): unknown {
  if (!Array.isArray(headers)) return headers;
  const merged: Record<string, unknown[]> = {};
  for (const entry of headers) {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return headers;
    for (const [name, value] of Object.entries(entry as Record<string, unknown>)) {
      (merged[name] ??= []).push(...(Array.isArray(value) ? value : [value]));
    }
  }
  return merged;
}

export function failClosed(reason: string): Decision {
  return { action: 'deny', reasons: [reason], mask: [] };
}

/** Formats zod's issues as `path: message` lines a policy author can act on. */
export function describeInvalidOutput(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length ? issue.path.join('.') : '(decision)'}: ${issue.message}`)
    .join('; ');
}
