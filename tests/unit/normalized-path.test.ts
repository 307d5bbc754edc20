import { describe, expect, it } from 'vitest';
import { normalizedPath } from '../../proxies/http/downstream.js';

describe('normalizedPath (envoy.yaml normalize_path, merge_slashes, escaped slashes refused)', () => {
  it.each([
    ['/customers/42', '/customers/42'],
    ['/', '/'],
    ['/customers/', '/customers/'],
    ['//customers///42', '/customers/42'],
    ['/people/../admin', '/admin'],
    ['/people/%2e%2e/admin', '/admin'],
    ['/a/./b/.', '/a/b/'],
    ['/a/b/..', '/a/'],
    ['/../../etc', '/etc'],
    ['/a\\..\\admin', '/admin'],
    ['/customers/../admin?x=../y&z=%2F', '/admin?x=../y&z=%2F'],
    ['/customers?id=7#&id=8&all=true', '/customers?id=7'],
    ['/customers#/../admin', '/customers'],
  ])('%s → %s', (target, path) => {
    expect(normalizedPath(target)).toBe(path);
  });

  it('refuses an escaped slash or backslash in the path, and leaves other forms to the router', () => {
    expect(normalizedPath('/people/..%2Fadmin')).toBeNull();
    expect(normalizedPath('/people/..%5cadmin')).toBeNull();
    // A dot segment with path parameters: Servlet upstreams resolve "..;" as "..".
    expect(normalizedPath('/people/..;/admin')).toBeNull();
    expect(normalizedPath('/people/%2e%2e;x=1/admin')).toBeNull();
    expect(normalizedPath('/people/.%3b/admin')).toBeNull();
    expect(normalizedPath('/people/a;b/c')).toBe('/people/a;b/c');
    expect(normalizedPath('*')).toBe('*');
  });
});
