/**
 * The gRPC server Envoy calls: Authorization/Check (ext_authz) and
 * ExternalProcessor/Process (ext_proc) on one address, as envoy/envoy.yaml's
 * gatehouse_ext_authz cluster expects.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Authorizer } from '../engine/authorize/authorizer.js';
import type { ExtAuthzListenerConfig, TargetConfig } from '../engine/config/schema.js';
import type { HashKey } from '../engine/masking/strategies.js';
import type { SessionRecorder } from '../engine/recording/recorder.js';
import { createCheckService } from './check/check-service.js';
import { checkServiceDefinition, envoyServices } from './envoy-protos.js';
import { BodyThreads } from './process/body-threads.js';
import { createExternalProcessor } from './process/external-processor.js';

export interface ExtAuthzServerOptions {
  listener: ExtAuthzListenerConfig;
  targets: readonly TargetConfig[];
  authorizer: Authorizer;
  recorder: SessionRecorder;
  logger: Logger;
  statusUrl(approvalId: string): string;
  /** masking.hash_key; without one a random key is drawn per process. */
  hashKey?: HashKey | undefined;
}

export interface ExtAuthzServer {
  /** host:port actually bound (port 0 in the config picks a free one). */
  readonly address: string;
  close(): Promise<void>;
}

/** Buffered bodies reach Process whole; Envoy's own buffer limit is the real bound. */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export async function startExtAuthzServer(options: ExtAuthzServerOptions): Promise<ExtAuthzServer> {
  const logger = options.logger.child({ component: 'ext_authz' });
  const hashKey = options.hashKey ?? randomBytes(32);
  const server = new Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
  server.addService(checkServiceDefinition(), createCheckService({
    targets: options.targets,
    defaultTarget: options.listener.default_target,
    authorizer: options.authorizer,
    logger,
    statusUrl: options.statusUrl,
    hashKey,
  }));
  const bodies = new BodyThreads({ hashKey, threads: options.listener.body_threads, onThreadError: (err) => logger.error({ err }, 'an ext_proc body thread failed') });
  server.addService(envoyServices().externalProcessor, { ...createExternalProcessor({
    recorder: options.recorder,
    authorizer: options.authorizer,
    hashKey,
    logger,
    bodies,
  }) });

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(options.listener.address, serverCredentials(options.listener), (err, bound) => (err ? reject(err) : resolve(bound)));
  }).catch(async (err: unknown) => {
    await bodies.close();
    throw err;
  });
  const host = options.listener.address.slice(0, options.listener.address.lastIndexOf(':'));
  const address = `${host}:${port}`;
  const tls = options.listener.tls;
  logger.info({ address, tls: tls ? (tls.client_ca_file ? 'mutual' : 'server') : 'off', body_threads: bodies.threads, body_queue: bodies.maxQueue }, 'ext_authz and ext_proc are serving');
  if (!tls && !isLoopback(host)) {
    logger.warn({ address }, 'ext_authz listens in plaintext beyond loopback: allowed Checks carry target credentials; configure listeners.ext_authz.tls');
  }

  return {
    address,
    close: async () => {
      await new Promise<void>((resolve) => {
        // Held Checks end when the authorizer closes; give in-flight calls a moment, then cut.
        const force = setTimeout(() => server.forceShutdown(), 2000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      await bodies.close();
    },
  };
}

function serverCredentials(listener: ExtAuthzListenerConfig): ServerCredentials {
  const tls = listener.tls;
  if (!tls) return ServerCredentials.createInsecure();
  const ca = tls.client_ca_file ? readFileSync(tls.client_ca_file) : null;
  return ServerCredentials.createSsl(ca, [{ cert_chain: readFileSync(tls.cert_file), private_key: readFileSync(tls.key_file) }], ca !== null);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '[::1]';
}
