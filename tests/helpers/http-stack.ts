/**
 * The HTTP path end to end, for curl tests: `gatehouse serve` with the
 * ext_authz/ext_proc gRPC listener (ext-authz-stack.ts starts it), the Envoy
 * stand-in in this process calling it over gRPC, and the example CRM API
 * (examples/crm-api) as the crm-api target's upstream. Only the gateway
 * holds the CRM API's token; agents send their dev-issuer JWT. Requests go
 * through the real `curl`.
 *
 * The stand-in runs here rather than inside serve so that a test can start a
 * second one in front of a gRPC address nobody serves (Gatehouse down) and
 * read the stand-in's access log.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { loadConfig } from '../../engine/config/load.js';
import type { HttpStandinConfig, TargetConfig } from '../../engine/config/schema.js';
import { startCrmApi, type CrmApi } from '../../examples/crm-api/server.js';
import { startHttpStandin, type HttpStandin } from '../../proxies/http/server.js';
import { CRM_API_TOKEN, startExtAuthzStack, type ExtAuthzStack } from './ext-authz-stack.js';

const run = promisify(execFile);

/** masking.hash_key, fixed so that a hashed field is the same in every response. */
export const HASH_KEY = 'http-stack-hash-key-5f0c1d2e';

export interface CurlResult {
  status: number;
  /** Lower-case names; repeated headers in order. */
  headers: Record<string, string[]>;
  /** The body as received (curl decodes it only with --compressed). */
  body: string;
  /** curl's own exit code: 0 unless the transfer itself failed. */
  exitCode: number;
}

export interface StandinUnderTest {
  /** http://host:port */
  url: string;
  /** What it logged (JSON objects): its start-up warning and one access line per request. */
  logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

export interface HttpStack extends ExtAuthzStack {
  /** The stand-in in front of the stack's gRPC services. */
  standin: StandinUnderTest;
  crm: CrmApi;
  targets: readonly TargetConfig[];
  /** Another stand-in, calling Check and Process at `extAuthzAddress` (e.g. where nothing listens). */
  startStandin(extAuthzAddress: string): Promise<StandinUnderTest>;
  /** Runs `curl` at `url`; `args` go before it. Async: the CRM API and the stand-in answer from this process. */
  curl(url: string, args?: readonly string[]): Promise<CurlResult>;
}

export async function startHttpStack(): Promise<HttpStack> {
  const crm = await startCrmApi({ token: CRM_API_TOKEN });
  let stack: ExtAuthzStack | null = null;
  try {
    stack = await startExtAuthzStack({ upstreamUrl: crm.url, maskingYaml: `  hash_key: ${HASH_KEY}` });
    const dir = stack.dir;
    // The stack's own config, parsed as serve parsed it; the stand-in reads only the targets' upstreams.
    const { targets } = loadConfig(stack.config, { ...process.env, CRM_API_TOKEN: 'unused-by-the-stand-in' });
    const startStandin = (extAuthzAddress: string) => startStandinAt(extAuthzAddress, targets);
    const standin = await startStandin(stack.grpcAddress);
    const base = stack;
    return {
      ...base,
      standin,
      crm,
      targets,
      startStandin,
      curl: (url, args = []) => curl(dir, url, args),
      async stop() {
        await standin.close();
        await base.stop();
        await crm.close();
      },
    };
  } catch (err) {
    await stack?.stop();
    await crm.close();
    throw err;
  }
}

/** A stand-in calling Check and Process at `extAuthzAddress`, routing everything to the crm-api target of `targets`. */
export async function startStandinAt(extAuthzAddress: string, targets: readonly TargetConfig[]): Promise<StandinUnderTest> {
  const config: HttpStandinConfig = {
    address: '127.0.0.1:0',
    ext_authz_address: extAuthzAddress,
    // Generous: on a busy test machine a slow answer would turn into a 403 or a 504.
    check_timeout_ms: 10_000,
    processing_timeout_ms: 10_000,
    max_request_bytes: 8192,
    routes: [{ prefix: '/', target: 'crm-api' }],
  };
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const standin: HttpStandin = await startHttpStandin({ config, targets, logger });
  return { url: `http://${standin.address}`, logs, close: () => standin.close() };
}

let curlRuns = 0;

/** The real curl binary: -D for the headers, -o for the body, -w for the status. */
export async function curl(dir: string, url: string, args: readonly string[] = []): Promise<CurlResult> {
  const n = ++curlRuns;
  const headerFile = join(dir, `curl-${n}.headers`);
  const bodyFile = join(dir, `curl-${n}.body`);
  const argv = ['-sS', '--max-time', '60', '-D', headerFile, '-o', bodyFile, '-w', '%{http_code}', ...args, url];
  let stdout = '';
  let exitCode = 0;
  try {
    ({ stdout } = await run('curl', argv, { encoding: 'utf8' }));
  } catch (err) {
    const failed = err as { code?: unknown; stdout?: string };
    if (typeof failed.code !== 'number') throw err;
    exitCode = failed.code;
    stdout = failed.stdout ?? '';
  }
  const headers: Record<string, string[]> = {};
  // With 100 Continue there are two header blocks; the last one is the answer.
  const block = readOrEmpty(headerFile, 'latin1').trim().split(/\r\n\r\n/).pop() ?? '';
  for (const line of block.split('\r\n').slice(1)) {
    const cut = line.indexOf(':');
    if (cut > 0) (headers[line.slice(0, cut).trim().toLowerCase()] ??= []).push(line.slice(cut + 1).trim());
  }
  return { status: Number(stdout.trim() || 0), headers, body: readOrEmpty(bodyFile, 'utf8'), exitCode };
}

function readOrEmpty(file: string, encoding: BufferEncoding): string {
  try {
    return readFileSync(file, encoding);
  } catch {
    return '';
  }
}
