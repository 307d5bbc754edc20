/**
 * The proxy's own connection to the real database: TCP (optionally TLS),
 * a StartupMessage and a login with credentials only the gateway holds
 * (SCRAM-SHA-256, MD5 or cleartext, whichever the server asks for).
 * pg-protocol serializes the frontend messages and decodes the server's
 * answers; after login the socket carries raw bytes (session.ts).
 */
import { isIP, connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { continueSession, finalizeSession, startSession } from 'pg/lib/crypto/sasl.js';
import { postgresMd5PasswordHash } from 'pg/lib/crypto/utils.js';
import { serialize } from 'pg-protocol';
import type { BackendMessage, DatabaseError } from 'pg-protocol/dist/messages.js';
import { decodeBackend } from '../protocol/backend-decode.js';
import { BackendFramer } from '../protocol/backend-framer.js';

export interface UpstreamTarget {
  host: string;
  port: number;
  database: string;
  username: string;
  /** Revealed only here, to answer the server's challenge. */
  password: () => string;
  tls: boolean;
  /** CA certificates to verify the server with (PEM); the system's when absent. */
  tlsCa?: Buffer;
  /** Startup parameters passed on from the client (application_name, client_encoding, …). */
  parameters: Record<string, string>;
  /** A role the session switches to after login (`role@target`); the gateway's user must be a member. */
  role: string | null;
  connectTimeoutMs: number;
}

export interface UpstreamSession {
  socket: Socket;
  /** ParameterStatus messages as the server sent them, to replay to the client. */
  parameterStatus: Buffer[];
  processId: number;
  secretKey: number;
  /** Bytes the server sent after ReadyForQuery in the same read (normally none). */
  rest: Buffer[];
}

/** The server refused the login or the connection failed; `sqlState` when the server said why. */
export class UpstreamError extends Error {
  override name = 'UpstreamError';
  constructor(message: string, readonly sqlState?: string) {
    super(message);
  }
}

export async function openUpstream(target: UpstreamTarget): Promise<UpstreamSession> {
  const socket = await connectSocket(target);
  try {
    return await login(socket, target);
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

async function connectSocket(target: UpstreamTarget): Promise<Socket> {
  const plain = await new Promise<Socket>((resolve, reject) => {
    const socket = tcpConnect({ host: target.host, port: target.port });
    socket.setNoDelay(true);
    const timer = setTimeout(() => socket.destroy(new UpstreamError(`no connection to ${target.host}:${target.port} within ${target.connectTimeoutMs} ms`)), target.connectTimeoutMs);
    socket.once('connect', () => { clearTimeout(timer); resolve(socket); });
    socket.once('error', (err) => { clearTimeout(timer); reject(new UpstreamError(`cannot connect to ${target.host}:${target.port}: ${err.message}`)); });
  });
  if (!target.tls) return plain;
  plain.write(serialize.requestSsl());
  const answer = await new Promise<Buffer>((resolve, reject) => {
    plain.once('data', resolve);
    plain.once('error', reject);
  });
  if (answer.length !== 1 || answer[0] !== 0x53) {
    plain.destroy();
    throw new UpstreamError(`${target.host}:${target.port} refused TLS (upstream.tls is true)`);
  }
  return new Promise<Socket>((resolve, reject) => {
    // The certificate is verified (tls.connect's default) against the host name or IP address in the config.
    const secure = tlsConnect({ socket: plain, servername: isIP(target.host) ? undefined : target.host, host: target.host, ca: target.tlsCa }, () => resolve(secure));
    secure.once('error', (err) => reject(new UpstreamError(`TLS to ${target.host}:${target.port} failed: ${err.message}`)));
  });
}

function login(socket: Socket, target: UpstreamTarget): Promise<UpstreamSession> {
  return new Promise((resolve, reject) => {
    const session: UpstreamSession = { socket, parameterStatus: [], processId: 0, secretKey: 0, rest: [] };
    let sasl: ReturnType<typeof startSession> | undefined;
    let done = false;
    let roleSet = false;

    const fail = (error: Error) => {
      if (done) return;
      done = true;
      socket.off('data', onData);
      reject(error);
    };
    const onMessage = async (message: BackendMessage, raw: Buffer) => {
      switch (message.name) {
        case 'authenticationCleartextPassword':
          socket.write(serialize.password(target.password()));
          return;
        case 'authenticationMD5Password': {
          const salt = (message as unknown as { salt: Buffer }).salt;
          socket.write(serialize.password(await postgresMd5PasswordHash(target.username, target.password(), salt)));
          return;
        }
        case 'authenticationSASL':
          sasl = startSession((message as unknown as { mechanisms: string[] }).mechanisms);
          socket.write(serialize.sendSASLInitialResponseMessage(sasl.mechanism, sasl.response));
          return;
        case 'authenticationSASLContinue':
          await continueSession(sasl!, target.password(), (message as unknown as { data: string }).data);
          socket.write(serialize.sendSCRAMClientFinalMessage(sasl!.response));
          return;
        case 'authenticationSASLFinal':
          finalizeSession(sasl!, (message as unknown as { data: string }).data);
          return;
        case 'authenticationOk':
        case 'notice':
        case 'commandComplete':
          return;
        case 'parameterStatus':
          session.parameterStatus.push(Buffer.from(raw));
          return;
        case 'backendKeyData': {
          const key = message as unknown as { processID: number; secretKey: number };
          session.processId = key.processID;
          session.secretKey = key.secretKey;
          return;
        }
        case 'readyForQuery':
          if (target.role !== null && !roleSet) {
            roleSet = true;
            socket.write(serialize.query(`SET ROLE ${quoteIdentifier(target.role)}`));
            return;
          }
          done = true;
          // The session attaches its own reader; nothing may flow to no one in between.
          socket.pause();
          socket.off('data', onData);
          socket.off('error', fail);
          socket.off('close', onClose);
          resolve(session);
          return;
        case 'error': {
          const error = message as DatabaseError;
          throw new UpstreamError(`the database refused the gateway's login: ${error.message}`, error.code);
        }
        default:
          throw new UpstreamError(`unexpected ${message.name} during the upstream login`);
      }
    };

    // Messages are handled one at a time: SCRAM's proof is computed asynchronously.
    let chain = Promise.resolve();
    const framer = new BackendFramer();
    const onData = (chunk: Buffer) => {
      framer.push(chunk, (_code, raw) => {
        chain = chain
          .then(() => (done ? void session.rest.push(Buffer.from(raw)) : onMessage(decodeBackend(raw), raw)))
          .catch((err: unknown) => fail(err as Error));
      });
    };
    const onClose = () => fail(new UpstreamError('the database closed the connection during login'));
    socket.on('data', onData);
    socket.once('error', fail);
    socket.once('close', onClose);
    socket.write(serialize.startup({ ...target.parameters, user: target.username, database: target.database }));
  });
}


function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
