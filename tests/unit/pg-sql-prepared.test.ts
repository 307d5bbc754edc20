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

  // Red-team round 23: names of ~900 KB that the server keys by their first 63 bytes grew the gateway to its heap limit.
  it('keeps names as the server keys them, and counts them in its bytes', () => {
    const [parsed] = analyseSqlSync('SELECT upper(name) FROM customers');
    const prepared = new SqlPrepared(4096);
    prepared.note('s'.repeat(70), [parsed!]);
    expect(prepared.preparedAs('s'.repeat(63))).toHaveLength(1);
    // A thousand names of 100 KB that share their first 63 bytes are one name on the server, and here.
    for (let i = 0; i < 1000; i++) prepared.note(`${'q'.repeat(63)}${'x'.repeat(100_000)}${i}`, []);
    expect(prepared.preparedAs('q'.repeat(63))).toEqual([]);
  });

  it('past its bytes keeps no new name, and no longer knows what any name it has not kept runs', () => {
    const [parsed] = analyseSqlSync('SELECT upper(name) FROM customers');
    const prepared = new SqlPrepared(1024);
    for (let i = 0; i < 100; i++) prepared.note(`n${i}`, [parsed!]);
    expect(prepared.preparedAs('n0')).toHaveLength(1);
    expect(prepared.preparedAs('n99')).toBeNull();
    expect(prepared.preparedAs('never')).toBeNull();
  });
});
