import type { KeyObject } from 'node:crypto';
import type { CheckpointRecord, Store } from '../store/store.js';
import { canonicalJson } from './canonical.js';
import { GENESIS, recordHash } from './chain.js';
import { CheckpointInvalid, sameClaim, verifyCheckpoint, type CheckpointClaim } from './checkpoint.js';

export interface VerifyOptions {
  store: Store;
  /** Checks checkpoint signatures; without it checkpoints are only matched against the chain. */
  publicKey?: KeyObject | null;
  /**
   * A checkpoint JWS kept apart from the store (audit.checkpoint.export_file).
   * Its seq and hash must be in the chain, which is what catches a tail cut
   * off together with its stored checkpoints.
   */
  anchor?: string | null;
  /**
   * Set where gateways sign checkpoints (a public key is known). A gateway
   * signs the head it starts from, then one per interval, then the head it
   * stops at. So each stream with records must have a checkpoint, and its
   * newest must sign its head (stopped) or be at most `maxGapMs` old (still
   * writing). Record times are not trusted for this: whoever rewrites the
   * records writes their times too.
   */
  requireCheckpoints?: { maxGapMs: number } | null;
  /** The time now (ms since the epoch); Date.now() by default. */
  now?: number;
  /** Called every `progressEvery` records, for a progress line. */
  onProgress?: (records: number) => void;
  progressEvery?: number;
}

export interface StreamSummary {
  stream: string;
  /** Records checked, and the head they end at. */
  records: number;
  seq: number;
  hash: string;
  checkpoints: number;
  /** Time of the newest checkpoint, ms since the epoch, and the seq it signs. */
  lastCheckpoint: number | null;
  lastCheckpointSeq: number | null;
  /** Time of the head record, ms since the epoch (null for an empty stream). */
  headTime: number | null;
  anchored: boolean;
}

/** The first place the evidence stops adding up. */
export interface VerifyFailure {
  stream: string;
  seq: number;
  reason: string;
}

export interface VerifyReport {
  streams: StreamSummary[];
  failure: VerifyFailure | null;
  /** True when checkpoints were found but no public key was given to check their signatures. */
  signaturesUnchecked: boolean;
}

class Broken extends Error {
  constructor(readonly seq: number, reason: string) {
    super(reason);
  }
}

/**
 * Verifies every stream in the store, in one pass over the records with
 * constant memory (plus one stream's checkpoints): contiguous seqs from 1,
 * each prev linking to the record before, each hash recomputed, each event's
 * text in its own canonical form (so a changed byte anywhere shows), each
 * checkpoint signed by the key and matching the chain where it says, and the
 * anchor, if any, present in its chain. Stops at the first problem.
 */
export async function verifyAudit(options: VerifyOptions): Promise<VerifyReport> {
  const { store } = options;
  const publicKey = options.publicKey ?? null;
  const anchor = options.anchor ? await readAnchor(options.anchor, publicKey) : null;
  const streams = await store.auditStreams();
  if (anchor && !streams.includes(anchor.stream)) {
    return {
      streams: [],
      signaturesUnchecked: false,
      failure: { stream: anchor.stream, seq: 1, reason: `the anchor vouches for seq ${anchor.seq}, but the stream has no records at all` },
    };
  }

  const summaries: StreamSummary[] = [];
  const approvals = new ApprovalLedger();
  const now = options.now ?? Date.now();
  let signaturesUnchecked = false;
  let total = 0;
  const every = options.progressEvery ?? 100_000;
  for (const stream of streams.sort()) {
    const checkpoints = await store.checkpoints(stream);
    if (checkpoints.length > 0 && !publicKey) signaturesUnchecked = true;
    try {
      const summary = await verifyStream(store, stream, checkpoints, publicKey, anchor?.stream === stream ? anchor : null, now, (event, seq, time) => {
        approvals.note(event, stream, seq, time);
        if (++total % every === 0) options.onProgress?.(total);
      });
      if (options.requireCheckpoints) checkpointsCover(summary, options.requireCheckpoints.maxGapMs, now);
      summaries.push(summary);
    } catch (err) {
      if (!(err instanceof Broken)) throw err;
      return { streams: summaries, signaturesUnchecked, failure: { stream, seq: err.seq, reason: err.message } };
    }
  }
  return { streams: summaries, failure: approvals.failure(), signaturesUnchecked };
}

/** One approval transition in the trail: where it is, and when it says it happened. */
interface TrailPlace {
  stream: string;
  seq: number;
  time: number;
  transition: string;
}

/** Transitions that end a request: none of them can be followed by its use. */
const ENDING: ReadonlySet<string> = new Set(['revoked', 'expired', 'denied']);

/**
 * What an approval's events say of the request it is for. Every approval
 * event snapshots the one record, whose request fields no transition
 * changes (a transition changes its status, votes and resolution only), so
 * all of one approval's events must say the same here. Fields are compared
 * only where both events carry them.
 */
interface ApprovalBinding {
  target?: unknown;
  action_hash?: unknown;
  requester_sub?: unknown;
  requester_iss?: unknown;
  requester_act?: unknown;
  requester_groups?: unknown;
  groups?: unknown;
  min?: unknown;
  mode?: unknown;
  expires_at?: unknown;
  decision_id?: unknown;
  session_id?: unknown;
  policy_revision?: unknown;
}

/** How the fields are named in a failure. */
const BINDING_NAMES: Record<keyof ApprovalBinding, string> = {
  target: 'target',
  action_hash: 'action hash',
  requester_sub: 'requester',
  requester_iss: 'requester issuer',
  requester_act: 'requester acting for',
  requester_groups: 'requester groups',
  groups: 'approver groups',
  min: 'approvers required',
  mode: 'mode',
  expires_at: 'expiry',
  decision_id: 'decision id',
  session_id: 'session id',
  policy_revision: 'policy revision',
};

interface ApprovalEventShape {
  class_uid?: unknown;
  actor?: { user?: { uid?: unknown }; idp?: { name?: unknown } };
  dst_endpoint?: { name?: unknown };
  unmapped?: { transition?: unknown; approval_id?: unknown; action_hash?: unknown; session_id?: unknown; decision?: unknown; act?: unknown };
  entity?: { data?: Record<string, unknown> & { approvals?: unknown; min?: unknown; requester?: { sub?: unknown; iss?: unknown; act?: unknown; groups?: unknown } } };
}

/** What an approval event (Entity Management, one transition) binds. */
function approvalBinding(e: ApprovalEventShape): ApprovalBinding {
  const data = e.entity?.data ?? {};
  const requester = data.requester;
  return {
    target: data.target,
    action_hash: data.action_hash ?? e.unmapped?.action_hash,
    requester_sub: requester?.sub,
    requester_iss: requester?.iss,
    requester_act: requester === undefined ? undefined : actSub(requester.act),
    requester_groups: requester?.groups,
    groups: data.groups,
    min: data.min,
    mode: data.mode,
    expires_at: data.expires_at,
    decision_id: data.decision_id,
    session_id: e.unmapped?.session_id,
    policy_revision: data.policy_revision,
  };
}

/**
 * What a decision event naming an approval binds: it is the requester's
 * request for the approved action on the approved target (the gateway
 * finds an approval by requester and action hash, and the hash covers the
 * target). The caller's groups and session are its own, not the request's.
 */
function decisionBinding(e: ApprovalEventShape): ApprovalBinding {
  return {
    target: e.dst_endpoint?.name,
    action_hash: e.unmapped?.action_hash,
    requester_sub: e.actor?.user?.uid,
    requester_iss: e.actor?.idp?.name,
    requester_act: e.unmapped && 'act' in e.unmapped ? actSub(e.unmapped.act) : undefined,
  };
}

function actSub(act: unknown): unknown {
  if (act === null) return null;
  if (typeof act === 'object') return (act as { sub?: unknown }).sub;
  return undefined;
}

/** The fields two bindings both carry and disagree on, each as each says it; empty when they agree. */
function differences(a: ApprovalBinding, b: ApprovalBinding): { first: string; second: string }[] {
  const out: { first: string; second: string }[] = [];
  for (const key of Object.keys(BINDING_NAMES) as (keyof ApprovalBinding)[]) {
    const x = a[key];
    const y = b[key];
    if (x === undefined || y === undefined || canonicalJson(x) === canonicalJson(y)) continue;
    out.push({ first: `${BINDING_NAMES[key]} ${shown(x)}`, second: `${BINDING_NAMES[key]} ${shown(y)}` });
  }
  return out;
}

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

/** One event's account of an approval: where it is, what it is, what it binds. */
interface BoundPlace extends TrailPlace {
  /** "the requested event", "the decision event", … */
  what: string;
  binding: ApprovalBinding;
}

/**
 * Approvals as the trail tells them, across every stream (a request is
 * approved by one process and used by another): each one used must have
 * been approved, by as many approvers as it asked for, in the trail; used
 * once; and not after it was revoked, expired or denied. An approval record
 * flipped in the store, with no vote behind it, or set back to approved
 * once spent or ended, shows here. So does one rewritten to cover another
 * action, target or requester than the one asked for and approved: every
 * event of a request (and every decision event naming it) must say the
 * same of what it is for.
 */
class ApprovalLedger {
  private readonly approved = new Set<string>();
  private readonly used = new Map<string, TrailPlace>();
  /** The earliest ending transition of each request. */
  private readonly ended = new Map<string, TrailPlace>();
  /** The first request seen used twice, with both places. */
  private reused: { id: string; first: TrailPlace; second: TrailPlace } | null = null;
  /**
   * Per request, the first of its approval events read, and the first
   * decision event naming it read before any: the others are compared with
   * them as they are read (agreeing with one, they agree with each other).
   */
  private readonly bound = new Map<string, { approval?: BoundPlace; decision?: BoundPlace }>();
  /** The first two events found to disagree on what a request is for, in trail order. */
  private mismatched: { id: string; first: BoundPlace; second: BoundPlace; differ: { first: string; second: string }[] } | null = null;

  note(event: unknown, stream: string, seq: number, time: number): void {
    const e = event as ApprovalEventShape;
    const id = e.unmapped?.approval_id;
    if (typeof id !== 'string') return;
    if (e.class_uid !== 3004) {
      // A decision event naming the request it was decided with.
      if (typeof e.unmapped?.decision === 'string') this.bind(id, { stream, seq, time, transition: 'decision', what: 'the decision event', binding: decisionBinding(e) }, false);
      return;
    }
    const transition = e.unmapped?.transition;
    if (typeof transition !== 'string') return;
    const place = { stream, seq, time, transition };
    this.bind(id, { ...place, what: `the ${transition} event`, binding: approvalBinding(e) }, true);
    if (transition === 'approved') {
      const { approvals, min } = e.entity?.data ?? {};
      if (Array.isArray(approvals) && typeof min === 'number' && new Set(approvals).size >= min) this.approved.add(id);
    } else if (transition === 'consumed') {
      const first = this.used.get(id);
      if (!first) this.used.set(id, place);
      else if (!this.reused) this.reused = { id, ...inOrder(first, place) };
    } else if (ENDING.has(transition)) {
      const earliest = this.ended.get(id);
      if (!earliest || before(place, earliest)) this.ended.set(id, place);
    }
  }

  /** Compares what one event says a request is for with what the request's events read before say. */
  private bind(id: string, place: BoundPlace, approvalEvent: boolean): void {
    const seen = this.bound.get(id);
    if (!seen) {
      this.bound.set(id, approvalEvent ? { approval: place } : { decision: place });
      return;
    }
    if (seen.approval) this.compare(id, seen.approval, place);
    else if (seen.decision) this.compare(id, seen.decision, place);
    if (approvalEvent && !seen.approval) seen.approval = place;
  }

  private compare(id: string, a: BoundPlace, b: BoundPlace): void {
    const { first, second } = inOrder(a, b);
    const differ = differences(first.binding, second.binding);
    if (differ.length === 0) return;
    if (!this.mismatched || before(second, this.mismatched.second)) this.mismatched = { id, first, second, differ };
  }

  /** The first event that says something else than another event of its request of what the request is for. */
  private mismatch(): VerifyFailure | null {
    if (!this.mismatched) return null;
    const { id, first, second, differ } = this.mismatched;
    return {
      stream: second.stream,
      seq: second.seq,
      reason: `approval ${id}: ${second.what} (at ${where(second)}) says ${differ.map((d) => d.second).join(', ')}, where ${first.what} (at ${where(first)}) says ${differ.map((d) => d.first).join(', ')}: the request was changed after it was made (rewritten in the store), and what was approved is not what was done`,
    };
  }

  /** The first use the trail does not back: unapproved, repeated, after the request ended, or of another request than the one approved. */
  failure(): VerifyFailure | null {
    const mismatch = this.mismatch();
    if (mismatch) return mismatch;
    for (const [id, at] of this.used) {
      if (!this.approved.has(id)) {
        return { stream: at.stream, seq: at.seq, reason: `approval ${id} was used, but no event in the trail approves it with the approvers it asked for (approved outside the gateway)` };
      }
    }
    if (this.reused) {
      const { id, first, second } = this.reused;
      return { stream: second.stream, seq: second.seq, reason: `approval ${id} was used twice: consumed at ${where(first)} and again at ${where(second)}, where a request is spent once (set back to approved in the store)` };
    }
    for (const [id, at] of this.used) {
      const ended = this.ended.get(id);
      if (ended && !before(at, ended)) {
        return { stream: at.stream, seq: at.seq, reason: `approval ${id} was used (consumed at ${where(at)}) after it was ${ended.transition} (at ${where(ended)}), where an ended request is never spent (reopened in the store)` };
      }
    }
    return null;
  }
}

/**
 * Trail order: seq within a stream; across streams (each read whole, one
 * after another) the events' times, the gateways' clocks. Equal times
 * count as not before: a use at the very time of an ending is not cleared.
 */
function before(a: TrailPlace, b: TrailPlace): boolean {
  return a.stream === b.stream ? a.seq < b.seq : a.time < b.time;
}

function inOrder<T extends TrailPlace>(a: T, b: T): { first: T; second: T } {
  return before(b, a) ? { first: b, second: a } : { first: a, second: b };
}

function where(place: TrailPlace): string {
  return `stream "${place.stream}" seq ${place.seq}`;
}

async function verifyStream(
  store: Store,
  stream: string,
  checkpoints: CheckpointRecord[],
  publicKey: KeyObject | null,
  anchor: CheckpointClaim | null,
  now: number,
  /** `time` is the record's, which the event's own time was checked to equal. */
  onEvent: (event: unknown, seq: number, time: number) => void,
): Promise<StreamSummary> {
  if (publicKey) {
    for (const cp of checkpoints) await checkSignature(cp, publicKey);
  }
  // Claims to match against the chain as the walk passes their seq: the
  // stored checkpoints and the anchor, in seq order.
  const claims = [...checkpoints, ...(anchor ? [{ ...anchor, anchor: true }] : [])].sort((a, b) => a.seq - b.seq);
  let next = 0;
  const matchClaims = (seq: number, hash: string): void => {
    for (; next < claims.length && claims[next]!.seq <= seq; next++) {
      const claim = claims[next]!;
      if (claim.seq === seq && claim.hash === hash) continue;
      const what = 'anchor' in claim ? 'the anchor checkpoint' : 'a stored checkpoint';
      throw new Broken(claim.seq === 0 ? 1 : claim.seq, `${what} at seq ${claim.seq} has hash ${short(claim.hash)}, but the chain has ${short(claim.seq === seq ? hash : '?')} there (forged checkpoint, or the chain was rewritten)`);
    }
  };

  let seq = 0;
  let hash = GENESIS;
  let headTime: number | null = null;
  matchClaims(0, GENESIS);
  for await (const r of store.readAudit({ stream })) {
    const expected = seq + 1;
    if (r.seq !== expected) {
      throw new Broken(expected, r.seq > expected
        ? `seq ${expected}${r.seq > expected + 1 ? `–${r.seq - 1}` : ''} missing: the next record is seq ${r.seq} (deleted records)`
        : `seq ${r.seq} appears again after seq ${seq} (inserted or reordered records)`);
    }
    if (r.prev !== hash) throw new Broken(r.seq, `prev does not match the hash of seq ${seq} (inserted, deleted or reordered records)`);
    let event: unknown;
    try {
      event = JSON.parse(r.event);
    } catch {
      throw new Broken(r.seq, 'the event is not valid JSON (edited)');
    }
    if (canonicalJson(event) !== r.event) throw new Broken(r.seq, 'the event text is not in canonical form (edited)');
    const computed = recordHash(stream, r.seq, r.prev, r.event);
    if (computed !== r.hash) throw new Broken(r.seq, 'the hash does not match the record (edited)');
    const time = (event as { time?: unknown }).time;
    if (typeof time === 'number' && time !== r.time) throw new Broken(r.seq, `the stored time ${r.time} differs from the event's time ${time} (edited)`);
    // Times are the rewriter's to choose, but not a future one: that would pass for a gateway still writing.
    if (r.time > now + CLOCK_SKEW_MS) throw new Broken(r.seq, 'the record is dated in the future (edited)');
    seq = r.seq;
    hash = r.hash;
    headTime = r.time;
    matchClaims(seq, hash);
    onEvent(event, seq, r.time);
  }

  // Claims beyond the end: the tail was cut off.
  if (next < claims.length) {
    const claim = claims[next]!;
    const what = 'anchor' in claim ? 'the anchor checkpoint' : 'a stored checkpoint';
    if (seq === 0) throw new Broken(1, `the stream has no records, but ${what} vouches for seq ${claim.seq}: all its records were removed (deleted)`);
    throw new Broken(seq + 1, `the chain ends at seq ${seq}, but ${what} vouches for seq ${claim.seq}: records from seq ${seq + 1} on were removed (truncated)`);
  }

  const newest = checkpoints.reduce<CheckpointRecord | null>((n, cp) => (n === null || cp.seq > n.seq || (cp.seq === n.seq && cp.time > n.time) ? cp : n), null);
  return {
    stream, records: seq, seq, hash, checkpoints: checkpoints.length,
    lastCheckpoint: newest?.time ?? null, lastCheckpointSeq: newest?.seq ?? null, headTime, anchored: anchor !== null,
  };
}

/** How far the clocks of the gateways and of the verifier may disagree. */
const CLOCK_SKEW_MS = 60_000;

/** See VerifyOptions.requireCheckpoints. */
function checkpointsCover(summary: StreamSummary, maxGapMs: number, now: number): void {
  if (summary.records === 0) return;
  if (summary.lastCheckpoint === null || summary.lastCheckpointSeq === null) {
    throw new Broken(1, 'the stream has records but no checkpoint, where gateways sign one when they start: its checkpoints were removed, or it was written by no gateway of this deployment (a rewritten or made-up stream)');
  }
  if (summary.lastCheckpointSeq === summary.seq || now - summary.lastCheckpoint <= maxGapMs) return;
  throw new Broken(summary.lastCheckpointSeq + 1, `the newest checkpoint signs seq ${summary.lastCheckpointSeq}, not the head (seq ${summary.seq}), and is ${Math.round((now - summary.lastCheckpoint) / 1000)} s old, where a running gateway signs at least every ${Math.round(maxGapMs / 1000)} s and a stopping one signs its head: later checkpoints were removed (a rewritten tail), or the gateway crashed (starting it again on this stream signs the head)`);
}

async function checkSignature(cp: CheckpointRecord, publicKey: KeyObject): Promise<void> {
  const at = cp.seq === 0 ? 1 : cp.seq;
  let claim: CheckpointClaim;
  try {
    claim = await verifyCheckpoint(cp.jws, publicKey);
  } catch (err) {
    if (!(err instanceof CheckpointInvalid)) throw err;
    throw new Broken(at, `the stored checkpoint at seq ${cp.seq}: ${err.message} (forged checkpoint)`);
  }
  if (!sameClaim(cp, claim)) {
    throw new Broken(at, `the stored checkpoint at seq ${cp.seq} does not say what its signature says (signed seq ${claim.seq}, hash ${short(claim.hash)}; edited)`);
  }
}

/** The anchor must verify before it can be trusted to say anything about the chain. */
async function readAnchor(jws: string, publicKey: KeyObject | null): Promise<CheckpointClaim> {
  if (!publicKey) throw new AnchorError('an anchor needs the public key to check its signature');
  try {
    return await verifyCheckpoint(jws, publicKey);
  } catch (err) {
    if (err instanceof CheckpointInvalid) throw new AnchorError(`the anchor is not valid: ${err.message}`);
    throw err;
  }
}

/** The anchor itself is unusable (not a verification failure of the store). */
export class AnchorError extends Error {}

function short(hash: string): string {
  return hash.length > 12 ? `${hash.slice(0, 12)}…` : hash;
}
