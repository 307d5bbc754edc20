import { Command } from 'commander';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { callApi, expectJson, serverOf, tokenOf } from '../api-client.js';
import { printJson, readJsonInput, UsageError } from '../io.js';

interface AuthorizeOptions {
  token?: string;
  target: string;
  input: string;
  server?: string;
  session?: string;
  json?: boolean;
}

interface ApprovalLine {
  id: string;
  status_url: string;
  groups: string[];
  min: number;
  expires_at: string;
}

interface AuthorizeAnswer {
  decision: { action: string; reasons: string[] };
  decision_id: string;
  approval: ApprovalLine | null;
  audit: { stream: string; seq: number } | null;
}

/** Exit status for a deny: distinct from errors (1) and usage mistakes (2), so scripts can tell them apart. */
export const DENIED_EXIT = 3;

export function authorizeCommand(): Command {
  return new Command('authorize')
    .description('Ask a running gateway to authorize one action, as a proxy would: verify the token, decide, hold for approval, audit.')
    .option('-t, --token <jwt>', 'the caller\'s OIDC token (default: $GATEHOUSE_TOKEN)')
    .requiredOption('--target <name>', 'a target from the gateway\'s config, e.g. orders-db')
    .requiredOption('-i, --input <file>', 'the action as JSON (the protocol part of the policy input, e.g. {"postgres": {...}}), or - for standard input')
    .option('-s, --server <url>', `the gateway's API (default: $GATEHOUSE_SERVER or http://127.0.0.1:8181)`)
    .option('--session <id>', 'a session id to record with the decision')
    .option('--json', 'print the gateway\'s whole answer as JSON')
    .addHelpText('after', `
Exit status: 0 allowed, ${DENIED_EXIT} denied (or waiting for approval in ticket mode), 1 error, 2 usage.
A request held for approval waits; the approval id is printed on standard error at once.

Example:
  gatehouse authorize --token "$TOKEN" --target orders-db --input examples/actions/orders-delete.json`)
    .action(async (options: AuthorizeOptions) => {
      const action = await readJsonInput(options.input);
      if (typeof action !== 'object' || action === null || Array.isArray(action)) throw new UsageError('the action must be a JSON object');
      const response = await callApi({
        server: serverOf(options.server),
        method: 'POST',
        path: '/v1/authorize',
        token: tokenOf(options.token),
        body: { target: options.target, action, ...(options.session && { session_id: options.session }) },
        accept: 'application/x-ndjson',
      });
      const answer = response.headers.get('content-type')?.includes('ndjson')
        ? await followHold(response)
        : (await expectJson(response)) as AuthorizeAnswer;
      if (options.json) printJson(answer);
      else printAnswer(answer);
      process.exitCode = answer.decision.action === 'allow' ? 0 : DENIED_EXIT;
    });
}

/** Reads the progress lines: tells the user at once when the request is held, returns the decision. */
async function followHold(response: Response): Promise<AuthorizeAnswer> {
  if (!response.body) throw new Error('the gateway sent no body');
  const lines = createInterface({ input: Readable.fromWeb(response.body as WebReadableStream<Uint8Array>) });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const message = JSON.parse(line) as { status: string; approval?: ApprovalLine; error?: string } & AuthorizeAnswer;
    if (message.status === 'held' && message.approval) {
      const a = message.approval;
      process.stderr.write(
        `held for approval ${a.id}: needs ${a.min} of ${a.groups.join(', ')} before ${a.expires_at}\n`
        + `  approve: gatehouse approvals approve ${a.id}\n  status:  ${a.status_url}\n`,
      );
    } else if (message.status === 'error') {
      throw new Error(message.error ?? 'the gateway failed');
    } else if (message.status === 'decided') {
      return message;
    }
  }
  throw new Error('the gateway closed the connection before deciding');
}

function printAnswer(answer: AuthorizeAnswer): void {
  const where = answer.audit ? `audit ${answer.audit.stream}#${answer.audit.seq}` : 'not audited';
  process.stdout.write(`${answer.decision.action}  (decision ${answer.decision_id}, ${where})\n`);
  for (const reason of answer.decision.reasons) process.stdout.write(`  - ${reason}\n`);
  if (answer.approval) process.stdout.write(`  approval ${answer.approval.id}: ${answer.approval.status_url}\n`);
}
