/**
 * envoy.service.ext_proc.v3.ExternalProcessor: Envoy opens one Process
 * stream per HTTP request, after ext_authz allowed it, and sends the
 * request's headers, then the response's headers, its buffered body and
 * its trailers if it has any (envoy/envoy.yaml: request_header_mode SEND,
 * response_header_mode SEND, response_body_mode BUFFERED,
 * response_trailer_mode SEND; a BUFFERED request body is recorded too).
 * Each message carries the Check decision's metadata (exchange-metadata.ts):
 * the mask rules, the session to record in, whether to record.
 *
 * Per exchange: the mask rules are compiled once, at the first message; the
 * response body is masked (body.ts, on a body thread: body-threads.ts) and
 * sent back identity-encoded with its
 * Content-Length set; response headers and trailers alike lose a line that
 * holds the injected credential and have values under the `$` detector
 * rules masked (screenedFields); the masking counts go to the audit trail
 * (a "Masked" event linked by decision id) and, when the target records,
 * the exchange goes to the session recording as a HAR entry, masked,
 * without credentials (HAR has no trailers: they are not recorded).
 *
 * When trailers follow a body, Envoy sends the buffered body without
 * end_of_stream, which cannot be told from one chunk of a streamed body:
 * a response that must be read is then refused (500) at its body, as a
 * streamed one is; one that is not read goes on, and its trailers are
 * still screened for the credential.
 *
 * Fail closed: no metadata (the request did not pass Check) is a 403;
 * malformed metadata, rules that cannot be enforced, a message before the
 * request headers or those headers twice (they say which credential must not
 * come back), or an internal error is a 500; a body that cannot be masked, or that finds the body threads busy
 * with as many waiting as may wait, is a 502. Each is an ImmediateResponse
 * in the upstream's place, so an unmasked body never leaves. Logs carry ids
 * and reasons, never a header value or a body.
 *
 * A stream that goes (Envoy resets it at message_timeout, or it fails, or
 * Envoy ends it) takes its body read with it at once: dropped if it waits
 * for a body thread, the thread stopped if it is being read, and nothing
 * more is sent for the exchange, which is recorded as cut short.
 */
import type { handleBidiStreamingCall, ServerDuplexStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Authorizer } from '../../engine/authorize/authorizer.js';
import type { Identity } from '../../engine/identity/identity.js';
import { MaskRuleError } from '../../engine/masking/errors.js';
import { compileFieldMasks, type FieldMaskRule, type FieldMasks } from '../../engine/masking/json-fields.js';
import { WHOLE_DOCUMENT } from '../../engine/masking/json-path.js';
import type { HashKey } from '../../engine/masking/strategies.js';
import type { SessionRecorder } from '../../engine/recording/recorder.js';
import type { HttpExchangeRecord, MaskCount, RecordedBody } from '../../engine/recording/types.js';
import type { ExchangeMetadata } from '../exchange-metadata.js';
import { BodyRefused, credentialSecrets, type BodyHeaders } from './body.js';
import { BodyReadAborted, type BodyRead, type BodyThreads } from './body-threads.js';
import { CREDENTIAL_REPLACEMENT, holdsSecret } from './credential-echo.js';
import { header, headerList, headerMutation, mutatedHeaders, readHeaderMap, recordableHeaders, type HeaderList } from './headers.js';
import { readExchangeMetadata } from './metadata.js';
import { continueWith, immediateResponse, replaceBody, type Phase } from './responses.js';
import { pathOnly, recordedUrl } from './url.js';

export interface ExternalProcessorOptions {
  recorder: Pick<SessionRecorder, 'open'>;
  authorizer: Pick<Authorizer, 'recordMasking'>;
  /** The HMAC key for "hash" mask rules (masking.hash_key); without it such a rule fails closed. */
  hashKey?: HashKey | undefined;
  logger: Logger;
  /** The largest decoded body that is masked or recorded (default 16 MiB); bigger is refused when it must be masked. */
  maxBodyBytes?: number;
  /** Where bodies are read, off the main thread; made with the same hashKey. */
  bodies: BodyThreads;
}

/** ProcessingRequest in, ProcessingResponse out, as proto-loader (de)serialises them. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export interface ExternalProcessorService extends UntypedServiceImplementation { Process: handleBidiStreamingCall<any, any> }

export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Pseudo-headers, Host and x-envoy-*: Envoy's default HeaderMutationRules let no external processor change them. */
function unchangeableByProcessor(name: string): boolean {
  return name.startsWith(':') || name === 'host' || name.startsWith('x-envoy-');
}

/** Response headers about the body's framing and caching, which detectors have nothing to find in. */
const UNSCANNED_HEADERS: ReadonlySet<string> = new Set([
  'content-length', 'content-type', 'content-encoding', 'transfer-encoding', 'date', 'last-modified', 'expires', 'age', 'etag', 'vary', 'cache-control',
]);

/** The handler to register on a gRPC server for envoyServices().externalProcessor. */
export function createExternalProcessor(options: ExternalProcessorOptions): ExternalProcessorService {
  const settings: Settings = {
    recorder: options.recorder,
    authorizer: options.authorizer,
    hashKey: options.hashKey,
    logger: options.logger.child({ component: 'ext_proc' }),
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    bodies: options.bodies,
  };
  return { Process: (call) => new Exchange(call, settings).start() };
}

interface Settings {
  recorder: Pick<SessionRecorder, 'open'>;
  authorizer: Pick<Authorizer, 'recordMasking'>;
  hashKey: HashKey | undefined;
  logger: Logger;
  maxBodyBytes: number;
  bodies: BodyThreads;
}

interface ProcessingRequest {
  request?: string;
  request_headers?: { headers?: unknown; end_of_stream?: boolean };
  response_headers?: { headers?: unknown; end_of_stream?: boolean };
  request_body?: { body?: Uint8Array; end_of_stream?: boolean };
  response_body?: { body?: Uint8Array; end_of_stream?: boolean };
  response_trailers?: { trailers?: unknown };
  metadata_context?: { filter_metadata?: Record<string, unknown> };
}

/** The phases a ProcessingRequest has; another is refused as unknown. */
const KNOWN_PHASES: ReadonlySet<string> = new Set(['request_headers', 'response_headers', 'request_body', 'response_body', 'request_trailers', 'response_trailers']);

/** Headers a rewritten body makes wrong: its encoding is now identity, and digests of the old bytes. */
const STALE_AFTER_REWRITE = ['content-encoding', 'content-md5', 'digest', 'content-digest', 'repr-digest'];

/** One body as it arrives, possibly in chunks (only when Envoy streams instead of buffering). */
class BodyBuffer {
  private chunks: Buffer[] = [];
  size = 0;
  overflowed = false;

  constructor(private readonly max: number) {}

  add(chunk: Uint8Array | undefined): void {
    if (!chunk || chunk.length === 0) return;
    this.size += chunk.length;
    if (this.size > this.max) {
      this.overflowed = true;
      this.chunks = [];
    } else {
      this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    }
  }

  bytes(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
  }
}

/** One Process stream: one HTTP request and its response. */
class Exchange {
  private metadata: ExchangeMetadata | null = null;
  /** The plan, here for the headers and trailers; bodies are read under its rules on a body thread. */
  private masks: FieldMasks | null = null;
  /** What the plan masked in the response's body. */
  private bodyMasked: MaskCount[] = [];
  /** The `$` rules alone, for recording a request's body, query and header values (the agent's own input is never rewritten). */
  private requestRules: FieldMaskRule[] = [];
  /**
   * The same rules compiled, when the exchange is recorded: their detector
   * rules scan the request's query and header values for the recording as
   * the body is scanned (recordedBody). Apart from the response's plan, so
   * what they find is not counted as masked in the response.
   */
  private requestMasks: FieldMasks | null = null;
  private log: Logger;

  private startedAt = 0;
  private responseAt: number | null = null;
  private sawRequestHeaders = false;
  private requestHeaders: HeaderList = [];
  /** What of the injected credential must not come back in the response. */
  private secrets: string[] = [];
  /** The response body is read whole (masked, or scanned for the credential): no byte ranges. */
  private readsBody = false;
  private requestBody: RecordedBody | null = null;
  private response: { status: number; headers: HeaderList; body: RecordedBody | null } | null = null;
  private readonly requestBuffer: BodyBuffer;
  private readonly responseBuffer: BodyBuffer;

  /** Messages are handled one at a time, in order, though body handling awaits a body thread. */
  private queue: Promise<void> = Promise.resolve();
  private finished = false;
  private ended = false;
  /**
   * Aborted as soon as the stream is gone (cancelled: Envoy resets it at
   * message_timeout; failed; or ended by Envoy, which does so only when it
   * waits for nothing more): a body read for it is dropped, waiting or
   * running, and nothing more is sent. Not queued behind the message being
   * handled, which is the read itself.
   */
  private readonly gone = new AbortController();

  constructor(
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    private readonly call: ServerDuplexStream<any, any>,
    private readonly settings: Settings,
  ) {
    this.log = settings.logger;
    this.requestBuffer = new BodyBuffer(settings.maxBodyBytes);
    this.responseBuffer = new BodyBuffer(settings.maxBodyBytes);
  }

  start(): void {
    const after = (work: () => void | Promise<void>) => {
      this.queue = this.queue.then(work).catch((err: unknown) => this.crashed(err));
    };
    this.call.on('data', (message: ProcessingRequest) => after(() => this.handle(message)));
    this.call.on('end', () => {
      this.gone.abort('the exchange ended');
      after(() => {
        this.finish('the exchange ended before its response was complete');
        this.end();
      });
    });
    // A broken or cancelled stream: Envoy (failure_mode_allow: false) fails the request itself.
    this.call.on('error', (err: Error) => {
      this.gone.abort('the ext_proc stream failed');
      after(() => {
        this.log.warn({ err: { message: err.message } }, 'ext_proc stream failed');
        this.finish('the ext_proc stream failed');
      });
    });
    this.call.on('cancelled', () => {
      this.gone.abort('the ext_proc stream was cancelled');
      after(() => this.finish('the ext_proc stream was cancelled'));
    });
  }

  private async handle(message: ProcessingRequest): Promise<void> {
    if (this.finished || this.gone.signal.aborted) return;
    if (!this.metadata && !this.establish(message)) return;
    const phase = message.request as Phase | undefined;
    // Envoy (request_header_mode SEND) sends the request's headers first, and once: they say what must not come back
    // (the injected credential). A response read without them, or after a second set, would be screened for nothing.
    if (phase === 'request_headers' ? this.sawRequestHeaders : !this.sawRequestHeaders && phase !== undefined && KNOWN_PHASES.has(phase)) {
      this.log.error({ phase }, 'ext_proc message out of order');
      const what = phase === 'request_headers' ? 'request headers came twice' : `${phase} came before the request headers`;
      return this.refuse(500, 'the gateway received ext_proc messages out of order', `ext_proc messages out of order: ${what}`);
    }
    switch (phase) {
      case 'request_headers':
        return this.onRequestHeaders(message.request_headers!);
      case 'response_headers':
        return this.onResponseHeaders(message.response_headers!);
      case 'request_body':
        return this.onRequestBody(message.request_body!);
      case 'response_body':
        return this.onResponseBody(message.response_body!);
      case 'response_trailers':
        return this.onResponseTrailers(message.response_trailers!);
      case 'request_trailers':
        return this.send(continueWith(phase));
      default:
        this.log.error({ phase }, 'ext_proc message of an unknown kind');
        return this.refuse(500, 'the gateway received an ext_proc message it does not know', 'unknown ext_proc message');
    }
  }

  /** Reads the decision's metadata and compiles its mask plan; on failure answers in the upstream's place. */
  private establish(message: ProcessingRequest): boolean {
    this.startedAt = Date.now();
    const reading = readExchangeMetadata(message.metadata_context);
    if (reading.problem !== undefined) {
      this.log.error({ phase: message.request, problem: reading.problem }, 'ext_proc refused an exchange: no usable Check metadata');
      this.refuse(reading.status, reading.status === 403 ? 'request not authorized by the gateway' : 'the gateway could not process this request', reading.problem);
      return false;
    }
    const metadata = reading.metadata;
    this.metadata = metadata;
    this.log = this.settings.logger.child({ decision_id: metadata.decision_id, session_id: metadata.session_id, target: metadata.target });
    try {
      const options = { hashKey: this.settings.hashKey };
      this.masks = compileFieldMasks(metadata.mask, options);
      this.requestRules = metadata.mask.filter((rule) => rule.field === WHOLE_DOCUMENT);
      if (metadata.record && this.requestRules.length > 0) this.requestMasks = compileFieldMasks(this.requestRules, options);
    } catch (err) {
      if (!(err instanceof MaskRuleError)) throw err;
      this.log.error({ problem: err.message }, 'ext_proc refused an exchange: its mask rules cannot be enforced');
      this.refuse(500, 'the gateway cannot enforce the masking policy for this request', `mask rules cannot be enforced: ${err.message}`);
      return false;
    }
    return true;
  }

  private onRequestHeaders(message: NonNullable<ProcessingRequest['request_headers']>): void {
    this.sawRequestHeaders = true;
    this.requestHeaders = readHeaderMap(message.headers as never);
    const repeated = this.metadata!.approval_id ? repeatedHeader(this.requestHeaders) : null;
    if (repeated !== null) {
      return this.refuse(403, 'an approved request must send each header once', `approved request repeats header ${repeated}, which the approval bound as one comma-joined value`);
    }
    // Check has injected the credential by now; an upstream may echo it.
    this.secrets = credentialSecrets(header(this.requestHeaders, this.metadata!.credential_header));
    // Ask for an uncompressed response when it will be read: cheaper than
    // decoding, and a compressed one is still decoded if it comes anyway.
    const masking = this.masks !== null && !this.masks.empty;
    this.readsBody = masking || this.secrets.length > 0;
    // A byte range is a piece no rule or credential scan finds whole ("ada@example.com" alone, or an echoed key
    // read out seven bytes at a time): ask for all of it.
    if (!this.readsBody) return this.send(continueWith('request_headers'));
    const set = { 'accept-encoding': 'identity' };
    const remove = ['range', 'if-range'];
    // The recording shows what the upstream was sent, not what the client asked for.
    this.requestHeaders = mutatedHeaders(this.requestHeaders, set, remove);
    this.send(continueWith('request_headers', headerMutation(set, remove)));
  }

  private async onRequestBody(message: NonNullable<ProcessingRequest['request_body']>): Promise<void> {
    if (!this.metadata!.record) return this.send(continueWith('request_body'));
    this.requestBuffer.add(message.body);
    if (message.end_of_stream) {
      this.requestBody = (await this.recordedBody(this.requestBuffer, bodyHeaders(this.requestHeaders), this.requestRules)).recorded;
    }
    this.send(continueWith('request_body'));
  }

  private onResponseHeaders(message: NonNullable<ProcessingRequest['response_headers']>): void {
    this.responseAt = Date.now();
    const { fields: headers, mutation, echoing, stuck } = this.screenedFields(readHeaderMap(message.headers as never));
    this.response = { status: Number(header(headers, ':status')) || 0, headers, body: null };
    if (this.response.status === 206 && this.readsBody) {
      return this.refuse(502, 'the response could not be masked: it is part of a body', 'the upstream answered 206 (a byte range) to a request whose whole response must be read');
    }
    if (stuck !== undefined) {
      return this.refuse(502, 'the response could not be masked', `response header ${stuck} holds what must not reach the client, and Envoy does not let ext_proc change it`);
    }
    if (echoing.length > 0) this.log.warn({ headers: echoing }, 'response headers holding the target\'s credential removed');
    // Content-Length is fixed with the body (BUFFERED mode applies that response's header mutation).
    this.send(continueWith('response_headers', mutation));
    if (message.end_of_stream) this.finish(null);
  }

  /**
   * Response trailers (an HTTP/2 upstream's, or HTTP/1.1 chunked ones),
   * screened as the response headers are: a line holding the credential
   * removed, values under the `$` detector rules masked, and the response
   * refused when such a line is one Envoy does not let ext_proc change.
   * Envoy holds the response (headers, buffered body) until this answer, so
   * a refusal still replaces all of it. The exchange ends here.
   */
  private async onResponseTrailers(message: NonNullable<ProcessingRequest['response_trailers']>): Promise<void> {
    const { mutation, echoing, stuck } = this.screenedFields(readHeaderMap(message.trailers as never));
    if (stuck !== undefined) {
      return this.refuse(502, 'the response could not be masked', `response trailer ${stuck} holds what must not reach the client, and Envoy does not let ext_proc change it`);
    }
    if (echoing.length > 0) this.log.warn({ trailers: echoing }, 'response trailers holding the target\'s credential removed');
    // TrailersResponse carries a HeaderMutation of its own, not a CommonResponse.
    this.send({ response_trailers: mutation ? { header_mutation: mutation } : {} });
    // A body that came before them, not marked as the end, went on unread (only a response that is not masked or
    // scanned gets here with one): recorded now that it is whole.
    const response = this.response;
    if (response && response.body === null && this.responseBuffer.size > 0 && this.metadata!.record) {
      const { recorded, masked } = await this.recordedBody(this.responseBuffer, bodyHeaders(response.headers), this.metadata!.mask);
      response.body = recorded;
      this.bodyMasked = masked;
    }
    this.finish(null);
  }

  /**
   * Response headers or trailers as they may go on: a line holding the
   * injected credential removed (in its name too, `x-<token>: 1`, and in any
   * spelling the body is searched for: percent-encoded, spaced, …), values
   * under the `$` detector rules masked (scannedHeaders). Returns the lines
   * as they go on, the mutation that makes them so (undefined when nothing
   * changes), the names removed for the credential, and the first name that
   * must change but that Envoy does not let ext_proc change (by default
   * silently ignoring the mutation: HeaderMutationRules), if any; both name
   * lists fit for a log (a name holding the credential is printed redacted).
   */
  private screenedFields(received: HeaderList): { fields: HeaderList; mutation: object | undefined; echoing: string[]; stuck: string | undefined } {
    const echoing = received.filter((h) => holdsSecret(`${h.name}\n${h.value}`, this.secrets)).map((h) => h.name);
    const { headers: fields, rewritten } = this.scannedHeaders(received.filter((h) => !echoing.includes(h.name)));
    const stuck = [...echoing, ...rewritten].find(unchangeableByProcessor);
    const removed = [...echoing, ...rewritten.filter((name) => !fields.some((h) => h.name === name))];
    const set = Object.fromEntries(rewritten.filter((name) => !removed.includes(name)).map((name) => [name, fields.filter((h) => h.name === name).map((h) => h.value)]));
    const changed = removed.length > 0 || rewritten.length > 0;
    // The names go to the log, and a refusal's reason to the recording too: a name can be the credential itself.
    const printable = (name: string) => (holdsSecret(name, this.secrets) ? CREDENTIAL_REPLACEMENT : name);
    return { fields, mutation: changed ? headerMutation(set, removed) : undefined, echoing: echoing.map(printable), stuck: stuck === undefined ? undefined : printable(stuck) };
  }

  /**
   * Response header (or trailer) values under the plan's `$` detector
   * rules: an API can put what it puts in a body in a header too
   * (`X-User-Email`, a Location with an email in its query). Headers that
   * describe the body's framing or caching are not scanned. Returns the
   * headers as they go on (a value masked to null drops its line) and the
   * names with a line changed. The request's header values are scanned
   * for its recording with the request's masks (requestMasks).
   */
  private scannedHeaders(received: HeaderList, masks: FieldMasks | null = this.masks): { headers: HeaderList; rewritten: string[] } {
    if (!masks?.scansText) return { headers: received, rewritten: [] };
    const rewritten = new Set<string>();
    const headers: HeaderList = [];
    for (const h of received) {
      if (h.name.startsWith(':') || UNSCANNED_HEADERS.has(h.name)) {
        headers.push(h);
        continue;
      }
      const { value, changed } = masks.scanText(h.value);
      if (changed) rewritten.add(h.name);
      if (value !== null) headers.push(changed ? { name: h.name, value } : h);
    }
    return { headers, rewritten: [...rewritten] };
  }

  private async onResponseBody(message: NonNullable<ProcessingRequest['response_body']>): Promise<void> {
    const response = this.response ?? (this.response = { status: 0, headers: [], body: null });
    const masking = (this.masks !== null && !this.masks.empty) || this.secrets.length > 0;
    this.responseBuffer.add(message.body);
    if (!message.end_of_stream) {
      // A chunk of a streamed body, or a buffered one with trailers to follow (Envoy then leaves end_of_stream off):
      // which, nothing here says, and a chunk is not the whole body.
      if (masking) {
        return this.refuse(500, 'the gateway cannot mask this response', 'the response body came without end_of_stream (streamed, or with trailers after it): masking needs it whole, in response_body_mode BUFFERED and without trailers');
      }
      return this.send(continueWith('response_body'));
    }
    const headers = bodyHeaders(response.headers);
    if (this.responseBuffer.overflowed) {
      if (masking) return this.refuse(502, 'the response could not be masked: it is too large', `the response body is larger than ${this.settings.maxBodyBytes} bytes`);
      response.body = { mime_type: headers.contentType, size: this.responseBuffer.size };
      this.send(continueWith('response_body'));
      return this.finish(null);
    }
    let read: BodyRead;
    try {
      read = await this.settings.bodies.read(this.responseBuffer.bytes(), headers, this.metadata!.mask, { maxBytes: this.settings.maxBodyBytes, record: this.metadata!.record, secrets: this.secrets }, this.gone.signal);
    } catch (err) {
      if (!(err instanceof BodyRefused)) throw err;
      return this.refuse(502, 'the response could not be masked', err.message);
    }
    const { outcome } = read;
    this.bodyMasked = read.masked;
    response.body = outcome.recorded;
    if (outcome.replacement) {
      this.send(replaceBody('response_body', outcome.replacement, STALE_AFTER_REWRITE));
      response.headers = response.headers
        .filter((h) => h.name !== 'content-length' && !STALE_AFTER_REWRITE.includes(h.name))
        .concat({ name: 'content-length', value: String(outcome.replacement.length) });
    } else {
      this.send(continueWith('response_body'));
    }
    this.finish(null);
  }

  /** A request body for the recording: masked by the `$` rules, or described without its text when that fails. */
  private async recordedBody(buffer: BodyBuffer, headers: BodyHeaders, rules: readonly FieldMaskRule[]): Promise<{ recorded: RecordedBody; masked: MaskCount[] }> {
    const described = { recorded: { mime_type: headers.contentType, size: buffer.size }, masked: [] };
    if (buffer.overflowed) return described;
    try {
      const { outcome, masked } = await this.settings.bodies.read(buffer.bytes(), headers, rules, { maxBytes: this.settings.maxBodyBytes, record: true }, this.gone.signal);
      return outcome.recorded ? { recorded: outcome.recorded, masked } : described;
    } catch (err) {
      if (!(err instanceof BodyRefused)) throw err;
      return described;
    }
  }

  /** Answers in the upstream's place, records why, and ends the stream. */
  private refuse(status: 403 | 500 | 502, message: string, why: string): void {
    const decisionId = this.metadata?.decision_id ?? null;
    const reply = immediateResponse(status, `gatehouse: ${message}`, decisionId) as { immediate_response: { body: Buffer } };
    this.send(reply);
    const body = reply.immediate_response.body;
    this.response = { status, headers: [{ name: 'content-type', value: 'application/json' }], body: { mime_type: 'application/json', size: body.length, text: body.toString('utf8') } };
    this.responseAt ??= Date.now();
    this.log.warn({ status, why }, 'ext_proc answered in the upstream\'s place');
    this.finish(`the gateway answered ${status}: ${why}`);
    this.end();
  }

  private crashed(err: unknown): void {
    if (err instanceof BodyReadAborted) {
      // The stream went while its body was read or waited for a thread: no one to answer. The stream's own handler,
      // queued next, finishes the exchange with why.
      this.log.debug({ why: String(this.gone.signal.reason) }, 'ext_proc body read dropped: the exchange is gone');
      return;
    }
    this.log.error({ err: { name: (err as Error)?.name, message: (err as Error)?.message, stack: (err as Error)?.stack } }, 'ext_proc failed while processing an exchange');
    if (!this.finished && !this.gone.signal.aborted) this.refuse(500, 'the gateway failed while processing this request', 'internal error');
  }

  /** Once per exchange: the masking counts to the audit trail, the exchange to the recording. */
  private finish(error: string | null): void {
    if (this.finished) return;
    this.finished = true;
    const metadata = this.metadata;
    if (!metadata) return;
    const endedAt = Date.now();
    const masked = addedCounts(this.masks?.counts() ?? [], this.bodyMasked);
    const status = this.response?.status ?? 0;
    const summary = `${header(this.requestHeaders, ':method') || 'request'} ${pathOnly(this.requestHeaders)} → ${status || 'no response'}`;
    if (masked.length > 0) {
      this.settings.authorizer
        .recordMasking({ identity: auditIdentity(metadata), target: metadata.target, sessionId: metadata.session_id, decisionId: metadata.decision_id, summary, records: 1, masked })
        .catch((err: unknown) => this.log.error({ err: { message: (err as Error)?.message } }, 'masking counts could not be audited'));
    }
    if (metadata.record) this.record(metadata, endedAt, masked, error ?? (this.response ? null : 'no response was seen'));
  }

  private record(metadata: ExchangeMetadata, endedAt: number, masked: MaskCount[], error: string | null): void {
    const requestMasks = this.requestMasks;
    const scan = requestMasks?.scansText ? (text: string) => requestMasks.scanText(text).value : undefined;
    const entry: HttpExchangeRecord = {
      started_at: this.startedAt,
      duration_ms: Math.max(0, endedAt - this.startedAt),
      wait_ms: this.responseAt === null ? null : Math.max(0, this.responseAt - this.startedAt),
      decision_id: metadata.decision_id,
      audit: metadata.audit,
      request: {
        method: header(this.requestHeaders, ':method') || 'GET',
        url: recordedUrl(this.requestHeaders, scan),
        http_version: '',
        headers: this.scannedHeaders(recordableHeaders(this.requestHeaders, metadata.credential_header), requestMasks).headers,
        body: this.requestBody,
      },
      response: this.response && this.response.status >= 100
        ? { status: this.response.status, http_version: '', headers: recordableHeaders(this.response.headers), body: this.response.body }
        : null,
      masked,
      error,
    };
    try {
      const recording = this.settings.recorder.open({
        session_id: metadata.session_id,
        target: metadata.target,
        target_kind: 'http',
        identity: { sub: metadata.identity.sub, iss: metadata.identity.iss, groups: metadata.identity.groups, act: metadata.identity.act },
        source_ip: metadata.source_ip,
        protocol: 'http',
        started_at: this.startedAt,
      });
      recording.append(entry);
      recording.close({ ended_at: endedAt, reason: error === null ? 'exchange complete' : 'exchange cut short' });
    } catch (err) {
      // A recorder refusal (a session id already open) must not touch the exchange itself.
      this.log.error({ err: { message: (err as Error)?.message } }, 'the exchange could not be recorded');
    }
  }

  private send(message: object): void {
    if (!this.ended && !this.gone.signal.aborted) this.call.write(message);
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.call.end();
  }
}

function bodyHeaders(headers: HeaderList): BodyHeaders {
  // Every Content-Type line: a client may read the charset of any of them.
  return { contentType: headerList(headers, 'content-type'), contentEncoding: headerList(headers, 'content-encoding') };
}

/** The Masked audit event's actor: the caller Check verified (its claims stay with the decision's own event). */
function auditIdentity(metadata: ExchangeMetadata): Identity {
  return { ...metadata.identity, claims: {} };
}

/**
 * A header name that arrives on more than one line. Check read them as one
 * value joined with "," (as Envoy joins them), which an upstream may read
 * otherwise (the first line only, or a cookie split differently).
 */
function repeatedHeader(list: HeaderList): string | null {
  const seen = new Set<string>();
  for (const { name } of list) {
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return null;
}

/** Counts of the same rule and detector added up. */
function addedCounts(counts: readonly MaskCount[], more: readonly MaskCount[]): MaskCount[] {
  const sum = new Map<string, MaskCount>();
  for (const c of [...counts, ...more]) {
    const key = JSON.stringify([c.column, c.detector]);
    const held = sum.get(key);
    if (held) held.count += c.count;
    else sum.set(key, { ...c });
  }
  return [...sum.values()];
}
