/**
 * BodyThreads: bodies read on worker threads, with what crosses between
 * threads (a refusal's reason, a Buffer, the mask counts) as the caller on
 * the main thread needs it; reads dropped when their exchange goes, and
 * bodies refused when too many already wait.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BodyRefused } from '../../ext-authz/process/body.js';
import { BodyReadAborted, BodyThreads } from '../../ext-authz/process/body-threads.js';

const threads = new BodyThreads({ hashKey: 'a-body-threads-test-hash-key-32-bytes', threads: 1, maxHeapMb: 64 });
const json = { contentType: 'application/json', contentEncoding: '' };
const options = { maxBytes: 64 * 1024 * 1024, record: true, secrets: [] };

afterAll(() => threads.close());

describe('BodyThreads', () => {
  it('masks on a thread and answers the body as a Buffer, with what was masked', async () => {
    const { outcome, masked } = await threads.read(Buffer.from('{"email":"ada@example.com","id":1}'), json, [{ field: 'email', strategy: 'redact' }], options);
    expect(Buffer.isBuffer(outcome.replacement)).toBe(true);
    expect(outcome.replacement!.toString()).toBe('{"email":"[REDACTED]","id":1}');
    expect(masked).toEqual([{ column: 'email', detector: null, count: 1 }]);
    // The counts are the body's own: the same plan, read again, starts from none.
    expect((await threads.read(Buffer.from('{"id":2}'), json, [{ field: 'email', strategy: 'redact' }], options)).masked).toEqual([]);
  });

  it('throws a refusal made on the thread as BodyRefused, with its reason', async () => {
    const read = threads.read(Buffer.from('{"customers": ['), json, [{ field: 'customers[*].email', strategy: 'redact' }], options);
    await expect(read).rejects.toBeInstanceOf(BodyRefused);
    await expect(read).rejects.toThrow('the body is declared as JSON but is not valid JSON');
  });

  it('refuses a body that needs more heap than a thread may have, and goes on reading the next', async () => {
    // Parsed, an array of a million small objects takes well over 64 MiB.
    const big = Buffer.from(`[${Array.from({ length: 1_000_000 }, (_, i) => `{"email":"u${i}@example.com"}`).join(',')}]`);
    const read = threads.read(big, json, [{ field: '$[*].email', strategy: 'redact' }], options);
    await expect(read).rejects.toBeInstanceOf(BodyRefused);
    await expect(read).rejects.toThrow('more than the 64 MiB a body thread may use');
    const { outcome } = await threads.read(Buffer.from('{"email":"bob@example.com"}'), json, [{ field: 'email', strategy: 'redact' }], options);
    expect(outcome.replacement!.toString()).toBe('{"email":"[REDACTED]"}');
  }, 60_000);
});

describe('BodyThreads: reads whose exchange is gone, and a bounded queue', () => {
  // One thread, one body that may wait: what waits and what reads is known at every step.
  const one = new BodyThreads({ hashKey: 'a-body-threads-test-hash-key-32-bytes', threads: 1, maxQueue: 1 });
  const ndjson = { contentType: 'application/x-ndjson', contentEncoding: '' };
  const fieldRule = [{ field: 'email', strategy: 'redact' as const }];
  /** Cheap to send, slow to read under a field rule (round 22 sent 5.6M lines, 13 s): about a second per million lines here. */
  const slowBody = (lines: number) => Buffer.from('{}\n'.repeat(lines));
  const small = () => one.read(Buffer.from('{"email":"ada@example.com"}'), json, fieldRule, options);

  beforeAll(async () => {
    // The thread is up before the tests count on a read going to it at once.
    await small();
  });
  afterAll(() => one.close());

  it('drops a waiting read whose signal aborts: out of the queue at once, never read, and the pool reads the next body', async () => {
    let slowDone = false;
    const slow = one.read(slowBody(1_000_000), ndjson, fieldRule, options).finally(() => { slowDone = true; });
    const gone = new AbortController();
    const waiting = one.read(Buffer.from('{"email":"bob@example.com"}'), json, fieldRule, options, gone.signal);
    expect(one.reading).toBe(2);
    gone.abort('the exchange went');
    await expect(waiting).rejects.toBeInstanceOf(BodyReadAborted);
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });
    // Out of the queue while the slow body is still being read, not answered after it.
    expect(slowDone).toBe(false);
    expect(one.reading).toBe(1);
    // A signal already aborted never queues at all.
    await expect(one.read(Buffer.from('{}'), json, fieldRule, options, AbortSignal.abort())).rejects.toBeInstanceOf(BodyReadAborted);
    const third = one.read(Buffer.from('{"email":"cy@example.com"}'), json, fieldRule, options);
    expect((await slow).outcome.replacement).toBeNull();
    expect((await third).outcome.replacement!.toString()).toBe('{"email":"[REDACTED]"}');
    expect(one.reading).toBe(0);
  }, 60_000);

  it('stops a running read whose signal aborts, and the thread reads the next body before the slow one would have finished', async () => {
    const gone = new AbortController();
    let slowFinished = false;
    const [reader] = one.threadIds;
    const slow = one.read(slowBody(4_000_000), ndjson, fieldRule, options, gone.signal);
    slow.then(() => { slowFinished = true; }, () => undefined);
    const next = one.read(Buffer.from('{"email":"dee@example.com"}'), json, fieldRule, options);
    // The slow body holds the only thread; the next one waits for it.
    expect(one.reading).toBe(2);
    gone.abort('the exchange went');
    const { outcome } = await next;
    expect(outcome.replacement!.toString()).toBe('{"email":"[REDACTED]"}');
    expect(slowFinished).toBe(false);
    await expect(slow).rejects.toBeInstanceOf(BodyReadAborted);
    // The thread reading the slow body was stopped mid-read (had it read on, the next body would have waited for it on
    // that same thread): the next was read on the one started in its place.
    expect(one.threadIds).toHaveLength(1);
    expect(one.threadIds).not.toContain(reader);
    expect(one.reading).toBe(0);
  }, 60_000);

  it('refuses a body at once, naming the limit, when every thread is busy and as many bodies wait as may', async () => {
    const gone = new AbortController();
    const slow = one.read(slowBody(4_000_000), ndjson, fieldRule, options, gone.signal);
    const waiting = one.read(Buffer.from('{"email":"eve@example.com"}'), json, fieldRule, options, gone.signal);
    const refused = one.read(Buffer.from('{"email":"fay@example.com"}'), json, fieldRule, options);
    await expect(refused).rejects.toBeInstanceOf(BodyRefused);
    await expect(refused).rejects.toThrow('the body thread is busy and 1 body already waits, the most that may');
    expect(one.reading).toBe(2);
    gone.abort('done');
    await expect(slow).rejects.toBeInstanceOf(BodyReadAborted);
    await expect(waiting).rejects.toBeInstanceOf(BodyReadAborted);
    expect((await small()).outcome.replacement!.toString()).toBe('{"email":"[REDACTED]"}');
  }, 60_000);

  it('waits 16 bodies per thread unless told otherwise, and refuses a thread count that is not a whole number of at least 1', async () => {
    const four = new BodyThreads({ hashKey: undefined, threads: 4 });
    try {
      expect([four.threads, four.maxQueue]).toEqual([4, 64]);
    } finally {
      await four.close();
    }
    expect(() => new BodyThreads({ hashKey: undefined, threads: 0 })).toThrow(RangeError);
  });
});
