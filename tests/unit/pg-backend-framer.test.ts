import { afterEach, describe, expect, it, vi } from 'vitest';
import { BackendFramer } from '../../proxies/postgres/protocol/backend-framer.js';

function message(code: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = code.charCodeAt(0);
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

function frames(chunks: Buffer[]): Array<[string, Buffer]> {
  const framer = new BackendFramer();
  const out: Array<[string, Buffer]> = [];
  for (const chunk of chunks) framer.push(chunk, (code, m) => out.push([String.fromCharCode(code), Buffer.from(m)]));
  return out;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('BackendFramer', () => {
  const stream = Buffer.concat([message('T', Buffer.from('cols')), message('D', Buffer.from('row one')), message('C', Buffer.from('SELECT 1\0')), message('Z', Buffer.from('I'))]);

  it('gives whole messages however the stream is cut', () => {
    const whole = frames([stream]);
    expect(whole.map(([code]) => code).join('')).toBe('TDCZ');
    for (let cut = 1; cut < stream.length; cut++) {
      expect(frames([stream.subarray(0, cut), stream.subarray(cut)])).toEqual(whole);
    }
    expect(frames([...stream].map((b) => Buffer.from([b])))).toEqual(whole);
  });

  it('copies a large message once, not once per chunk it arrives in', () => {
    const big = message('D', Buffer.alloc(8 * 1024 * 1024, 0x78));
    const chunks: Buffer[] = [];
    for (let at = 0; at < big.length; at += 65536) chunks.push(big.subarray(at, at + 65536));
    const concat = vi.spyOn(Buffer, 'concat');
    const out = frames(chunks);
    const copied = concat.mock.results.reduce((sum, r) => sum + (r.value as Buffer).length, 0);
    concat.mockRestore();
    expect(out).toHaveLength(1);
    expect(out[0]![1].equals(big)).toBe(true);
    // The test's own copy (frames) is not a concat; the framer's is one message's worth.
    expect(copied).toBeLessThanOrEqual(big.length);
  });

  it('refuses a length below 4 rather than loop', () => {
    const bad = Buffer.from([0x44, 0xff, 0xff, 0xff, 0xfe]);
    expect(() => frames([bad])).toThrow(/declares length -2/);
  });
});
