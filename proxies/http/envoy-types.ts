/**
 * The TypeScript view of the Envoy messages the stand-in reads and writes, as
 * @grpc/proto-loader presents them with ENVOY_LOADER_OPTIONS (field names as
 * in the .proto, enums as their names, 64-bit integers as strings, bytes as
 * Buffers, absent fields undefined). These are typings only: the messages
 * themselves are encoded by the real protos (ext-authz/envoy-protos.ts).
 * Only the fields the stand-in touches are listed.
 */

/** envoy.config.core.v3.HeaderValue: `value` (string) or `raw_value` (bytes). */
export interface HeaderValue {
  key: string;
  value?: string;
  raw_value?: Buffer;
}

export type HeaderAppendAction = 'APPEND_IF_EXISTS_OR_ADD' | 'ADD_IF_ABSENT' | 'OVERWRITE_IF_EXISTS_OR_ADD' | 'OVERWRITE_IF_EXISTS';

/** envoy.config.core.v3.HeaderValueOption. */
export interface HeaderValueOption {
  header?: HeaderValue;
  /** google.protobuf.BoolValue (deprecated in favour of append_action). */
  append?: { value?: boolean } | null;
  append_action?: HeaderAppendAction | number;
  keep_empty_value?: boolean;
}

/** envoy.type.v3.HttpStatus: the enum name, or its number when this build does not know it. */
export interface HttpStatus {
  code?: string | number;
}

/** google.protobuf.Struct in its message form; passed through, never interpreted here. */
export type StructMessage = { fields?: Record<string, unknown> };

export interface CheckResponse {
  /** google.rpc.Status; code 0 (OK, absent on the wire) allows. */
  status?: { code?: number; message?: string };
  http_response?: 'ok_response' | 'denied_response';
  ok_response?: {
    headers?: HeaderValueOption[];
    headers_to_remove?: string[];
    dynamic_metadata?: StructMessage;
    response_headers_to_add?: HeaderValueOption[];
    query_parameters_to_set?: Array<{ key?: string; value?: string }>;
    query_parameters_to_remove?: string[];
  };
  denied_response?: {
    status?: HttpStatus;
    headers?: HeaderValueOption[];
    body?: string;
  };
  dynamic_metadata?: StructMessage;
}

/** envoy.service.ext_proc.v3.HeaderMutation. */
export interface HeaderMutation {
  set_headers?: HeaderValueOption[];
  remove_headers?: string[];
}

/** envoy.service.ext_proc.v3.CommonResponse. */
export interface CommonResponse {
  status?: 'CONTINUE' | 'CONTINUE_AND_REPLACE' | number;
  header_mutation?: HeaderMutation;
  body_mutation?: { mutation?: 'body' | 'clear_body'; body?: Buffer; clear_body?: boolean };
}

export interface ImmediateResponse {
  status?: HttpStatus;
  headers?: HeaderMutation;
  body?: Buffer;
  details?: string;
}

export type ProcessingPhase = 'request_headers' | 'response_headers' | 'request_body' | 'response_body';

/** envoy.service.ext_proc.v3.ProcessingResponse. */
export interface ProcessingResponse {
  response?: ProcessingPhase | 'request_trailers' | 'response_trailers' | 'immediate_response';
  request_headers?: { response?: CommonResponse };
  response_headers?: { response?: CommonResponse };
  request_body?: { response?: CommonResponse };
  response_body?: { response?: CommonResponse };
  immediate_response?: ImmediateResponse;
}
