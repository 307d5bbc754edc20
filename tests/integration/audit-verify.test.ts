import Database from 'better-sqlite3';
import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../engine/audit/canonical.js';
import { GENESIS, recordHash } from '../../engine/audit/chain.js';
import { checkpointPayload } from '../../engine/audit/checkpoint.js';
import { AuditLog } from '../../engine/audit/audit-log.js';
import { approvalEvent, decisionEvent, type ApprovalTransition } from '../../engine/audit/events.js';
import type { ApprovalRecord } from '../../engine/store/store.js';
import { FileCheckpointKey, generateCheckpointKey, publicKeyFromPem } from '../../engine/audit/key-source.js';
import { verifyAudit } from '../../engine/audit/verify.js';
import { runCli, startCli } from '../helpers/cli.js';
import { openSqlite, quietLogger, sampleFacts, writeTrail, type WrittenTrail } from '../helpers/audit.js';
import { makeTempDir, removeDir } from '../helpers/opa.js';
import { waitFor } from '../helpers/wait.js';

// One real trail (30 events, checkpoints at seq 0, 10, 20 and 30, the last
// also exported as the anchor); each test tampers with its own copy of the
// SQLite file, the way someone with write access to the store could.
let dir: string;
let trail: WrittenTrail;
let copies = 0;
beforeAll(async () => {
  dir = makeTempDir('gatehouse-audit-verify-');
  trail = await writeTrail(dir);
});
afterAll(() => removeDir(dir));

/** A copy of the trail's database with `tamper` applied, and a config naming it. */
function tampered(tamper: (db: Database.Database) => void): string {
  const n = ++copies;
  const dbPath = join(dir, `copy-${n}.db`);
  copyFileSync(trail.dbPath, dbPath);
  const db = new Database(dbPath);
  tamper(db);
  db.close();
  const configPath = join(dir, `copy-${n}.yaml`);
  writeFileSync(configPath, readFileSync(trail.configPath, 'utf8').replace(trail.dbPath, dbPath));
  return configPath;
}

function verify(configPath: string, ...args: string[]) {
  return runCli(['audit', 'verify', '--config', configPath, ...args]);
}

function expectFailureAt(result: ReturnType<typeof runCli>, seq: number, why: RegExp): void {
  expect(result.code, result.stdout + result.stderr).toBe(1);
  const line = result.stderr.trim();
  expect(line.split('\n')).toHaveLength(1);
  expect(line).toMatch(new RegExp(`^gatehouse: audit verification failed: stream "s1", seq ${seq}: `));
  expect(line).toMatch(why);
}

/** Moves seq >= at up by one, in two steps so no step collides with the primary key. */
function makeRoomAt(db: Database.Database, at: number): void {
  db.prepare('UPDATE audit_records SET seq = seq + 1000000 WHERE seq >= ?').run(at);
  db.prepare('UPDATE audit_records SET seq = seq - 999999 WHERE seq >= 1000000').run();
}

/** Recomputes prev and hash from seq `from` to the end, as someone rewriting the chain would. */
function rechain(db: Database.Database, from: number): void {
  let prev = from === 1 ? GENESIS : row(db, from - 1).hash;
  for (let seq = from; ; seq++) {
    const r = row(db, seq);
    if (!r) return;
    const hash = recordHash('s1', seq, prev, r.event);
    db.prepare('UPDATE audit_records SET prev = ?, hash = ? WHERE stream = ? AND seq = ?').run(prev, hash, 's1', seq);
    prev = hash;
  }
}

type Row = { seq: number; prev: string; hash: string; time: number; event: string };
const row = (db: Database.Database, seq: number) => db.prepare('SELECT seq, prev, hash, time, event FROM audit_records WHERE stream = ? AND seq = ?').get('s1', seq) as Row;

// One approval (two approvers asked for) and its transitions as the gateway audits them.
const approvalRecord: ApprovalRecord = {
  id: 'ap-1', status: 'pending', version: 1, requester: { sub: 'agent-sre', iss: 'urn:test', act: null, groups: ['sre-agents'] },
  target: 'orders-db', action: '{}', action_hash: 'h', reasons: [], groups: ['dba'], min: 2, mode: 'ticket',
  created_at: '2030-01-01T00:00:00.000Z', expires_at: '2030-01-01T00:15:00.000Z', votes: [], resolution: null, resolved_at: null,
  decision_id: 'd', session_id: 's', policy_revision: null,
};
const vote = (sub: string) => ({ sub, decision: 'approve' as const, comment: null, at: '2030-01-01T00:01:00.000Z' });
const STATUS_AFTER: Record<ApprovalTransition, ApprovalRecord['status']> = {
  requested: 'pending', vote: 'pending', approved: 'approved', consumed: 'consumed', revoked: 'revoked', expired: 'expired', denied: 'denied',
};

/** The audit event of one transition of ap-1 (approved by bob and carol unless `changes` says otherwise), at `time` when given. */
function step(transition: ApprovalTransition, changes: Partial<ApprovalRecord> = {}, time?: number): object {
  const votes = transition === 'requested' ? [] : [vote('bob'), vote('carol')];
  const by = transition === 'approved' ? { sub: 'bob', iss: 'urn:test', groups: ['dba'], agent: false, act: null, claims: {} } : undefined;
  return approvalEvent({ approval: { ...approvalRecord, status: STATUS_AFTER[transition], votes, ...changes }, transition, by, ...(time === undefined ? {} : { time }) }, 's1');
}

/** The decision event of ap-1's requester on ap-1's action (as the gateway writes when it uses it), with `changes`. */
function decided(changes: { sub?: string; target?: string; action_hash?: string; act?: { sub: string } | null } = {}, time?: number): object {
  const facts = sampleFacts(1, 'allow');
  const identity = { sub: changes.sub ?? 'agent-sre', iss: 'urn:test', groups: ['sre-agents'], agent: true, act: changes.act === undefined ? null : changes.act, claims: {} };
  return decisionEvent({
    ...facts, identity, target: { ...facts.target, name: changes.target ?? approvalRecord.target }, approval_id: approvalRecord.id,
    action_hash: changes.action_hash ?? approvalRecord.action_hash, ...(time === undefined ? {} : { time }),
  }, 's1');
}

/** A trail of two decisions then `events`, verified by the CLI. */
async function checkApprovals(events: object[]) {
  const trailDir = makeTempDir('gatehouse-audit-approvals-');
  const written = await writeTrail(trailDir, { events: 2, thenAppend: events });
  return { result: verify(written.configPath), done: () => removeDir(trailDir) };
}

/** Each stream's events written through its own AuditLog on one store, as gateways sharing it would; then verified. */
async function approvalStreams(dbPath: string, streams: Record<string, object[]>) {
  const store = await openSqlite(dbPath);
  try {
    for (const [stream, events] of Object.entries(streams)) {
      const log = new AuditLog({ store, stream, maxBatch: 100, logger: quietLogger });
      await log.start();
      for (const event of events) await log.append(event);
      await log.close();
    }
    return await verifyAudit({ store });
  } finally {
    await store.close();
  }
}

describe('gatehouse audit verify', () => {
  it('accepts the untampered trail, with and without the anchor', () => {
    const plain = verify(trail.configPath);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/stream s1: 30 record\(s\), head seq 30 [0-9a-f]{16}…; 4 checkpoint\(s\) with valid signatures/);
    expect(plain.stdout).toMatch(/audit trail verified: 1 stream\(s\), 30 record\(s\)/);
    const anchored = verify(trail.configPath, '--anchor', trail.exportPath);
    expect(anchored.code, anchored.stderr).toBe(0);
    expect(anchored.stdout).toMatch(/anchor matches/);
  });

  it('catches one changed byte in an event', () => {
    const config = tampered((db) => db.prepare("UPDATE audit_records SET event = replace(event, '/orders/7\"', '/orders/8\"') WHERE seq = 7").run());
    expectFailureAt(verify(config), 7, /hash does not match/);
  });

  it('catches an edit that leaves the event out of canonical form', () => {
    const config = tampered((db) => db.prepare("UPDATE audit_records SET event = replace(event, '{\"action\":', '{ \"action\":') WHERE seq = 12").run());
    expectFailureAt(verify(config), 12, /not in canonical form/);
  });

  it('catches an inserted event, even one with a correct hash of its own', () => {
    const config = tampered((db) => {
      // Make room at seq 5, then insert a well-formed record linked to seq 4.
      makeRoomAt(db, 5);
      const before = row(db, 4);
      const event = before.event.replace('/orders/4"', '/orders/secret"');
      db.prepare('INSERT INTO audit_records (stream, seq, prev, hash, time, event) VALUES (?, ?, ?, ?, ?, ?)')
        .run('s1', 5, before.hash, recordHash('s1', 5, before.hash, event), before.time, event);
    });
    expectFailureAt(verify(config), 6, /prev does not match/);
  });

  it('catches an inserted event when the whole chain after it was re-hashed, by the checkpoints', () => {
    const config = tampered((db) => {
      makeRoomAt(db, 5);
      const four = row(db, 4);
      db.prepare('INSERT INTO audit_records (stream, seq, prev, hash, time, event) VALUES (?, ?, ?, ?, ?, ?)').run('s1', 5, '', '', four.time, four.event);
      let prev = four.hash;
      for (let seq = 5; seq <= 31; seq++) {
        const r = row(db, seq);
        const hash = recordHash('s1', seq, prev, r.event);
        db.prepare('UPDATE audit_records SET prev = ?, hash = ? WHERE stream = ? AND seq = ?').run(prev, hash, 's1', seq);
        prev = hash;
      }
    });
    expectFailureAt(verify(config), 10, /stored checkpoint at seq 10 has hash/);
  });

  it('catches a deleted event', () => {
    const config = tampered((db) => db.prepare('DELETE FROM audit_records WHERE seq = 5').run());
    expectFailureAt(verify(config), 5, /seq 5 missing/);
  });

  it('catches two events swapped', () => {
    const config = tampered((db) => {
      db.prepare('UPDATE audit_records SET seq = 1000 WHERE seq = 5').run();
      db.prepare('UPDATE audit_records SET seq = 5 WHERE seq = 6').run();
      db.prepare('UPDATE audit_records SET seq = 6 WHERE seq = 1000').run();
    });
    expectFailureAt(verify(config), 5, /prev does not match/);
  });

  it('catches a checkpoint signed by another key', async () => {
    const otherKeyPath = join(dir, 'other.pem');
    writeFileSync(otherKeyPath, generateCheckpointKey('ES256').privatePem);
    const other = await FileCheckpointKey.load(otherKeyPath, 'ES256');
    const store = await openSqlite(trail.dbPath);
    const ten = (await store.checkpoints('s1')).find((c) => c.seq === 10)!;
    await store.close();
    const jws = await other.sign(checkpointPayload({ ...ten, time: ten.time + 1 }));
    const config = tampered((db) => db.prepare('INSERT INTO audit_checkpoints (stream, seq, hash, time, jws) VALUES (?, ?, ?, ?, ?)').run('s1', 10, ten.hash, ten.time + 1, jws));
    expectFailureAt(verify(config), 10, /signature does not verify/);
  });

  it('catches a validly signed checkpoint whose hash is not the chain\'s', async () => {
    const key = await FileCheckpointKey.load(trail.keyPath, 'ES256');
    const claim = { stream: 's1', seq: 15, hash: 'f'.repeat(64), time: Date.now() };
    const jws = await key.sign(checkpointPayload(claim));
    const config = tampered((db) => db.prepare('INSERT INTO audit_checkpoints (stream, seq, hash, time, jws) VALUES (?, ?, ?, ?, ?)').run(claim.stream, claim.seq, claim.hash, claim.time, jws));
    expectFailureAt(verify(config), 15, /checkpoint at seq 15 has hash ffffffffffff/);
  });

  it('catches a checkpoint row edited to say something other than its signature', () => {
    const config = tampered((db) => db.prepare('UPDATE audit_checkpoints SET seq = 11 WHERE seq = 10').run());
    expectFailureAt(verify(config), 11, /does not say what its signature says/);
  });

  it('catches a truncated tail only with the anchor', () => {
    const config = tampered((db) => {
      db.prepare('DELETE FROM audit_records WHERE seq > 15').run();
      db.prepare('DELETE FROM audit_checkpoints WHERE seq > 15').run();
    });
    expect(verify(config).code).toBe(0);
    expectFailureAt(verify(config, '--anchor', trail.exportPath), 16, /chain ends at seq 15, but the anchor checkpoint vouches for seq 30/);
    // The anchor may also be given as the JWS itself.
    const jws = (JSON.parse(readFileSync(trail.exportPath, 'utf8')) as { jws: string }).jws;
    expectFailureAt(verify(config, '--anchor', jws), 16, /truncated/);
  });

  it('catches a truncated tail whose checkpoints were left behind, without the anchor', () => {
    const config = tampered((db) => db.prepare('DELETE FROM audit_records WHERE seq > 25').run());
    expectFailureAt(verify(config), 26, /a stored checkpoint vouches for seq 30/);
  });

  it('with the checkpoint key, catches a chain rewritten whole with its checkpoints removed, and a made-up stream', () => {
    const rewritten = tampered((db) => {
      const five = row(db, 5);
      db.prepare('UPDATE audit_records SET event = ? WHERE stream = ? AND seq = 5').run(five.event.replace('"Allowed"', '"Blocked"'), 's1');
      rechain(db, 5);
      db.prepare('DELETE FROM audit_checkpoints').run();
    });
    expectFailureAt(verify(rewritten), 1, /has records but no checkpoint/);
    // Streams from before checkpoints were configured: accepted on request, with a warning.
    const allowed = verify(rewritten, '--allow-unsigned');
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stderr).toMatch(/--allow-unsigned: streams without checkpoints were accepted/);

    // Named so that, printed raw, the terminal would erase the failure line: it is written out instead.
    const name = 's0\r\x1b[2K';
    const madeUp = tampered((db) => {
      const one = row(db, 1);
      db.prepare('INSERT INTO audit_records (stream, seq, prev, hash, time, event) VALUES (?, ?, ?, ?, ?, ?)')
        .run(name, 1, GENESIS, recordHash(name, 1, GENESIS, one.event), one.time, one.event);
    });
    const res = verify(madeUp);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('gatehouse: audit verification failed: stream "s0\\u{d}\\u{1b}[2K", seq 1: the stream has records but no checkpoint');
  });

  it('with the checkpoint key, catches a tail rewritten past the newest checkpoint left', () => {
    const config = tampered((db) => {
      // Seq 21 on, written a day after the checkpoint at 20 (as a tail rewritten since), and the checkpoints after 20 removed.
      const { time: signedAt } = db.prepare('SELECT time FROM audit_checkpoints WHERE stream = ? AND seq = 20').get('s1') as { time: number };
      for (let seq = 21; seq <= 30; seq++) {
        const r = row(db, seq);
        const event = JSON.parse(r.event) as { time: number };
        event.time = signedAt + 86_400_000 + seq;
        db.prepare('UPDATE audit_records SET event = ?, time = ? WHERE stream = ? AND seq = ?').run(canonicalJson(event), event.time, 's1', seq);
      }
      rechain(db, 21);
      db.prepare('DELETE FROM audit_checkpoints WHERE seq > 20').run();
    });
    expectFailureAt(verify(config), 21, /the record is dated in the future/);
  });

  it('with the checkpoint key, catches a tail rewritten after the newest checkpoint left, once that is older than a running gateway\'s', async () => {
    const config = tampered((db) => {
      const r = row(db, 25);
      db.prepare('UPDATE audit_records SET event = ? WHERE stream = ? AND seq = 25').run(r.event.replace('"Allowed"', '"Blocked"'), 's1');
      rechain(db, 25);
      db.prepare('DELETE FROM audit_checkpoints WHERE seq > 20').run();
    });
    const dbPath = /path: (\S+)/.exec(readFileSync(config, 'utf8'))![1]!;
    const store = await openSqlite(dbPath);
    try {
      const signedAt = (await store.checkpoints('s1')).find((c) => c.seq === 20)!.time;
      const publicKey = publicKeyFromPem(readFileSync(trail.keyPath, 'utf8'), trail.keyPath);
      const at = (now: number) => verifyAudit({ store, publicKey, requireCheckpoints: { maxGapMs: 7_260_000 }, now });
      // While its gateway could still be writing, the tail past the newest checkpoint is the window no key covers.
      expect((await at(signedAt + 1000)).failure).toBeNull();
      expect((await at(signedAt + 86_400_000)).failure).toMatchObject({ stream: 's1', seq: 21, reason: expect.stringMatching(/the newest checkpoint signs seq 20, not the head \(seq 30\)/) as string });
    } finally {
      await store.close();
    }
  });

  it('catches an approval used with no event in any stream that approved it (a record flipped in the store)', async () => {
    const flipped = await checkApprovals([step('requested'), step('consumed')]);
    expectFailureAt(flipped.result, 4, /approval ap-1 was used, but no event in the trail approves it/);
    flipped.done();
    // One vote where two were asked for is no approval either.
    const short = await checkApprovals([step('requested'), step('approved', { votes: [vote('bob')] }), step('consumed')]);
    expectFailureAt(short.result, 5, /no event in the trail approves it with the approvers it asked for/);
    short.done();
    const backed = await checkApprovals([step('requested'), step('approved'), step('consumed')]);
    expect(backed.result.code, backed.result.stderr).toBe(0);
    backed.done();
  });

  it('catches an approval used twice, or used after it was revoked, expired or denied (set back to approved in the store)', async () => {
    const twice = await checkApprovals([step('requested'), step('approved'), step('consumed'), step('consumed')]);
    expectFailureAt(twice.result, 6, /approval ap-1 was used twice: consumed at stream "s1" seq 5 and again at stream "s1" seq 6/);
    twice.done();
    for (const ending of ['revoked', 'expired', 'denied'] as const) {
      const after = await checkApprovals([step('requested'), step('approved'), step(ending), step('consumed')]);
      expectFailureAt(after.result, 6, new RegExp(`approval ap-1 was used \\(consumed at stream "s1" seq 6\\) after it was ${ending} \\(at stream "s1" seq 5\\)`));
      after.done();
    }
  });

  it('catches an approval used for another action, target or requester than the one requested and approved (a record rewritten in the store)', async () => {
    const evil = { sub: 'agent-evil', iss: 'urn:test', act: null, groups: ['sre-agents'] };
    const swapped = await checkApprovals([
      step('requested'), step('approved'),
      step('consumed', { target: 'staging-db', action_hash: 'b'.repeat(64), requester: evil }), decided({ sub: 'agent-evil', target: 'staging-db', action_hash: 'b'.repeat(64) }),
    ]);
    expectFailureAt(swapped.result, 5, /approval ap-1: the consumed event \(at stream "s1" seq 5\) says target "staging-db", action hash "b{64}", requester "agent-evil", where the requested event \(at stream "s1" seq 3\) says target "orders-db", action hash "h", requester "agent-sre": the request was changed after it was made/);
    swapped.done();
    // The approvers asked for lowered before the vote: one approval where two were asked for.
    const lowered = await checkApprovals([step('requested'), step('approved', { votes: [vote('bob')], min: 1 }), step('consumed', { votes: [vote('bob')], min: 1 })]);
    expectFailureAt(lowered.result, 4, /approval ap-1: the approved event .* says approvers required 1, where the requested event .* says approvers required 2/);
    lowered.done();
    // The consumed event agrees, but the decision that used it is another requester's, for another action.
    for (const [changes, says] of [
      [{ action_hash: 'c'.repeat(64) }, /action hash "c{64}", where the requested event \(at stream "s1" seq 3\) says action hash "h"/],
      [{ sub: 'agent-evil' }, /requester "agent-evil", where .* says requester "agent-sre"/],
      [{ act: { sub: 'mallory' } }, /requester acting for "mallory", where .* says requester acting for null/],
      [{ target: 'staging-db' }, /target "staging-db", where .* says target "orders-db"/],
    ] as const) {
      const used = await checkApprovals([step('requested'), step('approved'), step('consumed'), decided(changes)]);
      expectFailureAt(used.result, 6, new RegExp(`approval ap-1: the decision event \\(at stream "s1" seq 6\\) says ${says.source}`));
      used.done();
    }
    // As the gateway writes them: the ticket's decision, the vote, the use and its decision all agree.
    const backed = await checkApprovals([step('requested'), decided(), step('approved'), step('consumed'), decided()]);
    expect(backed.result.code, backed.result.stderr).toBe(0);
    backed.done();
  });

  it('compares an approval\'s events across streams, whichever stream is read first', async () => {
    const trailDir = makeTempDir('gatehouse-audit-approval-binding-');
    try {
      // "a", read first, has the use; "b" has the request and the approval.
      const agree = await approvalStreams(join(trailDir, 'agree.db'), {
        a: [decided({}, 3000), step('consumed', {}, 3000), decided({}, 3001)],
        b: [step('requested', {}, 1000), step('approved', {}, 2000)],
      });
      expect(agree.failure).toBeNull();
      const swapped = await approvalStreams(join(trailDir, 'swapped.db'), {
        a: [step('consumed', { action_hash: 'b'.repeat(64) }, 3000), decided({ action_hash: 'b'.repeat(64) }, 3001)],
        b: [step('requested', {}, 1000), step('approved', {}, 2000)],
      });
      expect(swapped.failure).toMatchObject({ stream: 'a', seq: 1, reason: expect.stringMatching(/^approval ap-1: the consumed event \(at stream "a" seq 1\) says action hash "b{64}", where the requested event \(at stream "b" seq 1\) says action hash "h"/) as string });
      // Only decisions in "a": the decision read first is compared with the approval events read later.
      const decisionOnly = await approvalStreams(join(trailDir, 'decision.db'), {
        a: [decided({ target: 'staging-db' }, 3001)],
        b: [step('requested', {}, 1000), step('approved', {}, 2000)],
      });
      expect(decisionOnly.failure).toMatchObject({ stream: 'a', seq: 1, reason: expect.stringMatching(/the decision event \(at stream "a" seq 1\) says target "staging-db", where the requested event \(at stream "b" seq 1\) says target "orders-db"/) as string });
    } finally {
      removeDir(trailDir);
    }
  });

  it('catches a stream whose records were all deleted, its checkpoints left behind; an empty stream a gateway only signed is sound', async () => {
    const config = tampered((db) => db.prepare('DELETE FROM audit_records').run());
    expectFailureAt(verify(config), 1, /the stream has no records, but a stored checkpoint vouches for seq 10: all its records were removed/);
    // A gateway started and stopped on an empty stream signs seq 0 (the genesis), which vouches for no record.
    const emptyDir = makeTempDir('gatehouse-audit-empty-');
    try {
      const empty = await writeTrail(emptyDir, { events: 0 });
      const res = verify(empty.configPath);
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toMatch(/audit trail verified: 1 stream\(s\), 0 record\(s\)/);
      const anchored = verify(empty.configPath, '--anchor', empty.exportPath);
      expect(anchored.code, anchored.stderr).toBe(0);
    } finally {
      removeDir(emptyDir);
    }
  });

  it('orders one approval\'s events across streams by their time, not by the order streams are read in', async () => {
    const trailDir = makeTempDir('gatehouse-audit-approval-streams-');
    try {
      // Two gateways on one store: "a" is read first. It approves and spends the request; "b" revoked it before.
      const spentAfterRevoke = await approvalStreams(join(trailDir, 'after.db'), {
        a: [step('requested', {}, 1000), step('approved', {}, 2000), step('consumed', {}, 4000)],
        b: [step('revoked', {}, 3000)],
      });
      expect(spentAfterRevoke.failure).toEqual({ stream: 'a', seq: 3, reason: 'approval ap-1 was used (consumed at stream "a" seq 3) after it was revoked (at stream "b" seq 1), where an ended request is never spent (reopened in the store)' });
      // Spent by "b" before "a" revoked it: not a use after the end, though "b" is read last.
      const spentBeforeRevoke = await approvalStreams(join(trailDir, 'before.db'), {
        a: [step('requested', {}, 1000), step('approved', {}, 2000), step('revoked', {}, 4000)],
        b: [step('consumed', {}, 3000)],
      });
      expect(spentBeforeRevoke.failure).toBeNull();
      // Used once on each of two gateways.
      const spentOnBoth = await approvalStreams(join(trailDir, 'twice.db'), {
        a: [step('requested', {}, 1000), step('approved', {}, 2000), step('consumed', {}, 3000)],
        b: [step('consumed', {}, 2500)],
      });
      expect(spentOnBoth.failure).toEqual({ stream: 'a', seq: 3, reason: 'approval ap-1 was used twice: consumed at stream "b" seq 1 and again at stream "a" seq 3, where a request is spent once (set back to approved in the store)' });
    } finally {
      removeDir(trailDir);
    }
  });

  it('refuses an anchor that does not verify', async () => {
    const otherKeyPath = join(dir, 'other-anchor.pem');
    writeFileSync(otherKeyPath, generateCheckpointKey('ES256').privatePem);
    const other = await FileCheckpointKey.load(otherKeyPath, 'ES256');
    const forged = await other.sign(checkpointPayload({ stream: 's1', seq: 30, hash: 'f'.repeat(64), time: 1 }));
    const res = verify(trail.configPath, '--anchor', forged);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/anchor is not valid: signature does not verify/);
  });

  it('explains usage mistakes with exit 2', () => {
    const res = verify(trail.configPath, '--anchor', join(dir, 'nope.json'));
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/cannot read --anchor .*nope\.json \(ENOENT\)/);
    expect(verify(trail.configPath, '--public-key', join(dir, 'nope.pem')).stderr).toMatch(/cannot read --public-key/);
  });
});

describe('gatehouse audit export', () => {
  it('writes one OCSF event per line, or full chain records', () => {
    const ocsf = runCli(['audit', 'export', '--config', trail.configPath]);
    expect(ocsf.code, ocsf.stderr).toBe(0);
    const events = ocsf.stdout.trim().split('\n').map((l) => JSON.parse(l) as { class_uid: number; message: string });
    expect(events).toHaveLength(30);
    expect(events[0]).toMatchObject({ class_uid: 4002, message: 'GET /orders/1' });

    const jsonl = runCli(['audit', 'export', '--config', trail.configPath, '--format', 'jsonl', '--stream', 's1']);
    const records = jsonl.stdout.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; prev: string; hash: string; event: string });
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(recordHash('s1', 2, records[1]!.prev, records[1]!.event)).toBe(records[1]!.hash);
  });

  it('filters by time, absolute or relative', () => {
    // sampleFacts(i) happened at 1_750_000_000_000 + i s.
    const since = new Date(1_750_000_000_000 + 11_000).toISOString();
    const until = new Date(1_750_000_000_000 + 20_000).toISOString();
    const window = runCli(['audit', 'export', '--config', trail.configPath, '--since', since, '--until', until]);
    expect(window.stdout.trim().split('\n')).toHaveLength(10);
    const recent = runCli(['audit', 'export', '--config', trail.configPath, '--since', '15m']);
    expect(recent.code).toBe(0);
    expect(recent.stdout).toBe('');
  });

  it('refuses a time it cannot read', () => {
    const res = runCli(['audit', 'export', '--config', trail.configPath, '--since', 'yesterday']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/--since "yesterday": expected an ISO time/);
  });
});

describe('gatehouse audit tail', () => {
  it('prints the newest events, then follows new ones', async () => {
    const config = tampered(() => undefined);
    const dbPath = config.replace(/\.yaml$/, '.db');
    const child = startCli(['audit', 'tail', '--config', config, '-n', '2']);
    try {
      // A deadline for a cold CLI start while the rest of the suite runs beside it, not a timing assertion.
      await waitFor(() => child.output().includes('/orders/30'), 'the newest events', 30_000);
      expect(child.output()).toContain('/orders/29');
      expect(child.output()).not.toContain('/orders/28"');

      const store = await openSqlite(dbPath);
      const head = (await store.auditHead('s1'))!;
      const event = '{"message":"GET /orders/31","time":1}';
      await store.appendAudit([{ stream: 's1', seq: 31, prev: head.hash, hash: recordHash('s1', 31, head.hash, event), time: 1, event }]);
      await store.close();
      await waitFor(() => child.output().includes('/orders/31'), 'the followed event');
    } finally {
      child.kill('SIGINT');
    }
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
  }, 60_000);
});

describe('gatehouse audit keygen', () => {
  it('writes a private key readable only by its owner and prints the public key', () => {
    const out = join(dir, 'new-key.pem');
    const res = runCli(['audit', 'keygen', '--out', out, '--alg', 'EdDSA']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(readFileSync(out, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(res.stderr).not.toContain('PRIVATE KEY');

    const again = runCli(['audit', 'keygen', '--out', out]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists; not overwriting/);
  });
});
