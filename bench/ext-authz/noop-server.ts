// The ceiling for Node in `make bench-ext-authz`: a grpc-js server with
// Envoy's own Authorization service (ext-authz/envoy-protos.ts) whose Check
// answers OK at once. Whatever Gatehouse's Check costs beyond this is
// Gatehouse's own work; what this costs is grpc-js and protobufjs.
//
//   node --import tsx bench/ext-authz/noop-server.ts 127.0.0.1:9393
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { envoyServices } from '../../ext-authz/envoy-protos.js';

const address = process.argv[2] ?? '127.0.0.1:9393';
const OK = { status: { code: 0 }, ok_response: {} };

const server = new Server();
server.addService(envoyServices().authorization, {
  Check(_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>): void {
    callback(null, OK);
  },
});

server.bindAsync(address, ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.error(`noop-server: ${err.message}`);
    process.exit(1);
  }
  console.log(`noop-server: envoy.service.auth.v3.Authorization (Check → OK) on ${address.replace(/:\d+$/, `:${port}`)}`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    const force = setTimeout(() => server.forceShutdown(), 2000);
    server.tryShutdown(() => {
      clearTimeout(force);
      process.exit(0);
    });
  });
}
