/**
 * What a worker vouches for: the digest of one execution's result, which it signs with its
 * Ed25519 key, and the digest of the result alone (exit code and output), which redundant
 * executions of one task are compared by.
 */

import { type KeyObject, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import type { ExecutionResult } from './job.js';

/**
 * sha256 of the exit code, the output and the root of the files left under /outputs (when
 * there are any): equal for equal results, whoever ran them, so replicas that wrote
 * different files disagree.
 */
export function outputDigest(result: Pick<ExecutionResult, 'exitCode' | 'stdout' | 'stderr' | 'outputs'>): string {
  const files = result.outputs && result.outputs.files.length > 0 ? [result.outputs.root] : [];
  return createHash('sha256')
    .update(JSON.stringify([result.exitCode ?? null, result.stdout, result.stderr, ...files]))
    .digest('hex');
}

/**
 * The bytes a worker signs: which job and lease, and everything it reports about the
 * result, the root digest of its outputs' manifest included where it collected any.
 */
export function signedBytes(jobId: string, leaseToken: string, r: ExecutionResult): Buffer {
  return Buffer.from(
    JSON.stringify([
      'gridx-result/1',
      jobId,
      leaseToken,
      r.exitCode ?? null,
      r.oomKilled,
      r.timedOut,
      r.cancelled,
      outputDigest(r),
      r.stdoutTruncated,
      r.stderrTruncated,
      r.startedAt,
      r.finishedAt,
      r.durationMs,
      ...(r.outputs ? [r.outputs.root, r.outputs.exceeded] : []),
    ]),
  );
}

export interface SigningKeys {
  /** PKCS#8 PEM; stays with the worker. */
  privateKeyPem: string;
  /** SPKI DER, base64: what the server is told. */
  publicKey: string;
}

export function newSigningKeys(): SigningKeys {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
  };
}

/** A worker's private key, parsed once: parsing the PEM costs more than the signature. */
export function signingKeyOf(privateKeyPem: string): KeyObject {
  return createPrivateKey(privateKeyPem);
}

export function signResult(privateKey: KeyObject, jobId: string, leaseToken: string, result: ExecutionResult): string {
  return sign(null, signedBytes(jobId, leaseToken, result), privateKey).toString('base64');
}

/** Parsed public keys of the workers seen lately (parsing costs more than verifying). */
const publicKeys = new Map<string, KeyObject>();
const MAX_PUBLIC_KEYS = 4096;

function publicKeyOf(publicKey: string): KeyObject {
  let key = publicKeys.get(publicKey);
  if (!key) {
    key = createPublicKey({ key: Buffer.from(publicKey, 'base64'), format: 'der', type: 'spki' });
    if (publicKeys.size >= MAX_PUBLIC_KEYS) publicKeys.delete(publicKeys.keys().next().value!);
    publicKeys.set(publicKey, key);
  }
  return key;
}

/** Whether `signature` is the holder of `publicKey` vouching for this result; false for malformed keys or signatures. */
export function verifyResult(publicKey: string, signature: string, jobId: string, leaseToken: string, result: ExecutionResult): boolean {
  try {
    return verify(null, signedBytes(jobId, leaseToken, result), publicKeyOf(publicKey), Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

/** Whether `publicKey` is a well-formed Ed25519 SPKI key. */
export function isSigningKey(publicKey: string): boolean {
  try {
    return createPublicKey({ key: Buffer.from(publicKey, 'base64'), format: 'der', type: 'spki' }).asymmetricKeyType === 'ed25519';
  } catch {
    return false;
  }
}
