/**
 * The Postgres proxy's memory of where masked columns have been found,
 * on a real SQLite store shared by two "gateways" (two histories, as two
 * processes sharing a store would have): what one notes the other reads
 * once its refresh time has passed, places are written once, and each
 * database keeps its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore } from '../../engine/store/open-store.js';
import type { MaskedColumnPlace, Store } from '../../engine/store/store.js';
import { ColumnHistories, type ColumnPlaceStore } from '../../proxies/postgres/masking/column-history.js';

let dir: string;
let store: Store;
let writes: Array<{ scope: string; places: readonly MaskedColumnPlace[] }>;
let counting: ColumnPlaceStore;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-column-history-'));
  store = await openStore({ sqlite: { path: join(dir, 'gatehouse.db') } }, pino({ level: 'silent' }));
  writes = [];
  counting = {
    noteMaskedColumnPlaces: (scope, places) => {
      writes.push({ scope, places });
      return store.noteMaskedColumnPlaces(scope, places);
    },
    maskedColumnPlaces: (scope) => store.maskedColumnPlaces(scope),
  };
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const origin = (key: string) => ({ key, table: 'public.customers', lastAttnum: 6 });
const places = (list: readonly MaskedColumnPlace[]) => list.map((p) => `${p.rule_column}@${p.table_oid}:${p.attnum}`);

describe('column history', () => {
  it('writes a place once, and reads what another gateway noted after its refresh time', async () => {
    const ours = new ColumnHistories(counting, 50).of('orders-db', '7714/16384');
    const theirs = new ColumnHistories(counting, 50).of('orders-db', '7714/16384');
    expect(await ours.all()).toEqual([]);

    await ours.note('public.customers.ssn', [origin('16390:4'), origin('16402:4')]);
    await ours.note('public.customers.ssn', [origin('16390:4')]);
    expect(writes.map((w) => w.places.length)).toEqual([2]);
    expect(writes[0]!.scope).toBe('7714/16384');
    expect(places(await ours.all())).toEqual(['public.customers.ssn@16390:4', 'public.customers.ssn@16402:4']);

    await theirs.note('public.customers.ssn', [origin('16390:4'), origin('16390:7')]);
    // Both were written: theirs did not know ours yet; the store keeps the first noting of 16390:4.
    expect(writes.map((w) => w.places.length)).toEqual([2, 2]);
    expect(places(await ours.all())).not.toContain('public.customers.ssn@16390:7');
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(places(await ours.all())).toEqual(['public.customers.ssn@16390:4', 'public.customers.ssn@16390:7', 'public.customers.ssn@16402:4']);
  });

  it('lets go of a place forgotten in the store (gatehouse masking forget) after its refresh time', async () => {
    const history = new ColumnHistories(counting, 50).of('orders-db', '7714/16384');
    await history.note('public.customers.ssn', [origin('16390:4'), origin('16402:4')]);
    expect(await store.forgetMaskedColumnPlace('7714/16384', 16402, 4)).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(places(await history.all())).toEqual(['public.customers.ssn@16390:4']);
    // Found there again (the rule's column is there once more), it is noted again.
    await history.note('public.customers.ssn', [origin('16402:4')]);
    expect(places(await store.maskedColumnPlaces('7714/16384'))).toEqual(['public.customers.ssn@16390:4', 'public.customers.ssn@16402:4']);
  });

  it('keeps each database apart, shared by the targets that reach it; per target where the cluster is unknown', async () => {
    const histories = new ColumnHistories(counting, 0);
    await histories.of('orders-db', '7714/16384').note('public.customers.ssn', [origin('16390:4')]);
    expect(await histories.of('orders-db', '9999/16384').all()).toEqual([]);
    expect(histories.of('reports-db', '7714/16384')).toBe(histories.of('orders-db', '7714/16384'));
    expect(places(await new ColumnHistories(counting, 0).of('reports-db', '7714/16384').all())).toEqual(['public.customers.ssn@16390:4']);
    await histories.of('orders-db', 'unknown/16384').note('public.customers.ssn', [origin('16390:5')]);
    expect(await histories.of('reports-db', 'unknown/16384').all()).toEqual([]);
    expect(writes.at(-1)!.scope).toBe('orders-db:unknown/16384');
  });

  it('fails when the store cannot be read or written, so the plan is not compiled without it', async () => {
    const history = new ColumnHistories(counting, 0).of('orders-db', '7714/16384');
    await store.close();
    await expect(history.all()).rejects.toThrow();
    await expect(history.note('public.customers.ssn', [origin('16390:4')])).rejects.toThrow();
    store = await openStore({ sqlite: { path: join(dir, 'gatehouse.db') } }, pino({ level: 'silent' }));
  });
});
