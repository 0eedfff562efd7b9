import { JWTPayload } from 'jose';

/**
 * Remembers tokens whose signature this process has already verified, until they expire.
 * Keyed by the exact token string, so a hit is as good as a fresh verification; resource servers
 * introspect the same token many times in its short life and ES256 verification dominates the cost.
 * `maxAgeSeconds` bounds how long a verification is trusted when the verifying keys can change
 * elsewhere (a trusted issuer's JWKS is itself only cached that long).
 */
export class VerifiedTokenCache {
  private readonly entries = new Map<string, { payload: JWTPayload; until: number }>();
  constructor(
    private readonly maxEntries = 50_000,
    private readonly maxAgeSeconds = Infinity,
  ) {}

  get(token: string, nowSeconds: number): JWTPayload | undefined {
    const entry = this.entries.get(token);
    if (entry && entry.until <= nowSeconds) {
      this.entries.delete(token);
      return undefined;
    }
    return entry?.payload;
  }

  set(token: string, payload: JWTPayload, nowSeconds = Math.floor(Date.now() / 1000)): void {
    if (this.entries.size >= this.maxEntries) {
      // Evict the oldest insertion (Map keeps insertion order): cheap and good enough for short-lived tokens.
      this.entries.delete(this.entries.keys().next().value as string);
    }
    this.entries.set(token, { payload, until: Math.min(payload.exp as number, nowSeconds + this.maxAgeSeconds) });
  }
}
