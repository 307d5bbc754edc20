/**
 * Which session changes end approvals in a session (sessionChangeBeyondApproval):
 * those that change what later statements do and that an approval cannot
 * show, and not those drivers make at connect.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { analyseSqlSync, loadSqlParser } from '../../proxies/postgres/sql/analyse.js';
import { sessionChangeBeyondApproval } from '../../proxies/postgres/sql/reading-settings.js';

beforeAll(() => loadSqlParser());

const change = (sql: string) => analyseSqlSync(sql).map(sessionChangeBeyondApproval);

describe('sessionChangeBeyondApproval', () => {
  it.each([
    ['SET search_path = archive, public', 'search_path'],
    ['SET ROLE auditor', 'role'],
    ['SET transform_null_equals = on', 'transform_null_equals'],
    ['RESET ALL', 'RESET ALL'],
    ['DISCARD ALL', 'DISCARD'],
    ["SELECT set_config('array_nulls', 'off', false)", 'set_config'],
  ])('%s changes what statements do: %s', (sql, what) => {
    expect(change(sql)).toEqual([what]);
  });

  it.each([
    "SET client_encoding = 'UTF8'", 'SET extra_float_digits = 3', "SET application_name = 'psql'", "SET datestyle = 'ISO, DMY'",
    'SET TIME ZONE UTC', 'SET statement_timeout = 5000', 'SET enable_seqscan = off', 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE',
    'SELECT 1',
  ])('%s does not', (sql) => {
    expect(change(sql)).toEqual([null]);
  });
});
