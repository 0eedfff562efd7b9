import { JWTPayload } from 'jose';

/**
 * Remembers tokens whose signature this process has already verified, until they expire.
 * Keyed by the exact token string, so a hit is as good as a fresh verification; resource servers
 * introspect the same token many times in its short life and ES256 verification dominates the cost.
 * `maxAgeSeconds` bounds how long a verification is trusted when the verifying keys can change
 * elsewhere (a trusted issuer's JWKS is itself only cached that long). The value is the payload, or
 * whatever the caller derives from it once per token.
 */
export class VerifiedTokenCache<T = JWTPayload> {
  private readonly entries = new Map<string, { value: T; until: number }>();
  constructor(
    private readonly maxEntries = 50_000,
    private readonly maxAgeSeconds = Infinity,
  ) {}

  get(token: string, nowSeconds: number): T | undefined {
    const entry = this.entries.get(token);
    if (entry && entry.until <= nowSeconds) {
      this.entries.delete(token);
      return undefined;
    }
    return entry?.value;
  }

  /** `exp`: the token's expiry (seconds since the epoch); the entry never outlives it. */
  set(token: string, value: T, exp: number, nowSeconds = Math.floor(Date.now() / 1000)): void {
    if (this.entries.size >= this.maxEntries) {
      // Evict the oldest insertion (Map keeps insertion order): cheap and good enough for short-lived tokens.
      this.entries.delete(this.entries.keys().next().value as string);
    }
    this.entries.set(token, { value, until: Math.min(exp, nowSeconds + this.maxAgeSeconds) });
  }
}
