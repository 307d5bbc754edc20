/**
 * The SQLite store's writer thread (node:worker_threads): its own
 * better-sqlite3 connection to the store's file, on which every write of the
 * store runs, so that the fsync of each durable commit blocks this thread
 * instead of the gateway's event loop. Messages are taken one at a time, in
 * the order they were sent, and each is answered once its transaction has
 * committed (synchronous=FULL: the WAL is fsync'd) or has failed.
 *
 * Started by writer.ts; see sqlite-store.ts for the design.
 */
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';
import { SqliteWrites, configureConnection, errorToWire, type WriterMessage, type WriterReply } from './sqlite-writes.js';

const port = parentPort;
if (!port) throw new Error('writer-thread.ts runs as a worker thread of the SQLite store');
const { path } = workerData as { path: string };

// The store's connection created the file, set WAL and migrated the schema.
const db = new Database(path, { fileMustExist: true });
configureConnection(db);
const writes = new SqliteWrites(db);

port.on('message', (message: WriterMessage) => {
  let reply: WriterReply;
  try {
    if (message.op === 'close') {
      db.close();
      reply = { id: message.id, ok: true, value: undefined };
    } else {
      reply = { id: message.id, ok: true, value: writes.execute(message) };
    }
  } catch (err) {
    reply = { id: message.id, ok: false, error: errorToWire(err) };
  }
  port.postMessage(reply);
});
