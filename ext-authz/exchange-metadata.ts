/**
 * What Check hands the ExternalProcessor about one request: Check's answer
 * carries it in `dynamic_metadata`, Envoy files that under the ext_authz
 * filter's namespace, and ext_proc forwards the namespace to Process
 * (`metadata_options.forwarding_namespaces.untyped` in envoy/envoy.yaml).
 * Riding on the request itself, it needs no shared cache, so Check and
 * Process may be answered by different gateway processes.
 *
 * It never leaves Envoy: dynamic metadata is not sent to the client or the
 * upstream. It holds no secret; the credential is injected by Check alone.
 *
 * On the wire it is `gatehouse: {decision_id, exchange}`: the decision id
 * as its own field, for Envoy's access log
 * (`%DYNAMIC_METADATA(envoy.filters.http.ext_authz:gatehouse:decision_id)%`),
 * and the rest as one JSON string. As a tree of google.protobuf.Value
 * messages it was about a tenth of what every Check allocated, for a
 * reader that is Gatehouse's own Process.
 */
import { z } from 'zod';

/** The dynamic-metadata namespace Envoy gives what ext_authz returns. */
export const EXT_AUTHZ_NAMESPACE = 'envoy.filters.http.ext_authz';
/** Gatehouse's key inside it: a policy's own dynamic_metadata keys sit beside it. */
export const EXCHANGE_KEY = 'gatehouse';

const maskRule = z.strictObject({
  field: z.string().min(1),
  detectors: z.array(z.string().min(1)).optional(),
  strategy: z.enum(['redact', 'partial', 'hash', 'null']),
});

export const exchangeMetadataSchema = z.strictObject({
  /** The Check decision's id (the audit event's policy.uid). */
  decision_id: z.string().min(1),
  /** The recording session this exchange belongs to (the audit event's session id). */
  session_id: z.string().min(1),
  target: z.string().min(1),
  /** The verified caller, as the decision's audit event names it (claims left out: the masking event needs only these). */
  identity: z.strictObject({
    sub: z.string(),
    iss: z.string(),
    groups: z.array(z.string()),
    agent: z.boolean(),
    act: z.strictObject({ sub: z.string() }).nullable(),
  }),
  source_ip: z.string().nullable(),
  /** Where the decision's audit event landed. */
  audit: z.strictObject({ stream: z.string(), seq: z.number().int().nonnegative() }).nullable(),
  /** The decision's mask rules for the response body ("field" rules only). */
  mask: z.array(maskRule),
  /** The target's recording.enabled. */
  record: z.boolean(),
  /**
   * The name (never the value) of the header Check injected the target's
   * credential in. ext_proc runs after ext_authz, so the request headers it
   * sees carry the credential: recordings must drop this header.
   */
  credential_header: z.string().min(1),
  /**
   * The approval this request spent, if any. Check sees repeated header
   * lines joined with ","; an upstream may not read them so, and Process,
   * which sees each line, refuses an approved request that repeats one.
   */
  approval_id: z.string().min(1).nullable().optional(),
});

export type ExchangeMetadata = z.infer<typeof exchangeMetadataSchema>;
export type FieldMaskRule = ExchangeMetadata['mask'][number];

/** What Check puts under EXCHANGE_KEY. */
export function exchangeMetadataValue(exchange: ExchangeMetadata): { decision_id: string; exchange: string } {
  return { decision_id: exchange.decision_id, exchange: JSON.stringify(exchange) };
}
