/**
 * An allowed Check carries the target's credential back to Envoy, so the
 * gRPC listener can require TLS with Envoy's client certificate (mTLS):
 * a caller without one gets no answer at all.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, Metadata, status as GrpcStatus, type ChannelCredentials, type Client, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyServices } from '../../ext-authz/envoy-protos.js';
import { CRM_API_TOKEN, envoyCheckRequest, headerMap, startExtAuthzStack, type CheckResponseMessage, type ExtAuthzStack } from '../helpers/ext-authz-stack.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';

let dir: string;
let stack: ExtAuthzStack;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A CA, and a certificate it signs for `name` (with 127.0.0.1 and localhost as names). */
function issue(name: string): void {
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
  writeFileSync(join(dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', `${name}.ext`, '-out', `${name}.pem`]);
}

function check(creds: ChannelCredentials, request: unknown): Promise<CheckResponseMessage> {
  const client: Client = new (envoyServices().grpc.envoy.service.auth.v3.Authorization)(stack.grpcAddress, creds);
  return new Promise<CheckResponseMessage>((resolve, reject) => {
    (client as unknown as { Check: (r: unknown, m: Metadata, o: { deadline: number }, cb: (e: ServiceError | null, res: CheckResponseMessage) => void) => void })
      .Check(request, new Metadata(), { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res)));
  }).finally(() => client.close());
}

const file = (name: string) => readFileSync(join(dir, name));

beforeAll(async () => {
  dir = makeTempDir('gatehouse-ext-authz-tls-');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=test-ca', '-days', '1', '-keyout', 'ca.key', '-out', 'ca.pem']);
  issue('gatehouse');
  issue('envoy');
  stack = await startExtAuthzStack({
    extAuthzYaml: `    tls: {cert_file: ${join(dir, 'gatehouse.pem')}, key_file: ${join(dir, 'gatehouse.key')}, client_ca_file: ${join(dir, 'ca.pem')}}`,
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (dir) removeDir(dir);
});

describe('ext_authz over mutual TLS', () => {
  it('answers Envoy, presenting its client certificate, with the credential', async () => {
    const envoy = credentials.createSsl(file('ca.pem'), file('envoy.key'), file('envoy.pem'));
    const res = await check(envoy, envoyCheckRequest({ method: 'GET', path: '/customers', token: stack.token('agent-support', ['support-agents']) }));
    expect(res.status?.code).toBe(GrpcStatus.OK);
    expect(headerMap(res.ok_response?.headers).authorization).toBe(`Bearer ${CRM_API_TOKEN}`);
  });

  it('gives a caller without a client certificate, or in plaintext, no answer', async () => {
    const request = envoyCheckRequest({ method: 'GET', path: '/customers', token: stack.token('agent-support', ['support-agents']) });
    for (const creds of [credentials.createSsl(file('ca.pem')), credentials.createInsecure()]) {
      const err = await check(creds, request).then(() => null, (e: ServiceError) => e);
      expect(err?.code).toBe(GrpcStatus.UNAVAILABLE);
    }
  });
});
