import { describe, expect, it } from 'vitest';
import { CountedMap, type CountedKind } from '../../proxies/postgres/session/counted-map.js';
import { Portals } from '../../proxies/postgres/session/portals.js';
import { PreparedStatements } from '../../proxies/postgres/session/prepared-statements.js';
import type { PreparedStatement } from '../../proxies/postgres/session/statement-state.js';

function statement(name: string, sql: string): PreparedStatement {
  return { name, sql, paramTypes: [], preparedUnder: null, decidedUnder: null, columns: null, columnsIn: -1, decision: {} as never, decisionId: 'd', audit: null, approvalId: null, statements: [], masking: null };
}

function held(statements: PreparedStatements, name: string, sql: string): void {
  statements.set(name, statement(name, sql));
}

function bound(portals: Portals, name: string, of: PreparedStatement): void {
  portals.set(name, { name, statement: of, rows: null, describedIn: null, boundIn: 0 });
}

describe('CountedMap: named entries and their bytes, as the kind measures them', () => {
  const kind: CountedKind<{ name: string; size: number }> = {
    plural: 'things', singular: 'thing', bytes: (entry) => entry.size, measured: 'stuff',
    maxNamedKey: 'max_things', maxBytesKey: 'max_thing_bytes', remedy: 'drop some',
  };

  it('names the kind, its caps and the remedy; the unnamed entry takes no slot but its bytes count', () => {
    const things = new CountedMap(kind, { maxNamed: 1, maxBytes: 10 });
    things.set('', { name: '', size: 4 });
    things.set('a', { name: 'a', size: 4 });
    expect(things.overCap({ name: 'b', size: 1 })).toBe('the session already holds 1 named things, the most listeners.postgres.max_things (1) allows; drop some (or use the unnamed thing)');
    expect(things.overCap({ name: '', size: 6 })).toBeNull(); // in place of the unnamed one's 4
    expect(things.overCap({ name: 'a', size: 7 })).toBe("the session's things would hold 11 bytes of stuff, over listeners.postgres.max_thing_bytes (10); drop some");
    things.delete('');
    expect(things.overCap({ name: 'a', size: 10 })).toBeNull();
  });
});

describe('PreparedStatements: the caps on what a session holds', () => {
  it('counts named statements only: the unnamed one replaces itself', () => {
    const statements = new PreparedStatements({ maxNamed: 2, maxBytes: 1024 });
    held(statements, 'a', 'SELECT 1');
    held(statements, '', 'SELECT 2');
    held(statements, '', 'SELECT 3');
    expect(statements.overCap({ name: 'b', sql: 'SELECT 4' })).toBeNull();
    held(statements, 'b', 'SELECT 4');
    expect(statements.overCap({ name: 'c', sql: 'SELECT 5' })).toMatch(/already holds 2 named prepared statements.*max_prepared_statements \(2\).*DEALLOCATE or Close/);
    // A name already held takes no new slot; nor does the unnamed statement.
    expect(statements.overCap({ name: 'a', sql: 'SELECT 6' })).toBeNull();
    expect(statements.overCap({ name: '', sql: 'SELECT 7' })).toBeNull();
  });

  it('counts the bytes of SQL and names, a replaced statement once', () => {
    const statements = new PreparedStatements({ maxNamed: 100, maxBytes: 20 });
    held(statements, 'ab', 'SELECT 1'); // 10 bytes
    expect(statements.overCap({ name: 'cd', sql: 'SELECT 22' })).toMatch(/would hold 21 bytes of SQL and names, over listeners\.postgres\.max_prepared_statement_bytes \(20\)/);
    expect(statements.overCap({ name: 'cd', sql: 'SELECT 2' })).toBeNull();
    expect(statements.overCap({ name: 'ab', sql: 'SELECT 123456789' })).toBeNull(); // 18 bytes in place of 10
    held(statements, 'ab', 'SELECT 123456789');
    expect(statements.overCap({ name: 'c', sql: 'x' })).toBeNull();
    expect(statements.overCap({ name: 'c', sql: 'xy' })).not.toBeNull();
    // UTF-8 bytes, not characters.
    held(statements, 'ab', 'SELECT 1');
    expect(statements.overCap({ name: 'é', sql: 'SELECT 1' })).toBeNull();
    expect(statements.overCap({ name: 'é', sql: 'SELECT é' })).not.toBeNull();
  });

  it('frees slots and bytes on delete and clear, as Close, DEALLOCATE and DISCARD ALL do', () => {
    const statements = new PreparedStatements({ maxNamed: 1, maxBytes: 1024 });
    held(statements, 'a', 'SELECT 1');
    expect(statements.overCap({ name: 'b', sql: 'SELECT 2' })).not.toBeNull();
    expect(statements.delete('b')).toBe(false);
    expect(statements.overCap({ name: 'b', sql: 'SELECT 2' })).not.toBeNull();
    expect(statements.delete('a')).toBe(true);
    expect(statements.overCap({ name: 'b', sql: 'SELECT 2' })).toBeNull();
    held(statements, 'b', 'SELECT 2');
    statements.clear();
    expect(statements.size).toBe(0);
    expect(statements.overCap({ name: 'c', sql: 'x'.repeat(1023) })).toBeNull();
    expect(statements.overCap({ name: 'c', sql: 'x'.repeat(1024) })).not.toBeNull();
  });
});

describe('Portals: the caps on the portals a session holds', () => {
  const big = statement('s', `SELECT '${'x'.repeat(1000)}'`);

  it('counts named portals, and the bytes of their names only: the statement is shared, not copied', () => {
    const portals = new Portals({ maxNamed: 2, maxBytes: 8 });
    bound(portals, 'p1', big);
    bound(portals, '', big);
    expect(portals.overCap({ name: 'p2' })).toBeNull();
    bound(portals, 'p2', big);
    expect(portals.overCap({ name: 'p3' })).toMatch(/already holds 2 named portals.*listeners\.postgres\.max_portals \(2\).*Close portals no longer used, or end the transaction/);
    expect(portals.overCap({ name: 'p1' })).toBeNull();
    expect(portals.overCap({ name: '' })).toBeNull();
    portals.delete('p1');
    expect(portals.overCap({ name: 'p3' })).toBeNull();
    // p2 and the new name: 2 + 7 bytes.
    expect(portals.overCap({ name: 'p345678' })).toMatch(/portals would hold 9 bytes of names, over listeners\.postgres\.max_prepared_statement_bytes \(8\)/);
    portals.clear();
    expect(portals.overCap({ name: 'é'.repeat(4) })).toBeNull();
    expect(portals.overCap({ name: 'é'.repeat(4) + 'x' })).not.toBeNull();
  });
});
