/**
 * A real PostgreSQL server for tests, from Debian's `postgresql` package
 * (`make system-deps` installs it). Each call starts its own server in its
 * own temp dir, on its own port, with its unix socket inside that dir, so
 * several test files can each start one at the same time.
 *
 * initdb refuses to run as root; as root (CI) the server runs as the
 * `postgres` OS user, which owns the temp dir.
 *
 * Missing binaries are an error, never a skip: a test that needs PostgreSQL
 * must fail where PostgreSQL is absent.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PG_ROOT = '/usr/lib/postgresql';
const SERVER_USER = 'postgres';

export interface PostgresServer {
  /** Superuser URL of the `postgres` database, trust auth over TCP on 127.0.0.1. */
  url: string;
  /** A URL for another database on the same server. */
  urlFor(database: string): string;
  stop(): Promise<void>;
}

/** The newest installed major version's bin directory. */
export function postgresBinDir(): string {
  const versions = existsSync(PG_ROOT)
    ? readdirSync(PG_ROOT)
        .filter((v) => /^\d+$/.test(v) && existsSync(join(PG_ROOT, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error(`PostgreSQL server binaries not found (${PG_ROOT}/<version>/bin/initdb). Install them with \`make system-deps\` (Debian package "postgresql").`);
  }
  return join(PG_ROOT, versions[0]!, 'bin');
}

function serverUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  try {
    const uid = Number(execFileSync('id', ['-u', SERVER_USER], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', SERVER_USER], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error(`running as root, and initdb refuses root, but there is no "${SERVER_USER}" OS user to run PostgreSQL as (the Debian "postgresql" package creates it)`);
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Servers still running, stopped synchronously if the test process exits without stop(). */
const running = new Set<() => void>();
let exitHookInstalled = false;
function onExit(stopNow: () => void): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => running.forEach((stop) => stop()));
  }
  running.add(stopNow);
  return () => running.delete(stopNow);
}

export interface PostgresOptions {
  /** pg_hba.conf lines put before the default trust rules, e.g. to make a role log in with SCRAM or MD5. */
  hba?: string[];
  /** More server settings, e.g. ["-c ssl=on"]; paths in them must be readable by the server's OS user. */
  serverOptions?: string[];
}

export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  const owner = serverUser();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-pg-'));
  const data = join(dir, 'data');
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const asServer = (tool: string, args: string[]) =>
    owner ? run('runuser', ['-u', SERVER_USER, '--', join(bin, tool), ...args]) : run(join(bin, tool), args);

  try {
    // The server's own fsync stays on; only initdb's final sync of a throwaway
    // cluster is skipped.
    await asServer('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions']);
    if (options.hba?.length) {
      const hba = join(data, 'pg_hba.conf');
      writeFileSync(hba, `${options.hba.join('\n')}\n${readFileSync(hba, 'utf8')}`);
    }
    // A free port can be taken between probing and binding by another test
    // file's server; then try another.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const log = join(dir, `server-${attempt}.log`);
      const flags = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=50 ${(options.serverOptions ?? []).join(' ')}`;
      try {
        await asServer('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', '-o', flags, 'start']);
      } catch (err) {
        const serverLog = existsSync(log) ? readFileSync(log, 'utf8') : '';
        if (attempt < 5 && /could not (bind|create listen)|Address already in use/i.test(serverLog)) continue;
        throw new Error(`pg_ctl start failed: ${(err as Error).message}\n${serverLog}`, { cause: err });
      }
      const urlFor = (database: string) => `postgresql://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`;
      const forget = onExit(() => {
        try {
          execFileSync(owner ? 'runuser' : join(bin, 'pg_ctl'), [...(owner ? ['-u', SERVER_USER, '--', join(bin, 'pg_ctl')] : []), '-D', data, '-m', 'immediate', 'stop'], { stdio: 'ignore' });
        } catch {
          // best effort on the way out
        }
        rmSync(dir, { recursive: true, force: true });
      });
      let stopped = false;
      return {
        url: urlFor('postgres'),
        urlFor,
        async stop() {
          if (stopped) return;
          stopped = true;
          forget();
          try {
            await asServer('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        },
      };
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
