// The ceiling for Node in `make bench-postgres`: a TCP relay that passes
// bytes both ways between a client and PostgreSQL and does nothing else (no
// framing, no decisions). Whatever the Postgres proxy costs beyond this is
// Gatehouse's own work; what this costs is Node's event loop and sockets.
//
//   node --import tsx bench/postgres/noop-relay.ts <listen port> <PostgreSQL port>
import { connect, createServer } from 'node:net';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
if (!listenPort || !upstreamPort) {
  console.error('usage: noop-relay.ts <listen port> <PostgreSQL port>');
  process.exit(2);
}

const server = createServer((client) => {
  const upstream = connect(upstreamPort, '127.0.0.1');
  // As the proxy does: no Nagle delay on either side.
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  client.on('data', (chunk) => upstream.write(chunk));
  upstream.on('data', (chunk) => client.write(chunk));
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
});
server.listen(listenPort, '127.0.0.1', () => console.log(`noop-relay: 127.0.0.1:${listenPort} → 127.0.0.1:${upstreamPort}`));
process.once('SIGTERM', () => process.exit(0));
