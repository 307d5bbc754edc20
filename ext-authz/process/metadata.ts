/**
 * The Check decision's metadata, as ext_proc forwards it in every
 * ProcessingRequest (exchange-metadata.ts has the contract).
 */
import { EXCHANGE_KEY, EXT_AUTHZ_NAMESPACE, exchangeMetadataSchema, type ExchangeMetadata } from '../exchange-metadata.js';
import { structToJson } from '../struct.js';

export type MetadataReading =
  | { metadata: ExchangeMetadata; problem?: never }
  /** `status`: 403 when there is none (the request did not pass Check), 500 when it is malformed (a gateway bug). */
  | { metadata?: never; status: 403 | 500; problem: string };

interface MetadataContext {
  filter_metadata?: Record<string, unknown>;
}

/** Reads and validates Gatehouse's metadata; says what is wrong without quoting any of it. */
export function readExchangeMetadata(context: MetadataContext | null | undefined): MetadataReading {
  const namespace = context?.filter_metadata?.[EXT_AUTHZ_NAMESPACE];
  const value = namespace === undefined ? undefined : structToJson(namespace)[EXCHANGE_KEY];
  if (value === undefined || value === null) {
    return { status: 403, problem: `no "${EXCHANGE_KEY}" metadata from ext_authz: the request was not allowed by Gatehouse's Check` };
  }
  const exchange = (value as { exchange?: unknown }).exchange;
  let decoded: unknown;
  try {
    decoded = typeof exchange === 'string' ? JSON.parse(exchange) : undefined;
  } catch {
    decoded = undefined;
  }
  if (decoded === undefined) return { status: 500, problem: `the "${EXCHANGE_KEY}" metadata from ext_authz has no JSON "exchange" field` };
  const parsed = exchangeMetadataSchema.safeParse(decoded);
  if (!parsed.success) {
    const where = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.code}`).join('; ');
    return { status: 500, problem: `the "${EXCHANGE_KEY}" metadata from ext_authz is malformed (${where})` };
  }
  return { metadata: parsed.data };
}
