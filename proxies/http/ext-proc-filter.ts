/**
 * Envoy's ext_proc HTTP filter in the processing mode envoy/envoy.yaml
 * configures: request headers SEND, request body NONE, response headers
 * SEND, response body BUFFERED, request trailers SKIP; no mode_override
 * (Envoy ignores it unless allow_mode_override is set). Each message
 * carries the ext_authz namespace of the dynamic metadata (metadata_options
 * forwarding_namespaces.untyped), which is how Check hands the mask plan on.
 *
 * Response trailers are SEND there, so that Process screens them. The
 * stand-in has none to send: its router drops an upstream's trailers and
 * the response goes out whole with a Content-Length (http-response.ts), so
 * no trailer reaches the client unscreened, and the body always goes to
 * Process with end_of_stream.
 */
import { EXT_AUTHZ_NAMESPACE } from '../../ext-authz/exchange-metadata.js';
import type { CommonResponse, ImmediateResponse, ProcessingPhase, ProcessingResponse, StructMessage } from './envoy-types.js';
import { HeaderMap } from './header-map.js';
import { applyHeaderMutation } from './header-mutation.js';
import { httpStatusCode } from './http-status.js';
import { localReply, type HttpResponse } from './http-response.js';
import { ProcessingFailure, type ProcessingStream } from './ext-proc-client.js';

export type RequestPhaseResult = { kind: 'continue'; replacedBody: Buffer | null } | { kind: 'reply'; reply: HttpResponse };

export class ExtProcFilter {
  constructor(private readonly stream: ProcessingStream, private readonly metadata: StructMessage | null) {}

  /** request_headers: mutates `headers`; CONTINUE_AND_REPLACE with a body mutation replaces the request body. */
  async requestHeaders(headers: HeaderMap, endOfStream: boolean): Promise<RequestPhaseResult> {
    const answer = await this.exchange('request_headers', { request_headers: { headers: headerMapMessage(headers), end_of_stream: endOfStream } });
    if ('reply' in answer) return { kind: 'reply', reply: answer.reply };
    applyHeaderMutation(headers, answer.common.header_mutation);
    return { kind: 'continue', replacedBody: answer.common.status === 'CONTINUE_AND_REPLACE' ? mutatedBody(answer.common, null) : null };
  }

  /** response_headers, then (when there is a body and it was not replaced) the whole body as one response_body. */
  async response(upstream: HttpResponse): Promise<HttpResponse> {
    const headers = new HeaderMap([[':status', String(upstream.status)], ...upstream.headers]);
    let body = upstream.body;
    const onHeaders = await this.exchange('response_headers', { response_headers: { headers: headerMapMessage(headers), end_of_stream: body.length === 0 } });
    if ('reply' in onHeaders) return onHeaders.reply;
    applyHeaderMutation(headers, onHeaders.common.header_mutation);
    if (onHeaders.common.status === 'CONTINUE_AND_REPLACE') {
      body = mutatedBody(onHeaders.common, body) ?? body;
    } else if (body.length > 0) {
      const onBody = await this.exchange('response_body', { response_body: { body, end_of_stream: true } });
      if ('reply' in onBody) return onBody.reply;
      // Header mutations answering a body message apply because the body is BUFFERED.
      applyHeaderMutation(headers, onBody.common.header_mutation);
      body = mutatedBody(onBody.common, body) ?? body;
    }
    const status = Number(headers.get(':status'));
    headers.remove(':status');
    return {
      // A :status the processor set to something that is not a status is refused, as Envoy's mutation checker does.
      status: Number.isInteger(status) && status >= 200 && status <= 599 ? status : upstream.status,
      headers,
      body,
      details: upstream.details,
    };
  }

  private async exchange(phase: ProcessingPhase, message: Record<string, unknown>): Promise<{ common: CommonResponse } | { reply: HttpResponse }> {
    let response: ProcessingResponse;
    try {
      response = await this.stream.send({ ...message, metadata_context: this.metadataContext() });
    } catch (err) {
      if (err instanceof ProcessingFailure) return { reply: localReply(err.status, '', err.details) };
      throw err;
    }
    if (response.response === 'immediate_response') return { reply: immediateReply(response.immediate_response ?? {}) };
    if (response.response !== phase) return { reply: localReply(500, '', 'ext_proc_error_spurious_message') };
    return { common: response[phase]?.response ?? {} };
  }

  private metadataContext(): Record<string, unknown> {
    return { filter_metadata: this.metadata ? { [EXT_AUTHZ_NAMESPACE]: this.metadata } : {} };
  }
}

/**
 * Header values go as raw_value (bytes), as Envoy sends them since the
 * send_header_raw_value runtime guard became its default; keys lower-case.
 */
function headerMapMessage(headers: HeaderMap): { headers: Array<{ key: string; raw_value: Buffer }> } {
  return { headers: [...headers].map(([key, value]) => ({ key, raw_value: Buffer.from(value, 'latin1') })) };
}

/** The body after a BodyMutation: replaced, cleared, or (no mutation) null. */
function mutatedBody(common: CommonResponse, current: Buffer | null): Buffer | null {
  const mutation = common.body_mutation;
  if (!mutation) return null;
  if (mutation.mutation === 'clear_body' || mutation.clear_body === true) return Buffer.alloc(0);
  if (mutation.mutation === 'body' || mutation.body !== undefined) return Buffer.from(mutation.body ?? Buffer.alloc(0));
  return current;
}

/**
 * An ImmediateResponse becomes a local reply: its body as text/plain, its
 * header mutation applied over those defaults. The proto requires a status;
 * one missing or unusable fails closed as a 500.
 */
function immediateReply(immediate: ImmediateResponse): HttpResponse {
  const status = httpStatusCode(immediate.status);
  if (status === undefined) return localReply(500, '', 'ext_proc_error_immediate_response_without_status');
  const reply = localReply(status, Buffer.from(immediate.body ?? Buffer.alloc(0)), immediate.details || 'ext_proc_immediate_response');
  applyHeaderMutation(reply.headers, immediate.headers);
  return reply;
}
