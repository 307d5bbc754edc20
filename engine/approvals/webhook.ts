import { createHmac, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ApprovalsConfig } from '../config/schema.js';
import { visibleText } from '../observability/visible-text.js';
import type { ApprovalRecord } from '../store/store.js';
import { readAction } from './action-integrity.js';
import { describeAction } from './describe-action.js';

type WebhookConfig = NonNullable<ApprovalsConfig['webhook']>;

const ATTEMPTS = 3;
/** Enough of a statement to judge; `gatehouse approvals show` has the rest. Slack caps a block near 3,000. */
const SLACK_ACTION_CHARS = 1500;

/**
 * Tells people a request waits for them. The body is signed the way Slack
 * and Stripe sign theirs: HMAC-SHA256 over `<timestamp>.<body>`, so a
 * receiver can refuse forgeries and old deliveries; the delivery id, the
 * same on every attempt and inside the signed JSON body, lets it drop a
 * delivery replayed within its timestamp window.
 */
export class ApprovalWebhook {
  constructor(
    private readonly config: WebhookConfig,
    private readonly logger: Logger,
  ) {}

  /** Delivers in the background with retries; a failure is logged, never fatal to the request. */
  notify(approval: ApprovalRecord, statusUrl: string): void {
    const delivery = randomUUID();
    const body = JSON.stringify(this.config.format === 'slack' ? slackPayload(approval, statusUrl) : jsonPayload(approval, statusUrl, delivery));
    void this.deliver(body, approval.id, delivery);
  }

  private async deliver(body: string, id: string, delivery: string): Promise<void> {
    for (let attempt = 1; attempt <= ATTEMPTS; attempt += 1) {
      const timestamp = Math.floor(Date.now() / 1000).toString();
      try {
        const response = await fetch(this.config.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'x-gatehouse-delivery': delivery,
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

function jsonPayload(approval: ApprovalRecord, statusUrl: string, delivery: string): object {
  const reading = readAction(approval);
  return {
    type: 'approval.requested',
    delivery_id: delivery,
    approval: {
      id: approval.id,
      status_url: statusUrl,
      requester: approval.requester,
      target: approval.target,
      // As the API shows it (api/views.ts): text that does not hold its hash is not the action.
      action: reading.ok ? reading.stored : null,
      action_hash: approval.action_hash,
      action_mismatch: reading.ok ? null : reading.problem,
      reasons: approval.reasons,
      groups: approval.groups,
      min: approval.min,
      mode: approval.mode,
      expires_at: approval.expires_at,
    },
  };
}

/**
 * Slack's incoming-webhook shape: a fallback `text` and Block Kit sections.
 * What is asked goes in a preformatted rich-text block, which Slack shows
 * as typed: a statement holding ``` or *bold* cannot restyle the message.
 */
function slackPayload(approval: ApprovalRecord, statusUrl: string): object {
  const who = approval.requester.act ? `${approval.requester.sub} (for ${approval.requester.act.sub})` : approval.requester.sub;
  const reading = readAction(approval);
  // A record whose action does not hold its hash says so instead: its text (and maybe its target) is not what would be approved.
  const text = slackText(reading.ok ? `Approval needed: ${who} on ${approval.target}` : `Do not approve: request ${approval.id} by ${who} was changed outside the gateway`);
  const asked = reading.ok ? describeAction(reading.stored.action, SLACK_ACTION_CHARS) : `The action is not shown: ${reading.problem}. Deny or revoke this request; the gateway refuses to approve it.`;
  return {
    text,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `*${text}*\n${approval.reasons.map((r) => `• ${slackText(r)}`).join('\n')}` } },
      {
        type: 'rich_text',
        elements: [{ type: 'rich_text_preformatted', elements: [{ type: 'text', text: visibleText(asked) }] }],
      },
      {
        type: 'section',
        fields: [
          { type: 'mrkdwn', text: `*Approvers*\n${slackText(approval.groups.join(', '))} (${approval.min} needed)` },
          { type: 'mrkdwn', text: `*Expires*\n${approval.expires_at}` },
          { type: 'mrkdwn', text: `*Action*\n\`${approval.action_hash.slice(0, 12)}\`` },
          { type: 'mrkdwn', text: `*Status*\n<${statusUrl}|${approval.id}>` },
        ],
      },
      { type: 'context', elements: [{ type: 'mrkdwn', text: reading.ok ? `gatehouse approvals approve ${approval.id} --action-hash ${approval.action_hash}` : `gatehouse approvals deny ${approval.id} --reason 'changed outside the gateway'` }] },
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
