import { describe, expect, it } from 'vitest';
import { analyseSqlSync, loadSqlParser } from '../../proxies/postgres/sql/analyse.js';
import { SqlNames } from '../../proxies/postgres/session/sql-names.js';

await loadSqlParser();
const facts = (sql: string) => analyseSqlSync(sql);

describe('SqlNames', () => {
  it('refuses reading a cursor or prepared statement made under another revision, until it is made again', () => {
    const names = new SqlNames();
    for (const sql of ['DECLARE k CURSOR WITH HOLD FOR SELECT 1', 'PREPARE p AS SELECT 1']) for (const s of facts(sql)) names.replaces(s, 'r1');
    expect(names.decidedUnderOtherPolicy(facts('FETCH 1 FROM k'), 'r1')).toBeNull();
    expect(names.decidedUnderOtherPolicy(facts('EXECUTE p'), 'r1')).toBeNull();
    expect(names.decidedUnderOtherPolicy(facts('FETCH 1 FROM k'), 'r2')).toMatch(/^cursor "k" was declared under a policy that has since been replaced/);
    expect(names.decidedUnderOtherPolicy(facts('MOVE 1 IN k'), 'r2')).toMatch(/cursor "k"/);
    expect(names.decidedUnderOtherPolicy(facts('CREATE TABLE t AS EXECUTE p'), 'r2')).toMatch(/^prepared statement "p" was prepared under a policy/);
    // A name the session never made in SQL (a function's cursor) is not the gateway's to judge.
    expect(names.decidedUnderOtherPolicy(facts('FETCH 1 FROM other'), 'r2')).toBeNull();
    for (const s of facts('CLOSE k')) names.replaces(s, 'r2');
    expect(names.decidedUnderOtherPolicy(facts('FETCH 1 FROM k'), 'r2')).toBeNull();
    for (const s of facts('DECLARE k CURSOR FOR SELECT 2')) names.replaces(s, 'r2');
    expect(names.decidedUnderOtherPolicy(facts('FETCH 1 FROM k'), 'r2')).toBeNull();
    for (const s of facts('DISCARD ALL')) names.replaces(s, 'r3');
    expect(names.decidedUnderOtherPolicy(facts('EXECUTE p'), 'r3')).toBeNull();
  });
});
