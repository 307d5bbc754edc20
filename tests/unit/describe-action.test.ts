import { describe, expect, it } from 'vitest';
import { describeAction } from '../../engine/approvals/describe-action.js';

describe('describeAction', () => {
  it('shows a statement with its bound values as SQL literals', () => {
    const action = {
      postgres: {
        text: 'DELETE FROM orders WHERE id = $1 AND note = $2 AND blob = $3 AND big = $4',
        parameters: [
          { format: 'text', value: '7' },
          { format: 'text', value: "it's" },
          { format: 'binary', hex: '00ff' },
          { format: 'text', sha256: 'ab12', bytes: 70000 },
          { format: 'text', value: null },
        ],
      },
    };
    expect(describeAction(action, 1000)).toBe([
      'DELETE FROM orders WHERE id = $1 AND note = $2 AND blob = $3 AND big = $4',
      "$1 = '7'",
      "$2 = 'it''s'",
      "$3 = '\\x00ff'",
      '$4 = (70000 bytes, sha256 ab12)',
      '$5 = NULL',
    ].join('\n'));
  });

  it('shows an HTTP request as method, host and path without credentials in the query', () => {
    const action = { attributes: { request: { http: { method: 'POST', host: 'crm.internal', path: '/customers?access_token=s3cret&x=1' } } } };
    const text = describeAction(action, 1000);
    expect(text).toMatch(/^POST crm\.internal\/customers\?/);
    expect(text).not.toContain('s3cret');
  });

  it('shows an SSH request and its command', () => {
    expect(describeAction({ ssh: { user: 'deploy', request: 'exec', command: 'systemctl restart api' } }, 1000)).toBe('exec: systemctl restart api');
  });

  it('cuts a long action and says where the rest is', () => {
    const text = describeAction({ postgres: { text: `SELECT ${'x'.repeat(50)}` } }, 20);
    expect(text).toBe(`SELECT ${'x'.repeat(13)}… (37 more characters: gatehouse approvals show)`);
  });

  it('says so for an action of no known shape', () => {
    expect(describeAction({ other: 1 }, 100)).toContain('unknown shape');
    expect(describeAction(null, 100)).toContain('unknown shape');
    expect(describeAction({ postgres: null }, 100)).toBe('');
  });
});
