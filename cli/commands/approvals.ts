import { Command } from 'commander';
import { requestApi, withApiOptions, type ApiOptions } from '../api-client.js';
import { printJson } from '../io.js';
import { visibleText } from '../../engine/observability/visible-text.js';

interface ApprovalView {
  id: string;
  status: string;
  target: string;
  requester: { sub: string; act: { sub: string } | null };
  reasons: string[];
  groups: string[];
  min: number;
  approvals: number;
  expires_at: string;
  resolution: string | null;
  action: unknown;
  action_hash: string;
  /** Set when the stored action does not hold its hash; `action` is null then (api/views.ts). */
  action_mismatch: string | null;
}

export function approvalsCommand(): Command {
  const approvals = new Command('approvals')
    .description('List and decide approval requests on a running gateway. Authenticates with your OIDC token.');

  withApiOptions(approvals.command('list').description('Requests you may see (default: pending).'))
    .option('--status <status>', 'pending, approved, denied, expired, revoked, consumed or all', 'pending')
    .action(async (options: ApiOptions & { status: string }) => {
      const body = (await requestApi(options, 'GET', `/v1/approvals?status=${encodeURIComponent(options.status)}`)) as { approvals: ApprovalView[] };
      if (options.json) return printJson(body);
      if (body.approvals.length === 0) return void process.stdout.write(`no ${options.status === 'all' ? '' : `${options.status} `}approval requests\n`);
      for (const a of body.approvals) {
        const warning = a.action_mismatch ? `  WARNING: ${a.action_mismatch}` : '';
        process.stdout.write(visibleText(`${a.id}  ${a.status.padEnd(8)}  ${a.target.padEnd(16)}  ${requester(a)}  ${a.approvals}/${a.min}  expires ${a.expires_at}${warning}\n`));
      }
    });

  withApiOptions(approvals.command('show').description('One request in full.').argument('<id>'))
    .action(async (id: string, options: ApiOptions) => {
      const a = (await requestApi(options, 'GET', `/v1/approvals/${encodeURIComponent(id)}`)) as ApprovalView;
      if (options.json) return printJson(a);
      printApproval(a);
      // The action as the approver must read it: JSON leaves bidi overrides and zero-width characters as they are.
      // Text that does not hold its hash is not what an approval would cover, so none is printed as the action.
      process.stdout.write(visibleText(a.action_mismatch
        ? `action (sha256 ${a.action_hash}): NOT SHOWN\nWARNING: ${a.action_mismatch}. Do not approve this request; deny or revoke it.\n`
        : `action (sha256 ${a.action_hash}):\n${JSON.stringify(a.action, null, 2)}\n`
          + (a.status === 'pending' ? `approve what you read: gatehouse approvals approve ${a.id} --action-hash ${a.action_hash}\n` : '')));
    });

  withApiOptions(approvals.command('approve').description('Approve a request (you must be in one of its approver groups, and not its requester).').argument('<id>'))
    .option('--comment <text>', 'why, for the record')
    .option('--action-hash <sha256>', 'the action hash you read (approvals show, the webhook): refused if the request no longer holds it')
    .action(async (id: string, options: ApiOptions & { comment?: string; actionHash?: string }) => {
      const body = { ...(options.comment ? { comment: options.comment } : {}), ...(options.actionHash ? { action_hash: options.actionHash } : {}) };
      printResult(options, await requestApi(options, 'POST', `/v1/approvals/${encodeURIComponent(id)}/approve`, body));
    });

  withApiOptions(approvals.command('deny').description('Deny a request, with a reason the requester will see.').argument('<id>'))
    .requiredOption('--reason <text>', 'why')
    .action(async (id: string, options: ApiOptions & { reason: string }) => {
      printResult(options, await requestApi(options, 'POST', `/v1/approvals/${encodeURIComponent(id)}/deny`, { reason: options.reason }));
    });

  withApiOptions(approvals.command('revoke').description('Withdraw a pending or approved, not yet used, request.').argument('<id>'))
    .option('--reason <text>', 'why')
    .action(async (id: string, options: ApiOptions & { reason?: string }) => {
      printResult(options, await requestApi(options, 'POST', `/v1/approvals/${encodeURIComponent(id)}/revoke`, options.reason ? { reason: options.reason } : {}));
    });

  return approvals;
}

function requester(a: ApprovalView): string {
  return a.requester.act ? `${a.requester.sub} for ${a.requester.act.sub}` : a.requester.sub;
}

function printApproval(a: ApprovalView): void {
  const lines = [
    `${a.id}: ${a.status}${a.resolution ? ` (${a.resolution})` : ''}`,
    `  target:    ${a.target}`,
    `  requester: ${requester(a)}`,
    `  approvers: ${a.groups.join(', ')} (${a.approvals} of ${a.min})`,
    `  expires:   ${a.expires_at}`,
    ...a.reasons.map((reason) => `  - ${reason}`),
  ];
  process.stdout.write(visibleText(`${lines.join('\n')}\n`));
}

function printResult(options: ApiOptions, result: unknown): void {
  if (options.json) printJson(result);
  else printApproval(result as ApprovalView);
}
