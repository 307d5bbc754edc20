import { describe, expect, it } from 'vitest';
import { analyseSqlSync, loadSqlParser } from '../../proxies/postgres/sql/analyse.js';
import { SqlPrepared } from '../../proxies/postgres/session/sql-prepared.js';

await loadSqlParser();
const send = (prepared: SqlPrepared, sql: string) => { for (const s of analyseSqlSync(sql)) prepared.replaces(s); };

describe('SqlPrepared', () => {
  it('keeps every PREPARE of a name: the proxy cannot tell which one the server holds', () => {
    const prepared = new SqlPrepared(1024 * 1024);
    send(prepared, 'PREPARE p AS SELECT id FROM customers');
    send(prepared, 'DEALLOCATE p');
    send(prepared, 'PREPARE p AS SELECT ssn FROM people');
    expect(prepared.preparedAs('p')!.map((s) => s.tables.map((t) => t.name))).toEqual([['customers'], ['people']]);
    expect(prepared.preparedAs('never')).toBeUndefined();
    // What a protocol statement the relay let go of runs is added to what the name may run.
    const [parsed] = analyseSqlSync('SELECT email FROM contacts');
    prepared.note('p', [parsed!]);
    expect(prepared.preparedAs('p')!.map((s) => s.tables.map((t) => t.name))).toEqual([['customers'], ['people'], ['contacts']]);
  });

  it('keeps no more than its bytes, and then no longer knows what the name runs', () => {
    const prepared = new SqlPrepared(200);
    send(prepared, 'PREPARE small AS SELECT 1');
    send(prepared, 'PREPARE big AS SELECT * FROM wide_one, wide_two, wide_three');
    expect(prepared.preparedAs('small')).toHaveLength(1);
    expect(prepared.preparedAs('big')).toBeNull();
    // A name once not kept stays unknown, even for a PREPARE that would fit.
    send(prepared, 'PREPARE big AS SELECT 1');
    expect(prepared.preparedAs('big')).toBeNull();
  });
});
