/**
 * Versioned schema migrations for both backends. Each version is listed once
 * with its SQL for each dialect, so the two schemas cannot drift apart in
 * numbering. A migration is never edited once released: add a new version.
 *
 * The ledger is `schema_migrations(version, name, applied_at)`. Each migration
 * runs in its own transaction together with its ledger row, so a crash leaves
 * the database at a known version.
 */

export type Dialect = 'sqlite' | 'postgres';

export interface Migration {
  version: number;
  name: string;
  sql: Record<Dialect, string>;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'audit, checkpoints, approvals',
    sql: {
      // STRICT: SQLite otherwise stores whatever type it is given. Events are
      // ~1 KB, too big for a WITHOUT ROWID table to pay off.
      sqlite: `
        CREATE TABLE audit_records (
          stream TEXT NOT NULL,
          seq INTEGER NOT NULL CHECK (seq > 0),
          prev TEXT NOT NULL,
          hash TEXT NOT NULL,
          time INTEGER NOT NULL,
          event TEXT NOT NULL,
          PRIMARY KEY (stream, seq)
        ) STRICT;
        CREATE TABLE audit_checkpoints (
          id INTEGER PRIMARY KEY,
          stream TEXT NOT NULL,
          seq INTEGER NOT NULL,
          hash TEXT NOT NULL,
          time INTEGER NOT NULL,
          jws TEXT NOT NULL
        ) STRICT;
        CREATE INDEX audit_checkpoints_stream ON audit_checkpoints (stream, seq, time);
        CREATE TABLE approvals (
          id TEXT PRIMARY KEY,
          status TEXT NOT NULL,
          requester_sub TEXT NOT NULL,
          action_hash TEXT NOT NULL,
          expires_at TEXT NOT NULL,
          created_at TEXT NOT NULL,
          version INTEGER NOT NULL,
          doc TEXT NOT NULL
        ) STRICT;
        CREATE INDEX approvals_status_expires ON approvals (status, expires_at);
        CREATE INDEX approvals_requester_action ON approvals (requester_sub, action_hash);
        CREATE INDEX approvals_created ON approvals (created_at, id);
      `,
      // COLLATE "C" on the keys: streams and ids order byte-wise, as in
      // SQLite, whatever the database's locale. event is text, not jsonb:
      // the chain hashes its exact bytes.
      postgres: `
        CREATE TABLE audit_records (
          stream text COLLATE "C" NOT NULL,
          seq bigint NOT NULL CHECK (seq > 0),
          prev text NOT NULL,
          hash text NOT NULL,
          time bigint NOT NULL,
          event text NOT NULL,
          PRIMARY KEY (stream, seq)
        );
        CREATE TABLE audit_checkpoints (
          id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          stream text COLLATE "C" NOT NULL,
          seq bigint NOT NULL,
          hash text NOT NULL,
          time bigint NOT NULL,
          jws text NOT NULL
        );
        CREATE INDEX audit_checkpoints_stream ON audit_checkpoints (stream, seq, time);
        CREATE TABLE approvals (
          id text COLLATE "C" PRIMARY KEY,
          status text NOT NULL,
          requester_sub text NOT NULL,
          action_hash text NOT NULL,
          expires_at timestamptz NOT NULL,
          created_at timestamptz NOT NULL,
          version integer NOT NULL,
          doc jsonb NOT NULL
        );
        CREATE INDEX approvals_status_expires ON approvals (status, expires_at);
        CREATE INDEX approvals_requester_action ON approvals (requester_sub, action_hash);
        CREATE INDEX approvals_created ON approvals (created_at, id);
      `,
    },
  },
  {
    version: 2,
    name: 'session recordings',
    sql: {
      // Times are ms since the epoch, as in audit_records. An entry is JSON
      // text in its session's format; decision is copied out of it so that
      // denies can be counted without parsing. Entries are ~0.3–1 KB and read
      // by (session_id, seq) ranges, so they are clustered on that key.
      sqlite: `
        CREATE TABLE session_recordings (
          id TEXT PRIMARY KEY,
          protocol TEXT NOT NULL,
          format TEXT NOT NULL,
          target TEXT NOT NULL,
          target_kind TEXT NOT NULL,
          sub TEXT NOT NULL,
          act_sub TEXT,
          groups TEXT NOT NULL,
          source_ip TEXT,
          gateway TEXT NOT NULL,
          started_at INTEGER NOT NULL,
          ended_at INTEGER,
          end_reason TEXT,
          dropped_entries INTEGER NOT NULL DEFAULT 0
        ) STRICT;
        CREATE INDEX session_recordings_started ON session_recordings (started_at, id);
        CREATE INDEX session_recordings_target ON session_recordings (target, started_at, id);
        CREATE INDEX session_recordings_sub ON session_recordings (sub, started_at);
        CREATE INDEX session_recordings_act_sub ON session_recordings (act_sub, started_at);
        CREATE TABLE session_entries (
          session_id TEXT NOT NULL,
          seq INTEGER NOT NULL CHECK (seq > 0),
          time INTEGER NOT NULL,
          decision TEXT,
          entry TEXT NOT NULL,
          PRIMARY KEY (session_id, seq)
        ) STRICT, WITHOUT ROWID;
      `,
      postgres: `
        CREATE TABLE session_recordings (
          id text COLLATE "C" PRIMARY KEY,
          protocol text NOT NULL,
          format text NOT NULL,
          target text COLLATE "C" NOT NULL,
          target_kind text NOT NULL,
          sub text NOT NULL,
          act_sub text,
          groups text NOT NULL,
          source_ip text,
          gateway text NOT NULL,
          started_at bigint NOT NULL,
          ended_at bigint,
          end_reason text,
          dropped_entries integer NOT NULL DEFAULT 0
        );
        CREATE INDEX session_recordings_started ON session_recordings (started_at, id);
        CREATE INDEX session_recordings_target ON session_recordings (target, started_at, id);
        CREATE INDEX session_recordings_sub ON session_recordings (sub, started_at);
        CREATE INDEX session_recordings_act_sub ON session_recordings (act_sub, started_at);
        CREATE TABLE session_entries (
          session_id text COLLATE "C" NOT NULL,
          seq bigint NOT NULL CHECK (seq > 0),
          time bigint NOT NULL,
          decision text,
          entry text NOT NULL,
          PRIMARY KEY (session_id, seq)
        );
      `,
    },
  },
  {
    version: 3,
    name: 'session recordings keep the issuer',
    sql: {
      // A subject is unique only within its issuer: who may read a session is decided on both.
      // Sessions recorded before have none, and only recordings.viewer_groups read them.
      sqlite: `
        ALTER TABLE session_recordings ADD COLUMN iss TEXT;
      `,
      postgres: `
        ALTER TABLE session_recordings ADD COLUMN iss text;
      `,
    },
  },
  {
    version: 4,
    name: 'where each approval\'s audit events are',
    sql: {
      // An approval's history as the audit chain holds it, found without reading the chain: a request is
      // spent only if none of its events there ended it, whatever its record in the approvals table says.
      sqlite: `
        CREATE TABLE approval_events (
          approval_id TEXT NOT NULL,
          stream TEXT NOT NULL,
          seq INTEGER NOT NULL,
          PRIMARY KEY (approval_id, stream, seq)
        ) STRICT, WITHOUT ROWID;
      `,
      postgres: `
        CREATE TABLE approval_events (
          approval_id text COLLATE "C" NOT NULL,
          stream text COLLATE "C" NOT NULL,
          seq bigint NOT NULL,
          PRIMARY KEY (approval_id, stream, seq)
        );
      `,
    },
  },
  {
    version: 5,
    name: 'where masked columns have been found',
    sql: {
      // A masked column renamed, and a new column given its name, is still the one holding the values:
      // the gateway finds it again by the table OID and attribute number it once had (postgres proxy's
      // column-history.ts), in every session and after a restart. scope: the target and its database.
      sqlite: `
        CREATE TABLE masked_column_places (
          scope TEXT NOT NULL,
          rule_column TEXT NOT NULL,
          table_oid INTEGER NOT NULL,
          attnum INTEGER NOT NULL,
          noted_at INTEGER NOT NULL,
          PRIMARY KEY (scope, rule_column, table_oid, attnum)
        ) STRICT, WITHOUT ROWID;
      `,
      postgres: `
        CREATE TABLE masked_column_places (
          scope text COLLATE "C" NOT NULL,
          rule_column text COLLATE "C" NOT NULL,
          table_oid bigint NOT NULL,
          attnum integer NOT NULL,
          noted_at bigint NOT NULL,
          PRIMARY KEY (scope, rule_column, table_oid, attnum)
        );
      `,
    },
  },
  {
    version: 6,
    name: 'approvals listed by status and counted by requester',
    sql: {
      // GET /v1/approvals pages through one status newest first: (status, created_at, id) walks the index in
      // that order and stops at the page's end. With only (status, expires_at), each page sorted every request
      // of the status, ~130 ms at 47,000 pending on SQLite's one connection, 50 pages a listing.
      // (requester_sub, status, expires_at): a requester's open requests are counted against
      // approvals.max_pending_per_requester before each new one, however many ended ones it has.
      sqlite: `
        CREATE INDEX approvals_status_created ON approvals (status, created_at, id);
        CREATE INDEX approvals_requester_status ON approvals (requester_sub, status, expires_at);
      `,
      postgres: `
        CREATE INDEX approvals_status_created ON approvals (status, created_at, id);
        CREATE INDEX approvals_requester_status ON approvals (requester_sub, status, expires_at);
      `,
    },
  },
];

export interface AppliedMigration {
  version: number;
  name: string;
}

/** What a backend provides so that {@link runMigrations} can drive it. */
export interface MigrationDriver {
  readonly dialect: Dialect;
  /** Runs `work` while no other process migrates the same database. */
  exclusive(work: () => Promise<void>): Promise<void>;
  /** Creates schema_migrations if it does not exist. */
  ensureLedger(): Promise<void>;
  applied(): Promise<AppliedMigration[]>;
  /**
   * Runs the SQL and records the version in one transaction. Returns false
   * when the version turned out to be applied already (by a concurrent
   * process the backend could not exclude beforehand).
   */
  apply(version: number, name: string, sql: string): Promise<boolean>;
}

export const LEDGER_SQL: Record<Dialect, string> = {
  sqlite: `CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
  ) STRICT`,
  postgres: `CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL
  )`,
};

/** The migrations this build would apply to a database at `applied`; throws if the database is ahead or diverged. */
export function pendingMigrations(applied: readonly AppliedMigration[], known: readonly Migration[] = MIGRATIONS): Migration[] {
  const newest = known.at(-1)?.version ?? 0;
  const ahead = applied.filter((m) => m.version > newest);
  if (ahead.length > 0) {
    const top = ahead.reduce((a, b) => (a.version > b.version ? a : b));
    throw new Error(
      `the store's schema is at version ${top.version} ("${top.name}"), newer than this build knows (${newest}); ` +
        'run a gatehouse release at least as new as the one that migrated it, or restore a matching backup',
    );
  }
  const byVersion = new Map(known.map((m) => [m.version, m]));
  for (const m of applied) {
    const ours = byVersion.get(m.version);
    if (ours && ours.name !== m.name) {
      throw new Error(`the store's schema version ${m.version} is "${m.name}", but this build's version ${m.version} is "${ours.name}"; the database was migrated by a different build`);
    }
  }
  const done = new Set(applied.map((m) => m.version));
  return known.filter((m) => !done.has(m.version));
}

export async function runMigrations(driver: MigrationDriver, known: readonly Migration[] = MIGRATIONS): Promise<void> {
  await driver.exclusive(async () => {
    await driver.ensureLedger();
    for (const m of pendingMigrations(await driver.applied(), known)) {
      await driver.apply(m.version, m.name, m.sql[driver.dialect]);
    }
  });
}
