import { describe, expect, it } from 'vitest';
import { canonicalAction, actionHash } from '../../engine/approvals/action.js';
import { readAction, unapprovable } from '../../engine/approvals/action-integrity.js';
import { ApprovalError } from '../../engine/approvals/errors.js';

const asked = canonicalAction('orders-db', { postgres: { text: 'DELETE FROM orders' } });
const record = { id: 'ap-1', target: 'orders-db', action: asked.text, action_hash: asked.hash };

describe('readAction', () => {
  it('reads text that holds its hash and names the record\'s target', () => {
    expect(readAction(record)).toEqual({ ok: true, stored: { target: 'orders-db', action: { postgres: { text: 'DELETE FROM orders' } } } });
    expect(unapprovable(record)).toBeNull();
  });

  it('refuses text changed under the hash, a target changed beside it, and text replaced with its hash', () => {
    const swapped = { ...record, action: canonicalAction('orders-db', { postgres: { text: 'SELECT 1' } }).text };
    expect(readAction(swapped)).toEqual({ ok: false, problem: 'the stored action does not match its hash: the record was changed outside the gateway' });
    // The hash covers the target inside the text; the one beside it is what lists and messages show.
    expect(readAction({ ...record, target: 'staging-db' })).toEqual({ ok: false, problem: 'the record\'s target is not the one its action hash covers: the record was changed outside the gateway' });
    expect(readAction({ ...record, action: 'not json', action_hash: actionHash('not json') })).toEqual({ ok: false, problem: 'the stored action is not JSON: the record was changed outside the gateway' });

    const refused = unapprovable(swapped);
    expect(refused).toBeInstanceOf(ApprovalError);
    expect(refused).toMatchObject({ code: 'conflict', message: 'approval ap-1 cannot be approved: the stored action does not match its hash: the record was changed outside the gateway; deny or revoke it' });
  });
});
