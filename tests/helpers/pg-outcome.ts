import type pg from 'pg';

/** What a query sent to the proxy came to: its rows, or the server's (or the gateway's) error, with every field a value could hide in. */
export interface Outcome {
  rows: Record<string, unknown>[] | null;
  error: { code: string; message: string; detail?: string; hint?: string; where?: string; position?: string } | null;
}

/** Runs a query and returns its outcome instead of throwing, so a test can check denies and leaks alike. */
export async function outcome(client: pg.Client, query: string | pg.QueryConfig): Promise<Outcome> {
  try {
    const result = await client.query(query as pg.QueryConfig);
    return { rows: result.rows as Record<string, unknown>[], error: null };
  } catch (err) {
    const e = err as pg.DatabaseError;
    return { rows: null, error: { code: e.code ?? '', message: e.message, detail: e.detail, hint: e.hint, where: e.where, position: e.position } };
  }
}
