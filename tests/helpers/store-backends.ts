/**
 * The two store backends, for suites that must pass on both: SQLite files in
 * a temp dir, and a real PostgreSQL server (tests/helpers/postgres.ts) with
 * a fresh database per call to `fresh()`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { StoreConfig } from '../../engine/config/schema.js';
import { Secret } from '../../engine/config/secret.js';
import { startPostgres, type PostgresServer } from './postgres.js';

export interface Backend {
  name: 'sqlite' | 'postgres';
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** The config of an empty database of its own. */
  fresh(): Promise<StoreConfig>;
  /** One statement against the database behind `config`, bypassing the store; its rows. */
  sql(config: StoreConfig, text: string): Promise<Record<string, unknown>[]>;
  /** Any number of statements, bypassing the store. */
  exec(config: StoreConfig, text: string): Promise<void>;
}

export function sqliteBackend(prefix: string): Backend {
  let dir = '';
  let n = 0;
  const open = <T>(config: StoreConfig, work: (db: Database.Database) => T): T => {
    if (!('sqlite' in config)) throw new Error('not sqlite');
    const db = new Database(config.sqlite.path);
    try {
      return work(db);
    } finally {
      db.close();
    }
  };
  return {
    name: 'sqlite',
    async setup() {
      dir = mkdtempSync(join(tmpdir(), prefix));
    },
    async teardown() {
      rmSync(dir, { recursive: true, force: true });
    },
    async fresh() {
      return { sqlite: { path: join(dir, `db-${++n}.db`) } };
    },
    async sql(config, text) {
      return open(config, (db) => {
        const stmt = db.prepare(text);
        return stmt.reader ? (stmt.all() as Record<string, unknown>[]) : (stmt.run(), []);
      });
    },
    async exec(config, text) {
      open(config, (db) => db.exec(text));
    },
  };
}

export function postgresBackend(databasePrefix: string): Backend {
  let server: PostgresServer | null = null;
  let n = 0;
  const admin = async <T>(url: string, work: (c: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.end();
    }
  };
  const urlOf = (config: StoreConfig): string => {
    if (!('postgres' in config)) throw new Error('not postgres');
    return config.postgres.url.reveal();
  };
  return {
    name: 'postgres',
    async setup() {
      server = await startPostgres();
    },
    async teardown() {
      await server?.stop();
    },
    async fresh() {
      const db = `${databasePrefix}_${++n}`;
      await admin(server!.url, (c) => c.query(`CREATE DATABASE ${db}`));
      return { postgres: { url: new Secret(server!.urlFor(db), 'test') } };
    },
    async sql(config, text) {
      return admin(urlOf(config), async (c) => (await c.query(text)).rows);
    },
    async exec(config, text) {
      await admin(urlOf(config), (c) => c.query(text));
    },
  };
}
