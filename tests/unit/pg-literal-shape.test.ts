/**
 * Literal shapes (proxies/postgres/sql/literal-shape.ts) and the
 * StatementDecider memo keyed by them: texts that differ only in inlined
 * constants share one parse, but only where the facts cannot depend on the
 * constants' values.
 */
import fc from 'fast-check';
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AuthorizeRequest, AuthorizeResult } from '../../engine/authorize/authorizer.js';
import { StatementDecider } from '../../proxies/postgres/policy/statement-decider.js';
import { LiteralSettings } from '../../proxies/postgres/session/literal-settings.js';
import { analyseSqlSync, analyseSqlSyncWithShape, loadSqlParser, SqlAnalysisError, type StatementFacts } from '../../proxies/postgres/sql/analyse.js';
import { literalShape } from '../../proxies/postgres/sql/literal-shape.js';

// Counts the decider's parses; the real analysis still runs.
vi.mock('../../proxies/postgres/sql/analyse.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../proxies/postgres/sql/analyse.js')>();
  return { ...actual, analyseSqlSyncWithShape: vi.fn(actual.analyseSqlSyncWithShape) };
});
const parses = vi.mocked(analyseSqlSyncWithShape);

beforeAll(() => loadSqlParser());
beforeEach(() => {
  parses.mockClear();
});

describe('literalShape', () => {
  it('marks integers that fit int32 as \\0i, every other number as \\0f', () => {
    expect(literalShape('SELECT 1, 2147483647, 007')).toBe('SELECT \0i, \0i, \0i');
    expect(literalShape('SELECT 2147483648, 99999999999999999999')).toBe('SELECT \0f, \0f');
    expect(literalShape('SELECT 1.5, 1., .5, 1e3, 1.5E-3, .5e+2')).toBe('SELECT \0f, \0f, \0f, \0f, \0f, \0f');
    // PostgreSQL 16+ forms: the lexer makes them ICONST too when they fit.
    expect(literalShape('SELECT 0x7fffffff, 0X1F, 0o17, 0b101, 1_000')).toBe('SELECT \0i, \0i, \0i, \0i, \0i');
    expect(literalShape('SELECT 0x80000000, 0xffff_ffff_ff, 2_147_483_648, 1_0.5')).toBe('SELECT \0f, \0f, \0f, \0f');
    // A minus sign is an operator, not part of the constant.
    expect(literalShape('SELECT -5, - 2147483648')).toBe('SELECT -\0i, - \0f');
  });

  it('leaves identifiers with digits, parameters and quoted identifiers alone', () => {
    expect(literalShape('SELECT t1.c2, a$1 FROM t1 WHERE c2 = $1 AND c3 = $12')).toBe('SELECT t1.c2, a$1 FROM t1 WHERE c2 = $1 AND c3 = $12');
    expect(literalShape('SELECT "a""1 -- /* $$ \'x\'" FROM t WHERE x = 3')).toBe('SELECT "a""1 -- /* $$ \'x\'" FROM t WHERE x = \0i');
  });

  it("marks standard strings, '' escapes included", () => {
    expect(literalShape("SELECT 'it''s', '', 'é\n1'")).toBe('SELECT \0s, \0s, \0s');
    expect(literalShape("INSERT INTO t VALUES ('x', 2)")).toBe('INSERT INTO t VALUES (\0s, \0i)');
  });

  it('returns a text without constants as it is', () => {
    const sql = 'SELECT a FROM t WHERE b = $1';
    expect(literalShape(sql)).toBe(sql);
  });

  it('keeps whitespace: adjacent strings across a newline are one constant, on one line a syntax error', () => {
    expect(literalShape("SELECT 'a'\n'b'")).toBe('SELECT \0s\n\0s');
    expect(literalShape("SELECT 'a' 'b'")).toBe('SELECT \0s \0s');
    expect(literalShape("SELECT 'a'\n'b'")).not.toBe(literalShape("SELECT 'a' 'b'"));
  });

  it('cannot confuse the jsonb ? operator with a marker', () => {
    expect(literalShape("SELECT 1 FROM t WHERE data ? 'k'")).toBe('SELECT \0i FROM t WHERE data ? \0s');
    expect(literalShape("SELECT 1 FROM t WHERE data ?| array['k']")).toBe('SELECT \0i FROM t WHERE data ?| array[\0s]');
  });

  it.each([
    ['a -- comment', 'SELECT 1 -- x'],
    ['a block comment', 'SELECT /* x */ 1'],
    ['dollar quotes', 'SELECT $$x$$'],
    ['tagged dollar quotes', 'SELECT $tag$x$tag$'],
    ['a lone $', 'SELECT $ 1'],
    ['an E string', "SELECT E'a'"],
    ['an e string', "SELECT e'\\n'"],
    ['a U& string', "SELECT U&'a'"],
    ['a U& identifier (UESCAPE takes a string)', `SELECT U&"d!0061ta" UESCAPE '!' FROM t`],
    ['a bit string', "SELECT B'01'"],
    ['a hex string', "SELECT X'1f'"],
    ['a national string', "SELECT N'a'"],
    ['a string right after a keyword', "SELECT'a'"],
    ['a backslash in a string', "SELECT 'a\\'"],
    ['an unterminated string', "SELECT 'a"],
    ['an unterminated identifier', 'SELECT "a'],
    ['trailing junk after a number', 'SELECT 123abc'],
    ['a number then a dot', 'SELECT 1.2.3'],
    ['a range', 'SELECT 1..2'],
    ['an incomplete exponent', 'SELECT 1e'],
    ['an incomplete hex number', 'SELECT 0x'],
    ['a number after an identifier and a dot', 'SELECT t.5 FROM t'],
    ['junk after a parameter', 'SELECT $1_0'],
    ['FLOAT(p), whose value the grammar reads', 'SELECT 1::FLOAT(3)'],
    ['a NUL', 'SELECT \0i'],
    ['a NUL in a string', "SELECT 'a\0'"],
    ['an over-long text', `SELECT ${'1, '.repeat(6000)}1`],
  ])('returns null for %s', (_what, sql) => {
    expect(literalShape(sql)).toBeNull();
  });
});

// --- Generated DML: same shape, same facts -------------------------------

type Marker = 'i' | 'f' | 's';

/** A literal of a marker class, in each way PostgreSQL can spell it. */
function literal(marker: Marker): fc.Arbitrary<string> {
  const int32 = fc.integer({ min: 0, max: 2147483647 });
  const big = fc.bigInt({ min: 2147483648n, max: 10n ** 30n });
  switch (marker) {
    case 'i':
      return fc.oneof(
        fc.nat(60).map(String),
        int32.map(String),
        int32.map((n) => `0x${n.toString(16)}`),
        fc.integer({ min: 1000, max: 999999 }).map((n) => `${String(n).slice(0, -3)}_${String(n).slice(-3)}`),
      );
    case 'f':
      return fc.oneof(
        big.map(String),
        big.map((n) => `0x${n.toString(16)}`),
        fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => `${a}.${b}`),
        fc.nat().map((b) => `.${b}`),
        fc.tuple(fc.nat(), fc.constantFrom('', '-', '+'), fc.nat(300)).map(([a, sign, e]) => `${a}e${sign}${e}`),
      );
    case 's':
      return fc.string({ unit: 'binary', maxLength: 12 }).filter((s) => !s.includes('\\') && !s.includes('\0')).map((s) => `'${s.replaceAll("'", "''")}'`);
  }
}

const tables = ['orders', 'public.customers', 'accounts', '"Order Items"'];
const columns = ['id', 'amount', 'name', 'c1', '"we""ird"'];

/** A statement skeleton: SQL with § where a literal goes. */
const column = fc.constantFrom(...columns);
const table = fc.constantFrom(...tables);
const predicate: fc.Arbitrary<string> = fc.oneof(
  column.map((c) => `${c} = §`),
  column.map((c) => `${c} > -§`),
  column.map((c) => `${c} IN (§, §, §)`),
  column.map((c) => `${c} BETWEEN § AND §`),
  column.map((c) => `lower(${c}) = §`),
  column.map((c) => `${c}::text = §::text`),
  column.map((c) => `coalesce(${c}, §) <> §`),
  column.map((c) => `${c} ? §`),
  fc.tuple(column, table, column).map(([c, t, d]) => `${c} IN (SELECT ${d} FROM ${t} WHERE ${d} < §)`),
);
const where = fc.tuple(fc.array(predicate, { minLength: 1, maxLength: 3 }), fc.constantFrom(' AND ', ' OR\n ')).map(([ps, op]) => ps.join(op));
const statement: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(column, table, where).map(([c, t, w]) => `SELECT ${c}, § AS k FROM ${t} WHERE ${w} LIMIT §`),
  fc.tuple(column, table, table, where).map(([c, t, u, w]) => `SELECT upper(a.${c}), nextval(§) FROM ${t} a JOIN ${u} b ON a.id = b.id + § WHERE ${w}`),
  fc.tuple(column, table, where).map(([c, t, w]) => `WITH w AS (SELECT ${c} FROM ${t} WHERE ${w}) SELECT * FROM w WHERE ${c} <= §`),
  fc.tuple(column, table).map(([c, t]) => `SELECT set_config(§, §, false), ${c} FROM ${t} ORDER BY ${c} OFFSET §`),
  fc.tuple(column, column, table).map(([c, d, t]) => `INSERT INTO ${t} (${c}, ${d}) VALUES (§, §), (-§, §) RETURNING ${c}`),
  fc.tuple(column, table, where).map(([c, t, w]) => `UPDATE ${t} SET ${c} = § || ${c} WHERE ${w} RETURNING ${c} + §`),
  fc.tuple(table, where).map(([t, w]) => `DELETE FROM ${t} WHERE ${w}`),
  fc.tuple(table, column).map(([t, c]) => `SELECT count(*) FROM (SELECT ${c} FROM ${t} WHERE ${c} = §) s`),
);
const message = fc.array(statement, { minLength: 1, maxLength: 2 }).map((ss) => ss.join(';\n'));

/** Two fillings of one skeleton with literals of the same classes, different values. */
const sameShapePair = message.chain((skeleton) => {
  const parts = skeleton.split('§');
  return fc
    .array(fc.constantFrom<Marker>('i', 'f', 's'), { minLength: parts.length - 1, maxLength: parts.length - 1 })
    .chain((markers) => {
      const fill = fc.tuple(...markers.map(literal)).map((values) => parts.reduce((sql, part, k) => sql + (values[k - 1] ?? '') + part));
      return fc.tuple(fc.constant(skeleton), fill, fill);
    });
});

function outcome(sql: string): StatementFacts[] | string {
  try {
    return analyseSqlSync(sql);
  } catch (error) {
    if (error instanceof SqlAnalysisError) return 'parse error';
    throw error;
  }
}

describe('texts of one literal shape', () => {
  it('have one shape, and the same facts', () => {
    fc.assert(
      fc.property(sameShapePair, ([skeleton, a, b]) => {
        const shape = literalShape(a);
        expect(shape, a).not.toBeNull();
        expect(literalShape(b), b).toBe(shape);
        const facts = outcome(a);
        expect(facts, `${skeleton}\n${a}`).not.toBe('parse error');
        expect(outcome(b), b).toEqual(facts);
        expect(analyseSqlSyncWithShape(a).shapeIndependent).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

/** Places where the grammar takes one class of constant and not another, or reads the value. */
const classSensitive = fc.constantFrom(
  'SELECT 1::int[§]',
  "SELECT interval(§) '1'",
  "SELECT '1'::varchar(§)",
  'SELECT 1::float(§)',
  "SELECT * FROM JSON_TABLE('{}'::jsonb, § COLUMNS (a int))",
  'SELECT § FROM t FETCH FIRST -§ ROWS ONLY',
  // Adjacent strings: one constant across a newline, a syntax error on one line.
  'SELECT §␣§ FROM t WHERE a = §␣§',
);

describe('texts of one literal shape, with any constants', () => {
  it('parse alike and have the same facts, where the grammar cares about the constant class', () => {
    const markers = fc.array(fc.constantFrom<Marker>('i', 'f', 's'), { minLength: 4, maxLength: 4 });
    const filling = (skeleton: string, classes: Marker[]) =>
      fc.tuple(fc.tuple(...classes.map(literal)), fc.constantFrom(' ', '\n', '\t', ' \r\n ')).map(([values, space]) =>
        skeleton.replaceAll('␣', space).split('§').reduce((sql, part, k) => sql + (values[k - 1] ?? '') + part),
      );
    // Mostly the same classes in both texts (so shapes can match), sometimes not.
    const pair = fc.tuple(classSensitive, markers, markers, fc.boolean()).chain(([skeleton, a, b, same]) => fc.tuple(filling(skeleton, a), filling(skeleton, same ? a : b)));
    let compared = 0;
    fc.assert(
      fc.property(pair, ([a, b]) => {
        const shape = literalShape(a);
        if (shape === null || shape !== literalShape(b)) return;
        compared++;
        expect(outcome(b), `${a}\n${b}`).toEqual(outcome(a));
      }),
      { numRuns: 1000 },
    );
    expect(compared).toBeGreaterThan(200);
  });
});

// --- The StatementDecider memo -------------------------------------------

function fakeAuthorizer() {
  const requests: AuthorizeRequest[] = [];
  const result = { decision: { action: 'allow' }, decision_id: 'd', identity: null, approval: null, audit: null } as unknown as AuthorizeResult;
  const authorizer = {
    authorize: async (req: AuthorizeRequest) => {
      requests.push(req);
      return result;
    },
    refuseInvalid: async (req: AuthorizeRequest) => {
      requests.push(req);
      return result;
    },
    policyRevision: () => 'r1',
  };
  return { authorizer, requests };
}

function decider() {
  const { authorizer, requests } = fakeAuthorizer();
  const identity = { sub: 'agent:a', iss: 'urn:test', groups: ['analysts'], agent: true, act: null, claims: {} };
  const decider = new StatementDecider(authorizer, { target: 'db', database: 'orders', role: 'u', identity, sessionId: 's', sourceIp: null, settings: new LiteralSettings() });
  const statements = (k: number) => (requests[k]?.action as { postgres: { statements: StatementFacts[]; text: string } }).postgres;
  return { decider, requests, statements };
}

describe('StatementDecider memo by literal shape', () => {
  it('parses a query once for any inlined constants, sharing facts and cache key', async () => {
    const { decider: d, requests, statements } = decider();
    await d.decide('SELECT * FROM t WHERE id = 1', 'simple');
    await d.decide('SELECT * FROM t WHERE id = 2', 'simple');
    expect(parses).toHaveBeenCalledTimes(1);
    expect(statements(1).statements).toEqual(statements(0).statements);
    expect(statements(1).statements).toEqual(analyseSqlSync('SELECT * FROM t WHERE id = 2'));
    expect(requests[1]?.cacheKey).toBe(requests[0]?.cacheKey);
    // The policy and the audit still see the text that was sent.
    expect(statements(1).text).toBe('SELECT * FROM t WHERE id = 2');
  });

  it('parses each SET: its value is a fact', async () => {
    const { decider: d, requests, statements } = decider();
    await d.decide('SET x = 1', 'simple');
    await d.decide('SET x = 2', 'simple');
    expect(parses).toHaveBeenCalledTimes(2);
    expect(statements(0).statements[0]?.value).toBe('1');
    expect(statements(1).statements[0]?.value).toBe('2');
    expect(requests[1]?.cacheKey).not.toBe(requests[0]?.cacheKey);
  });

  it('never shares a parse error by shape', async () => {
    // Texts of one shape parse alike (that is the point of shapes), so the failure is made up.
    parses.mockImplementationOnce(() => {
      throw new SqlAnalysisError('SQL could not be parsed: made up');
    });
    const { decider: d, statements } = decider();
    const failed = await d.decide('SELECT * FROM t WHERE id = 1', 'simple');
    expect(failed.parseError?.message).toBe('SQL could not be parsed: made up');
    const ok = await d.decide('SELECT * FROM t WHERE id = 2', 'simple');
    expect(ok.parseError).toBeUndefined();
    expect(parses).toHaveBeenCalledTimes(2);
    expect(statements(1).statements).toEqual(analyseSqlSync('SELECT * FROM t WHERE id = 2'));
    // The error stays memoised for its own text only.
    expect((await d.decide('SELECT * FROM t WHERE id = 1', 'simple')).parseError).toBe(failed.parseError);
    expect(parses).toHaveBeenCalledTimes(2);
  });

  it('never memoises SET, BEGIN or EXPLAIN by shape, alone or with a query', async () => {
    const skeleton = fc.constantFrom(
      'SET work_mem = §',
      'SET application_name = §',
      'BEGIN; SELECT §; COMMIT',
      'SELECT §; SET default_transaction_read_only = §',
      'EXPLAIN (ANALYZE §) SELECT * FROM t WHERE id = §',
      'EXPLAIN SELECT §',
    );
    const value = fc.oneof(fc.integer({ min: 0, max: 3 }).map(String), fc.constantFrom("'on'", "'off'", "'x'", "'0'"));
    await fc.assert(
      fc.asyncProperty(skeleton, fc.array(value, { minLength: 2, maxLength: 2 }), fc.array(value, { minLength: 2, maxLength: 2 }), async (sql, [a1, a2], [b1, b2]) => {
        const fill = (v1?: string, v2?: string) => sql.replace('§', v1 ?? '').replace('§', v2 ?? '');
        const [a, b] = [fill(a1, a2), fill(b1, b2)];
        fc.pre(a !== b && literalShape(a) !== null && literalShape(a) === literalShape(b));
        parses.mockClear();
        const { decider: d, statements } = decider();
        const first = await d.decide(a, 'simple');
        const second = await d.decide(b, 'simple');
        expect(parses).toHaveBeenCalledTimes(2);
        if (first.parseError === undefined) expect(statements(0).statements).toEqual(analyseSqlSync(a));
        if (second.parseError === undefined) expect(statements(1).statements).toEqual(analyseSqlSync(b));
      }),
      { numRuns: 100 },
    );
  });
});
