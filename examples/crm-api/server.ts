/**
 * A small CRM API with PII, the upstream behind Gatehouse in `make demo` and
 * in the HTTP end-to-end tests. It trusts only the credential Gatehouse
 * injects (`Authorization: Bearer <token>`), so a request that reaches it
 * with an agent's own token is refused, and it remembers the headers it saw
 * so tests can prove the agent's token never got this far.
 *
 *   GET  /customers       the list: names, emails, phones, notes with PII in free text
 *   GET  /customers/:id   one customer
 *   POST /customers       adds one (a write: policy holds it for approval)
 *
 * Answers are gzip-encoded when the client accepts gzip, so compressed
 * bodies go through the ExternalProcessor too.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';

export interface Customer {
  id: number;
  name: string;
  email: string;
  phone: string;
  notes: string;
}

export const SEED_CUSTOMERS: readonly Customer[] = [
  { id: 1, name: 'Ada Lovelace', email: 'ada@example.com', phone: '+1 415 555 0101', notes: 'prefers email; billing contact ada.billing@example.com' },
  { id: 2, name: 'Alan Turing', email: 'alan@example.org', phone: '+44 20 7946 0958', notes: 'card 4111 1111 1111 1111 on file' },
  { id: 3, name: 'Grace Hopper', email: 'grace@example.net', phone: '+1 212 555 0199', notes: 'renewal due in March' },
];

export interface SeenRequest {
  method: string;
  path: string;
  /** Lower-case names, as received. */
  headers: Record<string, string | string[] | undefined>;
}

export interface CrmApiOptions {
  /** The bearer token callers must present: only Gatehouse holds it. */
  token: string;
  port?: number;
  host?: string;
}

export interface CrmApi {
  url: string;
  /** Every request received, oldest first. */
  requests(): readonly SeenRequest[];
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 64 * 1024;

export async function startCrmApi(options: CrmApiOptions): Promise<CrmApi> {
  const customers = SEED_CUSTOMERS.map((c) => ({ ...c }));
  const seen: SeenRequest[] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', path: req.url ?? '', headers: { ...req.headers } });
    void handle(req, res, options.token, customers).catch(() => {
      if (!res.headersSent) send(req, res, 500, { error: 'internal error' });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address}:${port}`,
    requests: () => seen,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, token: string, customers: Customer[]): Promise<void> {
  if (req.headers.authorization !== `Bearer ${token}`) {
    res.setHeader('www-authenticate', 'Bearer realm="crm-api"');
    return send(req, res, 401, { error: 'unauthorized' });
  }
  const { pathname } = new URL(req.url ?? '/', 'http://crm-api');
  const one = /^\/customers\/(\d+)$/.exec(pathname);
  if (pathname === '/customers' && (req.method === 'GET' || req.method === 'HEAD')) return send(req, res, 200, { customers });
  if (one && (req.method === 'GET' || req.method === 'HEAD')) {
    const customer = customers.find((c) => c.id === Number(one[1]));
    return customer ? send(req, res, 200, customer) : send(req, res, 404, { error: 'no such customer' });
  }
  if (pathname === '/customers' && req.method === 'POST') {
    const input = await readJson(req);
    if (!input || typeof input.name !== 'string' || typeof input.email !== 'string') {
      return send(req, res, 400, { error: 'expected a JSON object with name and email' });
    }
    const customer: Customer = {
      id: Math.max(0, ...customers.map((c) => c.id)) + 1,
      name: input.name,
      email: input.email,
      phone: typeof input.phone === 'string' ? input.phone : '',
      notes: typeof input.notes === 'string' ? input.notes : '',
    };
    customers.push(customer);
    return send(req, res, 201, customer);
  }
  return send(req, res, 404, { error: 'not found' });
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown> | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return null;
    chunks.push(chunk);
  }
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function send(req: IncomingMessage, res: ServerResponse, status: number, value: unknown): void {
  let body = Buffer.from(JSON.stringify(value));
  res.setHeader('content-type', 'application/json');
  if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
    body = gzipSync(body);
    res.setHeader('content-encoding', 'gzip');
  }
  res.setHeader('content-length', body.length);
  res.writeHead(status);
  res.end(req.method === 'HEAD' ? undefined : body);
}
