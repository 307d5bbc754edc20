import type { Command } from 'commander';
import { UsageError } from './io.js';

export const DEFAULT_SERVER = 'http://127.0.0.1:8181';

/** Where a running gateway's API is: --server, else $GATEHOUSE_SERVER, else the default address. */
export function serverOf(option: string | undefined): string {
  return option ?? process.env.GATEHOUSE_SERVER ?? DEFAULT_SERVER;
}

/** The caller's token: --token, else $GATEHOUSE_TOKEN. */
export function tokenOf(option: string | undefined): string {
  const token = option ?? process.env.GATEHOUSE_TOKEN;
  if (!token) throw new UsageError('give a token with --token or $GATEHOUSE_TOKEN (for development: gatehouse token --help)');
  return token.trim();
}

export interface ApiCall {
  server: string;
  method: 'GET' | 'POST';
  path: string;
  token?: string;
  body?: unknown;
  accept?: string;
}

/** Sends one API request; a gateway that cannot be reached is a clear one-line error. */
export async function callApi(call: ApiCall): Promise<Response> {
  const url = new URL(call.path, call.server);
  const headers: Record<string, string> = { accept: call.accept ?? 'application/json' };
  if (call.token) headers.authorization = `Bearer ${call.token}`;
  if (call.body !== undefined) headers['content-type'] = 'application/json';
  try {
    return await fetch(url, { method: call.method, headers, body: call.body === undefined ? undefined : JSON.stringify(call.body) });
  } catch (err) {
    throw new UsageError(`cannot reach ${url.origin}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message} (is gatehouse serve running? see --server)`);
  }
}

/** The options of a command that calls the API as the user: where it is, the user's token, and JSON output. */
export interface ApiOptions {
  server?: string;
  token?: string;
  json?: boolean;
}

export function withApiOptions(command: Command): Command {
  return command
    .option('-s, --server <url>', 'the gateway\'s API (default: $GATEHOUSE_SERVER or http://127.0.0.1:8181)')
    .option('-t, --token <jwt>', 'your OIDC token (default: $GATEHOUSE_TOKEN)')
    .option('--json', 'print JSON');
}

/** One API call with the user's token; the answer's JSON, or an ApiError with the gateway's message. */
export async function requestApi(options: ApiOptions, method: ApiCall['method'], path: string, body?: unknown): Promise<unknown> {
  return expectJson(await callApi({ server: serverOf(options.server), method, path, token: tokenOf(options.token), body }));
}

/** The JSON body of a successful answer; an error answer becomes one line with the gateway's own message. */
export async function expectJson(response: Response): Promise<unknown> {
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    const message = (body as { error?: string } | null)?.error ?? JSON.stringify(body);
    throw new ApiError(response.status, `${response.url} answered ${response.status}: ${message}`);
  }
  return body;
}

/** The gateway refused a request; exit 1 (not a usage mistake on this side). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}
