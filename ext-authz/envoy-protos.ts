import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { loadPackageDefinition, type ServiceDefinition } from '@grpc/grpc-js';

/**
 * Envoy's own API protos, as shipped inside @grpc/grpc-js-xds (its deps/
 * folder vendors envoy-api, xds, protoc-gen-validate and googleapis). Nothing
 * here is hand-written: Check and Process speak the messages Envoy sends.
 */
const depsDir = join(dirname(createRequire(import.meta.url).resolve('@grpc/grpc-js-xds/package.json')), 'deps');

/** The include path for Envoy's protos, for any loader (proto-loader, protobufjs). */
export const ENVOY_PROTO_DIRS: readonly string[] = ['envoy-api', 'xds', 'protoc-gen-validate', 'googleapis'].map((d) => join(depsDir, d));

export const AUTHORIZATION_PROTO = 'envoy/service/auth/v3/external_auth.proto';
export const EXTERNAL_PROCESSOR_PROTO = 'envoy/service/ext_proc/v3/external_processor.proto';

/**
 * How messages look in JS: field names as in the .proto (snake_case, as
 * Envoy's docs and the OPA-Envoy input use them), enums as their names,
 * 64-bit integers as strings, oneofs named, and no defaults filled in, so an
 * absent field is undefined rather than a zero that looks like data.
 */
export const ENVOY_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
  includeDirs: [...ENVOY_PROTO_DIRS],
};

export interface EnvoyServices {
  /** envoy.service.auth.v3.Authorization (Check). */
  authorization: ServiceDefinition;
  /** envoy.service.ext_proc.v3.ExternalProcessor (Process, a bidirectional stream). */
  externalProcessor: ServiceDefinition;
  /** The loaded package tree, for clients: `new (services.grpc.envoy.service.auth.v3.Authorization)(address, creds)`. */
  grpc: GrpcObjectTree;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type GrpcObjectTree = any;

let loaded: EnvoyServices | null = null;
let check: ServiceDefinition | null = null;

/**
 * The Authorization service as the Check server loads it: with protobuf's
 * JSON names and encodings (camelCase, bytes as base64, 64-bit integers as
 * strings), because that is what the OPA-Envoy plugin gives its policies —
 * it runs CheckRequest through protojson — so a policy written for it reads
 * `attributes.source.address.socketAddress` and `http.rawBody` here too.
 * Only Timestamp and Struct still need converting (envoy-input.ts).
 */
export function checkServiceDefinition(): ServiceDefinition {
  if (check) return check;
  const definition = protoLoader.loadSync(AUTHORIZATION_PROTO, {
    ...ENVOY_LOADER_OPTIONS,
    keepCase: false,
    bytes: String,
    oneofs: false,
    json: true,
  });
  check = (loadPackageDefinition(definition) as GrpcObjectTree).envoy.service.auth.v3.Authorization.service as ServiceDefinition;
  return check;
}

/** Loads both services once per process (parsing the protos takes ~300 ms). */
export function envoyServices(): EnvoyServices {
  if (loaded) return loaded;
  const definition = protoLoader.loadSync([AUTHORIZATION_PROTO, EXTERNAL_PROCESSOR_PROTO], ENVOY_LOADER_OPTIONS);
  const grpc = loadPackageDefinition(definition);
  loaded = {
    authorization: (grpc as GrpcObjectTree).envoy.service.auth.v3.Authorization.service,
    externalProcessor: (grpc as GrpcObjectTree).envoy.service.ext_proc.v3.ExternalProcessor.service,
    grpc,
  };
  return loaded;
}
