import { describe, expect, it } from 'vitest';
import { analyseSqlSync, loadSqlParser } from '../../proxies/postgres/sql/analyse.js';
import { SqlNames } from '../../proxies/postgres/session/sql-names.js';

await loadSqlParser();
const facts = (sql: string) => analyseSqlSync(sql);
/** The relay holds no portal or statement of the name. */
const noProtocolName = () => undefined;

describe('SqlNames', () => {
  it('refuses reading a cursor or prepared statement first made under another revision', () => {
    const names = new SqlNames(10);
    for (const sql of ['DECLARE k CURSOR WITH HOLD FOR SELECT 1', 'PREPARE p AS SELECT 1']) for (const s of facts(sql)) names.replaces(s, 'r1');
    expect(names.decidedUnderOtherPolicy(facts('FETCH 1 FROM k'), 'r1', noProtocolName)).toBeNull();
    expect(names.decidedUnderOtherPolicy(facts('EXECUTE p'), 'r1', noProtocolName)).toBeNull();
    expect(names.decidedUnderOtherPolicy(facts('FETCH 1 FROM k'), 'r2', noProtocolName)).toMatch(/^cursor "k" was declared under a policy that has since been replaced/);
    expect(names.decidedUnderOtherPolicy(facts('MOVE 1 IN k'), 'r2', noProtocolName)).toMatch(/cursor "k"/);
    expect(names.decidedUnderOtherPolicy(facts('CREATE TABLE t AS EXECUTE p'), 'r2', noProtocolName)).toMatch(/^prepared statement "p" was prepared under a policy/);
    // A name the session never made in SQL (a function's cursor) is not the gateway's to judge.
    expect(names.decidedUnderOtherPolicy(facts('FETCH 1 FROM other'), 'r2', noProtocolName)).toBeNull();
    // What follows is sent, not known to have run (a DECLARE of a name still open fails; a CLOSE after an error never
    // runs): the name keeps every revision it was made under.
    for (const sql of ['CLOSE k', 'DECLARE k CURSOR FOR SELECT 2', 'DISCARD ALL', 'DEALLOCATE p']) for (const s of facts(sql)) names.replaces(s, 'r2');
    expect(names.decidedUnderOtherPolicy(facts('FETCH 1 FROM k'), 'r2', noProtocolName)).toMatch(/make it again under another name/);
    expect(names.decidedUnderOtherPolicy(facts('EXECUTE p'), 'r2', noProtocolName)).toMatch(/prepared statement "p"/);
    // A new name is made under the policy of now.
    for (const s of facts('DECLARE k2 CURSOR FOR SELECT 2')) names.replaces(s, 'r2');
    expect(names.decidedUnderOtherPolicy(facts('FETCH 1 FROM k2'), 'r2', noProtocolName)).toBeNull();
  });

  it('keeps no more than max_sql_names names, and after a reload refuses a masked read of a name it did not keep', () => {
    const names = new SqlNames(2);
    for (const sql of ['DECLARE a CURSOR FOR SELECT 1', 'DECLARE b CURSOR FOR SELECT 1']) for (const s of facts(sql)) names.replaces(s, 'r1');
    for (let i = 0; i < 1000; i++) for (const s of facts(`DECLARE c${i} CURSOR FOR SELECT 1`)) names.replaces(s, 'r1');
    // Until the policy is replaced nothing changes, kept or not.
    expect(names.decidedUnderOtherPolicy(facts('FETCH 1 FROM c999'), 'r1', noProtocolName)).toBeNull();
    expect(names.decidedUnderOtherPolicy(facts('FETCH 1 FROM a'), 'r1', noProtocolName)).toBeNull();
    // After it, a name not kept may be one made before: refused, with what to do.
    expect(names.decidedUnderOtherPolicy(facts('FETCH 1 FROM c999'), 'r2', noProtocolName)).toMatch(
      /made more than 2 cursor and prepared-statement names.*max_sql_names.*cursor "c999".*open a new session/);
    expect(names.decidedUnderOtherPolicy(facts('EXECUTE other'), 'r2', noProtocolName)).toMatch(/prepared statement "other"/);
    // A kept name is judged by its own revision still.
    expect(names.decidedUnderOtherPolicy(facts('FETCH 1 FROM a'), 'r2', noProtocolName)).toMatch(/^cursor "a" was declared under a policy/);
    // A protocol portal of the name decided now may be one the server refuses (it holds the old one): still refused.
    expect(names.decidedUnderOtherPolicy(facts('FETCH 1 FROM c999'), 'r2', () => 'r2')).toMatch(/made more than 2 cursor/);
  });

  it('judges a portal or statement the protocol made by the revision the relay decided it under', () => {
    const names = new SqlNames(10);
    const relay = new Map([['portal:k', 'r1'], ['statement:ps', 'r1']]);
    const viaProtocol = (kind: string, name: string) => relay.get(`${kind}:${name}`);
    expect(names.decidedUnderOtherPolicy(facts('FETCH ALL FROM k'), 'r1', viaProtocol)).toBeNull();
    expect(names.decidedUnderOtherPolicy(facts('FETCH ALL FROM k'), 'r2', viaProtocol)).toMatch(/^cursor "k" was bound under a policy that has since been replaced.*bind it again/);
    expect(names.decidedUnderOtherPolicy(facts('MOVE 1 IN k'), 'r2', viaProtocol)).toMatch(/cursor "k" was bound/);
    expect(names.decidedUnderOtherPolicy(facts('EXECUTE ps'), 'r2', viaProtocol)).toMatch(/^prepared statement "ps" was prepared under a policy.*prepare it again/);
    // Either may be what the server holds (a pipelined Bind of a name SQL made is the relay's until refused): both count.
    for (const s of facts('DECLARE k CURSOR WITH HOLD FOR SELECT 1')) names.replaces(s, 'r0');
    expect(names.decidedUnderOtherPolicy(facts('FETCH ALL FROM k'), 'r1', viaProtocol)).toMatch(/^cursor "k" was declared under a policy/);
    // And a protocol name the relay let go of is judged as SQL's are.
    names.note('statement', 'gone', 'r0');
    expect(names.decidedUnderOtherPolicy(facts('EXECUTE gone'), 'r1', noProtocolName)).toMatch(/^prepared statement "gone" was prepared under a policy/);
  });

  // Red-team round 23.
  it('refuses a name made under two revisions under either: a policy reverted has the first one\'s revision again', () => {
    const names = new SqlNames(10);
    for (const s of facts('DECLARE c CURSOR WITH HOLD FOR SELECT id FROM customers')) names.replaces(s, 'masked');
    for (const sql of ['CLOSE c', 'DECLARE c CURSOR WITH HOLD FOR SELECT upper(name) FROM customers']) for (const s of facts(sql)) names.replaces(s, 'unmasked');
    expect(names.decidedUnderOtherPolicy(facts('FETCH 3 FROM c'), 'masked', noProtocolName)).toMatch(/^cursor "c" was declared under a policy that has since been replaced/);
    expect(names.decidedUnderOtherPolicy(facts('FETCH 3 FROM c'), 'unmasked', noProtocolName)).toMatch(/^cursor "c"/);
  });

  it('keeps a protocol name as the server keys it: its first 63 bytes, which is what SQL names it by', () => {
    const names = new SqlNames(10);
    const long = 's'.repeat(70);
    names.note('statement', long, 'r1');
    names.note('portal', `${'p'.repeat(63)}${'x'.repeat(900_000)}`, 'r1');
    expect(names.decidedUnderOtherPolicy(facts(`EXECUTE ${long}`), 'r2', noProtocolName)).toMatch(/^prepared statement "s{63}" was prepared under a policy/);
    expect(names.decidedUnderOtherPolicy(facts(`FETCH 1 FROM ${'p'.repeat(63)}`), 'r2', noProtocolName)).toMatch(/^cursor "p{63}"/);
  });
});
