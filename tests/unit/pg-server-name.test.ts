import { describe, expect, it } from 'vitest';
import { serverName } from '../../proxies/postgres/session/server-name.js';

describe('serverName: a statement or portal name as PostgreSQL keys it (its first 63 bytes)', () => {
  it('leaves names of up to 63 bytes as they are', () => {
    for (const name of ['', 's1', 'x'.repeat(63), `${'x'.repeat(61)}é`, '語'.repeat(21)]) expect(serverName(name)).toBe(name);
  });

  it('cuts longer names to their first 63 bytes, so names sharing them are one', () => {
    const head = 'x'.repeat(63);
    expect(serverName(`${head}1`)).toBe(head);
    expect(serverName(`${head}2`)).toBe(serverName(`${head}1`));
    expect(serverName(`${'語'.repeat(21)}a`)).toBe('語'.repeat(21));
  });

  it('keeps a cut inside a character apart from every name that is not cut there', () => {
    const head = `${'x'.repeat(62)}é`; // é is 2 bytes: the 63rd is its first
    expect(serverName(`${head}1`)).toBe(serverName(`${head}2`));
    expect(serverName(`${head}1`)).toBe(serverName(`${'x'.repeat(62)}éé`));
    // è shares é's first byte (0xC3), and so the server's entry; ж (0xD0 0xB6) does not.
    expect(serverName(`${head}1`)).toBe(serverName(`${'x'.repeat(62)}è1`));
    expect(serverName(`${head}1`)).not.toBe(serverName(`${'x'.repeat(62)}ж1`));
    expect(serverName(`${head}1`)).not.toBe('x'.repeat(62));
    expect(serverName(`${head}1`)).not.toBe(serverName(`${'x'.repeat(61)}é`));
  });

  it('is idempotent, so a key passed back in finds the same entry', () => {
    for (const name of [`${'x'.repeat(63)}1`, `${'x'.repeat(62)}é1`, `${'é'.repeat(40)}`, 's']) {
      expect(serverName(serverName(name))).toBe(serverName(name));
    }
  });
});
