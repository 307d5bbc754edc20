import type { KeyObject } from 'node:crypto';
import { compactVerify, decodeProtectedHeader } from 'jose';
import type { CheckpointRecord } from '../store/store.js';
import { canonicalJson } from './canonical.js';
import { algorithmOf, CHECKPOINT_TYP } from './key-source.js';

/** What a checkpoint vouches for: stream `stream` had `hash` at `seq`, at `time` (ms since the epoch). */
export interface CheckpointClaim {
  stream: string;
  seq: number;
  hash: string;
  time: number;
}

/** The signed bytes: the claim as canonical JSON, so any JWS library can check it. */
export function checkpointPayload(claim: CheckpointClaim): Uint8Array {
  const { stream, seq, hash, time } = claim;
  return new TextEncoder().encode(canonicalJson({ hash, seq, stream, time }));
}

/** Why a checkpoint JWS was refused, in words for the verify report. */
export class CheckpointInvalid extends Error {}

/**
 * Verifies a checkpoint JWS with `publicKey` and returns its claim. The
 * algorithm is taken from the key, never from the token's header, so a
 * token cannot pick a weaker algorithm or "none".
 */
export async function verifyCheckpoint(jws: string, publicKey: KeyObject): Promise<CheckpointClaim> {
  const algorithm = algorithmOf(publicKey);
  if (!algorithm) throw new CheckpointInvalid('the public key is neither EC P-256 nor Ed25519');
  let typ: unknown;
  try {
    typ = decodeProtectedHeader(jws).typ;
  } catch {
    throw new CheckpointInvalid('not a compact JWS');
  }
  if (typ !== CHECKPOINT_TYP) throw new CheckpointInvalid(`not a Gatehouse checkpoint (typ ${JSON.stringify(typ)})`);
  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(jws, publicKey, { algorithms: [algorithm] }));
  } catch {
    throw new CheckpointInvalid('signature does not verify with the public key');
  }
  const claim = JSON.parse(new TextDecoder().decode(payload)) as Partial<CheckpointClaim>;
  if (typeof claim.stream !== 'string' || !Number.isSafeInteger(claim.seq) || typeof claim.hash !== 'string' || typeof claim.time !== 'number') {
    throw new CheckpointInvalid('signed payload is not {stream, seq, hash, time}');
  }
  return claim as CheckpointClaim;
}

/** A stored checkpoint must say in its columns exactly what its signature says. */
export function sameClaim(record: CheckpointRecord, claim: CheckpointClaim): boolean {
  return record.stream === claim.stream && record.seq === claim.seq && record.hash === claim.hash && record.time === claim.time;
}
