import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { calculateJwkThumbprint, CompactSign, exportJWK } from 'jose';

export type CheckpointAlgorithm = 'ES256' | 'EdDSA';

/** The JWS `typ` of a checkpoint, so one can never be mistaken for another kind of token. */
export const CHECKPOINT_TYP = 'gatehouse-audit-checkpoint+jws';

/**
 * Where checkpoint signatures come from. A file today; the interface keeps
 * the door open for a KMS or HSM, where the private key never enters the
 * process.
 */
export interface CheckpointKeySource {
  /** RFC 7638 JWK thumbprint of the public key. */
  readonly keyId: string;
  readonly algorithm: CheckpointAlgorithm;
  readonly publicKey: KeyObject;
  /** A compact JWS over `payload`. */
  sign(payload: Uint8Array): Promise<string>;
}

/** A checkpoint key that cannot be used; the message says which file and what to do. */
export class CheckpointKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointKeyError';
  }
}

/** A PKCS#8 PEM private key on disk: EC P-256 for ES256, Ed25519 for EdDSA. */
export class FileCheckpointKey implements CheckpointKeySource {
  private constructor(
    readonly keyId: string,
    readonly algorithm: CheckpointAlgorithm,
    readonly publicKey: KeyObject,
    private readonly privateKey: KeyObject,
  ) {}

  static async load(path: string, algorithm: CheckpointAlgorithm): Promise<FileCheckpointKey> {
    let pem: string;
    try {
      pem = readFileSync(path, 'utf8');
    } catch (err) {
      throw new CheckpointKeyError(`cannot read the checkpoint key ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); create one with: gatehouse audit keygen --out ${path}`);
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: pem, format: 'pem' });
    } catch {
      // Never echo the parser's message: it may quote the key material.
      throw new CheckpointKeyError(`${path} is not a PEM private key; create one with: gatehouse audit keygen --out ${path}`);
    }
    checkKeyType(privateKey, algorithm, path);
    const publicKey = createPublicKey(privateKey);
    return new FileCheckpointKey(await keyIdOf(publicKey), algorithm, publicKey, privateKey);
  }

  sign(payload: Uint8Array): Promise<string> {
    return new CompactSign(payload)
      .setProtectedHeader({ alg: this.algorithm, kid: this.keyId, typ: CHECKPOINT_TYP })
      .sign(this.privateKey);
  }
}

/** A new private key (PKCS#8 PEM) and its public key (SPKI PEM). */
export function generateCheckpointKey(algorithm: CheckpointAlgorithm): { privatePem: string; publicPem: string } {
  const pair = algorithm === 'ES256'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : generateKeyPairSync('ed25519');
  return {
    privatePem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** Reads a public key (SPKI PEM), or the public half of a private key. */
export function publicKeyFromPem(pem: string, origin: string): KeyObject {
  try {
    return createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw new CheckpointKeyError(`${origin} is not a PEM public or private key`);
  }
}

/** The algorithm a checkpoint key supports, from the key itself. */
export function algorithmOf(key: KeyObject): CheckpointAlgorithm | null {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  return null;
}

export async function keyIdOf(publicKey: KeyObject): Promise<string> {
  return calculateJwkThumbprint(await exportJWK(publicKey));
}

function checkKeyType(key: KeyObject, algorithm: CheckpointAlgorithm, path: string): void {
  const actual = algorithmOf(key);
  if (actual === algorithm) return;
  const want = algorithm === 'ES256' ? 'an EC P-256 key' : 'an Ed25519 key';
  const have = actual ? `a key for ${actual}` : `a ${key.asymmetricKeyType ?? 'unknown'} key`;
  throw new CheckpointKeyError(`${path} holds ${have}, but audit.checkpoint.algorithm ${algorithm} needs ${want}; set the algorithm to match or run: gatehouse audit keygen --alg ${algorithm} --out ${path}`);
}
