/**
 * One JSON line per request, like Envoy's access log: who asked for what and
 * what came of it. Never a header value other than the request id, never a
 * query string (it may carry tokens or PII), never a body.
 */
import type { Logger } from 'pino';

export interface AccessLogEntry {
  request_id: string;
  method: string;
  /** The path without its query. */
  path: string;
  target: string | null;
  status: number;
  /** Envoy's %RESPONSE_CODE_DETAILS%. */
  details: string;
  bytes_received: number;
  bytes_sent: number;
  duration_ms: number;
  check_ms: number | null;
  upstream_ms: number | null;
}

export function pathWithoutQuery(path: string): string {
  const cut = path.search(/[?#]/);
  return cut < 0 ? path : path.slice(0, cut);
}

export function logAccess(logger: Logger, entry: AccessLogEntry): void {
  logger.info({ access: entry }, 'http request');
}
