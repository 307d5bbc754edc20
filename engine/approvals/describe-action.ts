import { requestFacts } from '../authorize/request-facts.js';
import type { TargetConfig } from '../config/schema.js';

/**
 * What an approval request asks, in a few lines an approver can judge
 * without opening the record: the statement and its bound values, the
 * HTTP method and path, or the SSH command. The approval binds the whole
 * action by hash; this is only its reading, cut at `maxChars`.
 */
export function describeAction(action: unknown, maxChars: number): string {
  const kind = kindOf(action);
  if (!kind) return '(an action of unknown shape: see gatehouse approvals show)';
  const { request } = requestFacts(kind, action as Record<string, unknown>);
  let text: string;
  switch (request.protocol) {
    case 'postgres':
      text = [request.text, ...parameterLines((action as { postgres?: { parameters?: unknown } | null }).postgres?.parameters)].join('\n');
      break;
    case 'http':
      text = `${request.method} ${request.host ?? ''}${request.path}`;
      break;
    case 'ssh':
      text = request.command ? `${request.request}: ${request.command}` : request.request;
      break;
  }
  return text.length > maxChars ? `${text.slice(0, maxChars)}… (${text.length - maxChars} more characters: gatehouse approvals show)` : text;
}

/** The front ends' action shapes (action-input.ts): each protocol under its own key. */
function kindOf(action: unknown): TargetConfig['kind'] | null {
  if (typeof action !== 'object' || action === null) return null;
  if ('postgres' in action) return 'postgres';
  if ('ssh' in action) return 'ssh';
  if ('attributes' in action) return 'http';
  return null;
}

/** `$1 = 'text'`, as bound-values.ts shows them: text, hex, or a digest for large values. */
function parameterLines(parameters: unknown): string[] {
  if (!Array.isArray(parameters)) return [];
  return parameters.map((value: unknown, i) => {
    const p = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
    const shown = p.sha256 !== undefined ? `(${String(p.bytes)} bytes, sha256 ${String(p.sha256)})`
      : p.hex !== undefined ? `'\\x${String(p.hex)}'`
        : p.value === null ? 'NULL' : `'${String(p.value).replace(/'/g, "''")}'`;
    return `$${i + 1} = ${shown}`;
  });
}
