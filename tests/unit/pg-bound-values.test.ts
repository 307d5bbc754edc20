import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { boundValues } from '../../proxies/postgres/policy/bound-values.js';

describe('boundValues: Bind and FunctionCall values as policy and approvers see them', () => {
  it('shows text values as text, binary ones as hex, and SQL NULL as null', () => {
    const values = [Buffer.from('42'), Buffer.from([0, 0, 0, 42]), null];
    expect(boundValues(values, [0, 1, 0])).toEqual([
      { format: 'text', value: '42' },
      { format: 'binary', hex: '0000002a' },
      { format: 'text', value: null },
    ]);
  });

  it('names the type the Parse gave a parameter, and leaves it out where the server infers it (0)', () => {
    const values = [Buffer.from('01/02/2026'), Buffer.from('01/02/2026')];
    expect(boundValues(values, [], [1082, 0])).toEqual([
      { format: 'text', type: 1082, value: '01/02/2026' },
      { format: 'text', value: '01/02/2026' },
    ]);
  });

  it('reads the format codes as the protocol does: none is all text, one applies to all', () => {
    const values = [Buffer.from('a'), Buffer.from('b')];
    expect(boundValues(values, []).map((v) => v.format)).toEqual(['text', 'text']);
    expect(boundValues(values, [1]).map((v) => v.format)).toEqual(['binary', 'binary']);
  });

  it('shows text that is not UTF-8 as hex, so two different values never look alike', () => {
    const latin1 = Buffer.from([0x63, 0x61, 0x66, 0xe9]); // "café" in LATIN1
    const other = Buffer.from([0x63, 0x61, 0x66, 0xe8]);
    const [a] = boundValues([latin1], []);
    const [b] = boundValues([other], []);
    expect(a).toEqual({ format: 'text', hex: '636166e9' });
    expect(a).not.toEqual(b);
  });

  it('binds values too large for an approval record by their SHA-256', () => {
    const big = Buffer.alloc(70 * 1024, 0x61);
    const [shown] = boundValues([big], []);
    expect(shown).toEqual({ format: 'text', sha256: createHash('sha256').update(big).digest('hex'), bytes: 70 * 1024 });
    const [changed] = boundValues([Buffer.concat([big.subarray(1), Buffer.from('b')])], []);
    expect(changed).not.toEqual(shown);
  });

  it('digests only the largest values past the budget: one padded value does not hide the small ones beside it', () => {
    const padding = Buffer.alloc(70 * 1024, 0x61);
    const shown = boundValues([Buffer.from('DROP'), padding, Buffer.alloc(40 * 1024, 0x62), Buffer.from('7')], []);
    expect(shown[0]).toEqual({ format: 'text', value: 'DROP' });
    expect(shown[1]).toMatchObject({ sha256: expect.any(String), bytes: 70 * 1024 });
    expect(shown[2]).toEqual({ format: 'text', value: 'b'.repeat(40 * 1024) });
    expect(shown[3]).toEqual({ format: 'text', value: '7' });
  });
});
