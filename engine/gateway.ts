import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { ApprovalService } from './approvals/service.js';
import { ApprovalWebhook } from './approvals/webhook.js';
import { AuditLog } from './audit/audit-log.js';
import { Checkpointer } from './audit/checkpointer.js';
import { approvalEvent } from './audit/events.js';
import { FileCheckpointKey } from './audit/key-source.js';
import { Authorizer } from './authorize/authorizer.js';
import type { GatehouseConfig } from './config/schema.js';
import { Engine } from './engine.js';
import { devIssuerWarning } from './identity/dev-issuer.js';
import { MaskedColumnPlaceAdmin } from './masking/place-admin.js';
import type { TokenVerifier } from './identity/identity.js';
import { createTokenVerifier } from './identity/verifier.js';
import { SessionRecorder } from './recording/recorder.js';
import { openStore } from './store/open-store.js';
import type { Store } from './store/store.js';

/** Every engine service, wired; what `gatehouse serve` runs and the API serves. */
export interface Gateway {
  engine: Engine;
  verifier: TokenVerifier;
  store: Store;
  audit: AuditLog;
  approvals: ApprovalService;
  authorizer: Authorizer;
  /** Session recordings: proxies open() one per session and append() per statement. */
  recorder: SessionRecorder;
  /** Listing and forgetting (audited) the places where masked Postgres columns were found. */
  maskedColumnPlaces: MaskedColumnPlaceAdmin;
  statusUrl(approvalId: string): string;
  /**
   * Stops in dependency order: decisions in flight, session recordings
   * (open sessions ended, flushed), approvals, the audit log (flushed), a
   * final checkpoint, the store, policy.
   */
  stop(): Promise<void>;
}

/**
 * Starts the engine services for a config. Anything that cannot start (the
 * store, the checkpoint key, a stream another process writes) throws before
 * a single request is decided.
 */
export async function startGateway(config: GatehouseConfig, logger: Logger): Promise<Gateway> {
  const kinds = new Set(config.targets.map((t) => t.kind));
  const engine = new Engine(config.policy, logger, undefined, [...kinds].map((kind) => config.policy.entrypoints[kind]));
  engine.metrics.withProcessMetrics();
  const verifier = createTokenVerifier(config.identity, { logger, metrics: engine.metrics });
  const warning = devIssuerWarning(config.identity);
  if (warning) logger.warn(warning);

  const store = await openStore(config.store, logger);
  const started: Array<() => Promise<unknown>> = [() => store.close()];
  try {
    const audit = new AuditLog({ store, stream: streamOf(config), maxBatch: config.audit.max_batch, logger, registry: engine.metrics.registry });
    await audit.start();
    started.unshift(() => audit.close());

    const checkpoint = config.audit.checkpoint;
    let checkpointer: Checkpointer | null = null;
    if (checkpoint) {
      const key = await FileCheckpointKey.load(checkpoint.key_file, checkpoint.algorithm);
      checkpointer = new Checkpointer({ store, log: audit, key, intervalSeconds: checkpoint.interval_seconds, exportFile: checkpoint.export_file, logger });
      await checkpointer.start();
    } else {
      logger.warn('audit.checkpoint is not configured: the audit chain is not signed, so truncation of its tail cannot be detected');
    }

    if (!config.approvals.seal_key) {
      logger.warn('approvals.seal_key is not set: an approval record rewritten in the store is spent as it stands; only gatehouse audit verify shows it, after the fact');
    }
    const statusUrl = statusUrlOf(config);
    const webhook = config.approvals.webhook ? new ApprovalWebhook(config.approvals.webhook, logger) : null;
    const approvals = new ApprovalService({
      store,
      logger,
      sealKey: config.approvals.seal_key?.reveal(),
      maxPendingPerRequester: config.approvals.max_pending_per_requester,
      recordTransition: async (event) => {
        const { stream, seq } = await audit.append(approvalEvent({ approval: event.approval, transition: event.transition, by: event.by ?? undefined, reason: event.reason }, audit.stream));
        return { stream, seq };
      },
      onRequested: webhook ? (approval) => webhook.notify(approval, statusUrl(approval.id)) : undefined,
    });
    approvals.start();

    const recorder = new SessionRecorder({
      store,
      settings: config.recordings,
      targets: config.targets,
      gateway: audit.stream,
      logger,
      registry: engine.metrics.registry,
    });
    started.unshift(() => recorder.close());

    const maskedColumnPlaces = new MaskedColumnPlaceAdmin({ store, audit, adminGroups: config.masking.admin_groups, logger });

    const authorizer = new Authorizer({ config, verifier, policy: engine, approvals, audit, statusUrl, logger, recordings: recorder });
    await engine.start();
    logger.info({ store: store.kind, audit_stream: audit.stream, checkpoints: checkpoint ? `every ${checkpoint.interval_seconds} s` : 'off' }, 'engine services started');

    return {
      engine, verifier, store, audit, approvals, authorizer, recorder, maskedColumnPlaces, statusUrl,
      async stop() {
        await authorizer.close();
        await recorder.close();
        approvals.stop();
        await audit.close();
        await checkpointer?.stop();
        await store.close();
        await engine.stop();
      },
    };
  } catch (err) {
    for (const undo of started) await undo().catch(() => undefined);
    throw err;
  }
}

/** Processes sharing a store need distinct streams; host and API port tell them apart by default and stay the same across restarts. */
export function streamOf(config: GatehouseConfig): string {
  if (config.audit.stream) return config.audit.stream;
  const port = config.listeners.api.address.slice(config.listeners.api.address.lastIndexOf(':') + 1);
  return `${hostname()}-${port}`.replace(/[^A-Za-z0-9._:-]/g, '-');
}

function statusUrlOf(config: GatehouseConfig): (id: string) => string {
  const base = config.approvals.public_url ?? `http://${config.listeners.api.address}`;
  return (id) => new URL(`/v1/approvals/${encodeURIComponent(id)}`, base).toString();
}
