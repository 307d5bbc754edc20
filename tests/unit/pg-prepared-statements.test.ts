import { describe, expect, it } from 'vitest';
import { PreparedStatements } from '../../proxies/postgres/session/prepared-statements.js';
import type { PreparedStatement } from '../../proxies/postgres/session/statement-state.js';

function statement(name: string, sql: string): PreparedStatement {
  return { name, sql, paramTypes: [], preparedUnder: null, columns: null, columnsIn: -1, decision: {} as never, decisionId: 'd', audit: null, approvalId: null, statements: [], masking: null };
}

function held(statements: PreparedStatements, name: string, sql: string): void {
  statements.set(name, statement(name, sql));
}

describe('PreparedStatements: the caps on what a session holds', () => {
  it('counts named statements only: the unnamed one replaces itself', () => {
    const statements = new PreparedStatements({ maxStatements: 2, maxBytes: 1024 });
    held(statements, 'a', 'SELECT 1');
    held(statements, '', 'SELECT 2');
    held(statements, '', 'SELECT 3');
    expect(statements.overCap('b', 'SELECT 4')).toBeNull();
    held(statements, 'b', 'SELECT 4');
    expect(statements.overCap('c', 'SELECT 5')).toMatch(/already holds 2 named prepared statements.*max_prepared_statements \(2\).*DEALLOCATE or Close/);
    // A name already held takes no new slot; nor does the unnamed statement.
    expect(statements.overCap('a', 'SELECT 6')).toBeNull();
    expect(statements.overCap('', 'SELECT 7')).toBeNull();
  });

  it('counts the bytes of SQL and names, a replaced statement once', () => {
    const statements = new PreparedStatements({ maxStatements: 100, maxBytes: 20 });
    held(statements, 'ab', 'SELECT 1'); // 10 bytes
    expect(statements.overCap('cd', 'SELECT 22')).toMatch(/would hold 21 bytes of SQL and names, over listeners\.postgres\.max_prepared_statement_bytes \(20\)/);
    expect(statements.overCap('cd', 'SELECT 2')).toBeNull();
    expect(statements.overCap('ab', 'SELECT 123456789')).toBeNull(); // 18 bytes in place of 10
    held(statements, 'ab', 'SELECT 123456789');
    expect(statements.overCap('c', 'x')).toBeNull();
    expect(statements.overCap('c', 'xy')).not.toBeNull();
    // UTF-8 bytes, not characters.
    held(statements, 'ab', 'SELECT 1');
    expect(statements.overCap('é', 'SELECT 1')).toBeNull();
    expect(statements.overCap('é', 'SELECT é')).not.toBeNull();
  });

  it('frees slots and bytes on delete and clear, as Close, DEALLOCATE and DISCARD ALL do', () => {
    const statements = new PreparedStatements({ maxStatements: 1, maxBytes: 1024 });
    held(statements, 'a', 'SELECT 1');
    expect(statements.overCap('b', 'SELECT 2')).not.toBeNull();
    expect(statements.delete('b')).toBe(false);
    expect(statements.overCap('b', 'SELECT 2')).not.toBeNull();
    expect(statements.delete('a')).toBe(true);
    expect(statements.overCap('b', 'SELECT 2')).toBeNull();
    held(statements, 'b', 'SELECT 2');
    statements.clear();
    expect(statements.size).toBe(0);
    expect(statements.overCap('c', 'x'.repeat(1023))).toBeNull();
    expect(statements.overCap('c', 'x'.repeat(1024))).not.toBeNull();
  });
});
