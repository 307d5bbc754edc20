/**
 * One ExternalProcessor stream per HTTP request, as Envoy's ext_proc filter
 * opens it: each message sent waits for its answer under message_timeout.
 * With failure_mode_allow: false a failure ends the request with a local
 * reply: a gRPC error is a 500, a message timeout a 504 (ext_proc.cc,
 * onGrpcError / onMessageTimeout), with Envoy's response code details.
 */
import { credentials, type Client, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { envoyServices } from '../../ext-authz/envoy-protos.js';
import type { ProcessingResponse } from './envoy-types.js';

const DEFERRED_CLOSE_TIMEOUT_MS = 5000;

export class ProcessingFailure extends Error {
  override readonly name = 'ProcessingFailure';
  constructor(readonly status: 500 | 504, readonly details: string) {
    super(details);
  }
}

type ProcessorClient = Client & { Process(): ClientDuplexStream<unknown, ProcessingResponse> };

export class ExtProcClient {
  private readonly client: ProcessorClient;

  constructor(address: string, private readonly timeoutMs: number) {
    const ExternalProcessor = envoyServices().grpc.envoy.service.ext_proc.v3.ExternalProcessor;
    this.client = new ExternalProcessor(address, credentials.createInsecure()) as ProcessorClient;
  }

  open(): ProcessingStream {
    return new ProcessingStream(this.client.Process(), this.timeoutMs);
  }

  close(): void {
    this.client.close();
  }
}

export class ProcessingStream {
  private waiting: { resolve(r: ProcessingResponse): void; reject(e: ProcessingFailure): void; timer: NodeJS.Timeout } | null = null;
  private failure: ProcessingFailure | null = null;
  private closed = false;

  constructor(private readonly call: ClientDuplexStream<unknown, ProcessingResponse>, private readonly timeoutMs: number) {
    call.on('data', (response: ProcessingResponse) => {
      const waiting = this.take();
      // An answer nobody asked for: Envoy counts it as spurious and fails the stream.
      if (!waiting) this.fail(new ProcessingFailure(500, 'ext_proc_error_spurious_message'));
      else waiting.resolve(response);
    });
    call.on('error', (err: ServiceError) => {
      this.fail(new ProcessingFailure(500, `ext_proc_error_gRPC_error_${err.code}{${err.details}}`));
    });
    call.on('end', () => {
      // Envoy would go on unprocessed when the server closes the stream
      // cleanly mid-request; the stand-in fails closed instead, so a
      // processor that gives up cannot let an unmasked body through.
      this.fail(new ProcessingFailure(500, 'ext_proc_error_stream_closed'));
    });
  }

  /** Sends one ProcessingRequest and waits for its answer. */
  send(request: Record<string, unknown>): Promise<ProcessingResponse> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.waiting) return Promise.reject(new Error('ext_proc: one message at a time'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new ProcessingFailure(504, 'ext_proc_error_per-message_timeout_exceeded'));
      }, this.timeoutMs);
      this.waiting = { resolve, reject, timer };
      this.call.write(request);
    });
  }

  /** Half-closes when done; cancels when the request ended any other way. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.failure) {
      this.call.cancel();
      return;
    }
    this.failure = new ProcessingFailure(500, 'ext_proc_error_stream_closed');
    this.call.end();
    // Envoy's deferred_close_timeout (5 s): a server that never finishes its side is cut off.
    const cutoff = setTimeout(() => this.call.cancel(), DEFERRED_CLOSE_TIMEOUT_MS).unref();
    this.call.once('status', () => clearTimeout(cutoff));
  }

  private take(): ProcessingStream['waiting'] {
    const waiting = this.waiting;
    this.waiting = null;
    if (waiting) clearTimeout(waiting.timer);
    return waiting;
  }

  private fail(failure: ProcessingFailure): void {
    if (this.failure) return;
    this.failure = failure;
    this.take()?.reject(failure);
    if (!this.closed) {
      this.closed = true;
      this.call.cancel();
    }
  }
}
