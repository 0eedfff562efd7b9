import { JWTPayload } from 'jose';

/**
 * Remembers tokens whose signature this process has already verified, until they expire.
 * Keyed by the exact token string, so a hit is as good as a fresh verification; resource servers
 * introspect the same token many times in its short life and ES256 verification dominates the cost.
 */
export class VerifiedTokenCache {
  private readonly entries = new Map<string, JWTPayload>();
  constructor(private readonly maxEntries = 50_000) {}

  get(token: string, nowSeconds: number): JWTPayload | undefined {
    const payload = this.entries.get(token);
    if (payload && (payload.exp as number) <= nowSeconds) {
      this.entries.delete(token);
      return undefined;
    }
    return payload;
  }

  set(token: string, payload: JWTPayload): void {
    if (this.entries.size >= this.maxEntries) {
      // Evict the oldest insertion (Map keeps insertion order): cheap and good enough for short-lived tokens.
      this.entries.delete(this.entries.keys().next().value as string);
    }
    this.entries.set(token, payload);
  }
}
