/**
 * The ProcessingResponse messages the ExternalProcessor sends, in the shape
 * proto-loader serialises (field names as in external_processor.proto).
 */
import { headerMutation } from './headers.js';

export type Phase = 'request_headers' | 'response_headers' | 'request_body' | 'response_body' | 'request_trailers' | 'response_trailers';

/** Carry on unchanged (CONTINUE), optionally with header changes. */
export function continueWith(phase: Phase, mutation?: object): object {
  if (phase === 'request_trailers' || phase === 'response_trailers') return { [phase]: {} };
  return { [phase]: { response: mutation ? { header_mutation: mutation } : {} } };
}

/**
 * Replace a buffered body. In BUFFERED mode with headers sent, Envoy keeps
 * Content-Length and applies this response's header mutation before the
 * headers go out, so the length is ours to set (a mismatch is a 500).
 */
export function replaceBody(phase: 'request_body' | 'response_body', body: Buffer, removeHeaders: readonly string[]): object {
  return {
    [phase]: {
      response: {
        header_mutation: headerMutation({ 'content-length': String(body.length) }, removeHeaders),
        body_mutation: { body },
      },
    },
  };
}

/**
 * Answer in the upstream's place. The body is JSON with one line of why and
 * the decision id (for the caller to quote); `details` goes to Envoy's
 * access log (%RESPONSE_CODE_DETAILS%).
 */
export function immediateResponse(status: number, message: string, decisionId: string | null): object {
  const body = JSON.stringify(decisionId ? { error: message, decision_id: decisionId } : { error: message });
  return {
    immediate_response: {
      status: { code: status },
      headers: headerMutation({ 'content-type': 'application/json', 'cache-control': 'no-store' }),
      body: Buffer.from(body, 'utf8'),
      details: `gatehouse_ext_proc_${status}`,
    },
  };
}
