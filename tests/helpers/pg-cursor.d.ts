/** The part of pg-cursor (no published types) that the tests use. */
declare module 'pg-cursor' {
  import type { Connection, Submittable } from 'pg';

  export default class Cursor<Row = Record<string, unknown>> implements Submittable {
    constructor(text: string, values?: unknown[], config?: { rowMode?: 'array' });
    submit(connection: Connection): void;
    read(rows: number): Promise<Row[]>;
    close(): Promise<void>;
  }
}
