import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import type { ApprovalsConfig } from '../config/schema.js';
import { visibleText } from '../observability/visible-text.js';
import type { ApprovalRecord } from '../store/store.js';

type WebhookConfig = NonNullable<ApprovalsConfig['webhook']>;

const ATTEMPTS = 3;

/**
 * Tells people a request waits for them. The body is signed the way Slack
 * and Stripe sign theirs: HMAC-SHA256 over `<timestamp>.<body>`, so a
 * receiver can refuse forgeries and replays of old deliveries.
 */
export class ApprovalWebhook {
  constructor(
    private readonly config: WebhookConfig,
    private readonly logger: Logger,
  ) {}

  /** Delivers in the background with retries; a failure is logged, never fatal to the request. */
  notify(approval: ApprovalRecord, statusUrl: string): void {
    const body = JSON.stringify(this.config.format === 'slack' ? slackPayload(approval, statusUrl) : jsonPayload(approval, statusUrl));
    void this.deliver(body, approval.id);
  }

  private async deliver(body: string, id: string): Promise<void> {
    for (let attempt = 1; attempt <= ATTEMPTS; attempt += 1) {
      const timestamp = Math.floor(Date.now() / 1000).toString();
      try {
        const response = await fetch(this.config.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'x-gatehouse-timestamp': timestamp,
            'x-gatehouse-signature': `v1=${signWebhook(this.config.secret.reveal(), timestamp, body)}`,
          },
          body,
          signal: AbortSignal.timeout(this.config.timeout_ms),
        });
        if (response.ok) return;
        this.logger.warn({ approval: id, status: response.status, attempt }, 'approval webhook refused the delivery');
      } catch (err) {
        this.logger.warn({ approval: id, attempt, error: (err as Error).message }, 'approval webhook delivery failed');
      }
      await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
    }
    this.logger.error({ approval: id }, `approval webhook gave up after ${ATTEMPTS} attempts`);
  }
}

/** Hex HMAC-SHA256 of `<timestamp>.<body>`; receivers recompute it to check a delivery. */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

function jsonPayload(approval: ApprovalRecord, statusUrl: string): object {
  return {
    type: 'approval.requested',
    approval: {
      id: approval.id,
      status_url: statusUrl,
      requester: approval.requester,
      target: approval.target,
      action: JSON.parse(approval.action) as unknown,
      action_hash: approval.action_hash,
      reasons: approval.reasons,
      groups: approval.groups,
      min: approval.min,
      mode: approval.mode,
      expires_at: approval.expires_at,
    },
  };
}

/** Slack's incoming-webhook shape: a fallback `text` and Block Kit sections. */
function slackPayload(approval: ApprovalRecord, statusUrl: string): object {
  const who = approval.requester.act ? `${approval.requester.sub} (for ${approval.requester.act.sub})` : approval.requester.sub;
  const text = slackText(`Approval needed: ${who} on ${approval.target}`);
  return {
    text,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `*${text}*\n${approval.reasons.map((r) => `• ${slackText(r)}`).join('\n')}` } },
      {
        type: 'section',
        fields: [
          { type: 'mrkdwn', text: `*Approvers*\n${slackText(approval.groups.join(', '))} (${approval.min} needed)` },
          { type: 'mrkdwn', text: `*Expires*\n${approval.expires_at}` },
          { type: 'mrkdwn', text: `*Action*\n\`${approval.action_hash.slice(0, 12)}\`` },
          { type: 'mrkdwn', text: `*Status*\n<${statusUrl}|${approval.id}>` },
        ],
      },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `gatehouse approvals approve ${approval.id}` }] },
    ],
  };
}

/**
 * Text for Slack's mrkdwn: reasons can quote what the agent sent, and "<url|label>" there
 * would be a link an approver clicks. Slack asks for &, < and > escaped; what does not show
 * is written out (visible-text.ts).
 */
function slackText(text: string): string {
  return visibleText(text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;'));
}
