import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** 256 bits of randomness: high-entropy secrets are safe to store as a fast hash (no KDF needed). */
export const generateSecret = (): string => randomBytes(32).toString('base64url');

export const hashSecret = (secret: string): string => createHash('sha256').update(secret, 'utf8').digest('hex');

/** Compares hashes in constant time, so timing reveals nothing about the stored value. */
export function secretMatches(presented: string, storedHash: string | null): boolean {
  const a = Buffer.from(hashSecret(presented), 'hex');
  const b = Buffer.from(storedHash ?? '0'.repeat(64), 'hex');
  return a.length === b.length && timingSafeEqual(a, b) && storedHash !== null;
}
