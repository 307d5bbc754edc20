import type { RequestFacts } from '../audit/events.js';
import type { TargetConfig } from '../config/schema.js';
import { withoutUrlCredentials } from '../masking/url-credentials.js';

/**
 * What the audit event says was asked, read from a checked action. Only
 * fields the front ends fill are read; anything missing is recorded as
 * such rather than guessed.
 */
export function requestFacts(kind: TargetConfig['kind'], action: Record<string, unknown>): { request: RequestFacts; summary: string } {
  switch (kind) {
    case 'postgres': {
      const pg = record(action.postgres);
      const text = str(pg.text) ?? '';
      const statements = Array.isArray(pg.statements) ? pg.statements.map((s) => str(record(s).kind) ?? 'unknown') : [];
      return {
        request: { protocol: 'postgres', database: str(pg.database) ?? '', role: str(pg.role) ?? '', text, statement_kinds: statements },
        summary: text.length > 200 ? `${text.slice(0, 200)}…` : text,
      };
    }
    case 'ssh': {
      const ssh = record(action.ssh);
      const request = str(ssh.request) ?? 'unknown';
      const command = str(ssh.command);
      return {
        request: { protocol: 'ssh', user: str(ssh.user) ?? '', request, command },
        summary: command ? `${request}: ${command}` : request,
      };
    }
    case 'http': {
      const http = record(record(record(action.attributes).request).http);
      const method = str(http.method) ?? 'UNKNOWN';
      const path = withoutUrlCredentials(str(http.path) ?? '');
      return {
        request: { protocol: 'http', method, path, host: str(http.host), request_id: str(record(http.headers)['x-request-id']) },
        summary: `${method} ${path}`,
      };
    }
  }
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function str(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}
