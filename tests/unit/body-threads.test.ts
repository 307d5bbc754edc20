/**
 * BodyThreads: bodies read on worker threads, with what crosses between
 * threads (a refusal's reason, a Buffer, the mask counts) as the caller on
 * the main thread needs it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { BodyRefused } from '../../ext-authz/process/body.js';
import { BodyThreads } from '../../ext-authz/process/body-threads.js';

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
