/** Pure arithmetic over rate-limit and budget counters (no Redis here), shared by exchange, authorize and introspection. */

export interface RateLimitSpec {
  max: number;
  window_seconds: number;
}

/** What a grant allows: both fields are immutable after creation, so they can be cached. */
export interface GrantLimits {
  id: string;
  rateLimit: RateLimitSpec | null;
  /** Lifetime budget: total uses ever, null = unlimited. */
  maxUses: number | null;
  expiresAt: Date | null;
}

/** Counters of one grant as Redis holds them. */
export interface GrantUsage {
  /** Uses in the current window (0 when no window is running). */
  windowUsed: number;
  /** When the current window ends (epoch ms), or null when no window is running. */
  windowResetsAt: number | null;
  /** Uses over the grant's lifetime (counted only when it has a `max_uses`). */
  usesUsed: number;
}

/** The limit closest to refusing, as introspection shows it for each capability. */
export interface Budget {
  /** The grant of the chain whose limit this is. */
  grant_id: string;
  used: number;
  max: number;
  /** NumericDate (seconds) when the window resets; null for a lifetime budget or when no window is running. */
  resets_at: number | null;
}

export const isLimited = (g: GrantLimits): boolean => g.rateLimit !== null || g.maxUses !== null;

const EMPTY: GrantUsage = { windowUsed: 0, windowResetsAt: null, usesUsed: 0 };

/** A window whose end has passed no longer counts, even if Redis has not evicted its key yet. */
function current(u: GrantUsage | undefined, nowMs: number): GrantUsage {
  if (!u) return EMPTY;
  if (u.windowResetsAt === null || u.windowResetsAt <= nowMs) return { windowUsed: 0, windowResetsAt: null, usesUsed: u.usesUsed };
  return u;
}

interface Candidate {
  budget: Budget;
  remaining: number;
  lifetime: boolean;
}

function candidates(chain: GrantLimits[], usage: Map<string, GrantUsage>, nowMs: number): Candidate[] {
  const out: Candidate[] = [];
  for (const g of chain) {
    const u = current(usage.get(g.id), nowMs);
    if (g.maxUses !== null) {
      out.push({ budget: { grant_id: g.id, used: u.usesUsed, max: g.maxUses, resets_at: null }, remaining: Math.max(0, g.maxUses - u.usesUsed), lifetime: true });
    }
    if (g.rateLimit !== null) {
      const resets = u.windowResetsAt === null ? null : Math.ceil(u.windowResetsAt / 1000);
      out.push({ budget: { grant_id: g.id, used: u.windowUsed, max: g.rateLimit.max, resets_at: resets }, remaining: Math.max(0, g.rateLimit.max - u.windowUsed), lifetime: false });
    }
  }
  return out;
}

/**
 * Uses left before a refusal along a capability's chain (every ancestor counts), the smallest over every
 * window and lifetime budget; null when nothing in the chain is limited.
 */
export function remainingUses(chain: GrantLimits[], usage: Map<string, GrantUsage>, nowMs: number): number | null {
  const c = candidates(chain, usage, nowMs);
  return c.length ? Math.min(...c.map((x) => x.remaining)) : null;
}

/**
 * The binding limit of a chain: the one with the fewest uses left. On a tie a lifetime budget wins
 * (it never resets), then the grant nearest the root (it is shared by the most sub-grants).
 */
export function bindingBudget(chain: GrantLimits[], usage: Map<string, GrantUsage>, nowMs: number): Budget | null {
  let best: Candidate | null = null;
  for (const c of candidates(chain, usage, nowMs)) {
    if (!best || c.remaining < best.remaining || (c.remaining === best.remaining && c.lifetime && !best.lifetime)) best = c;
  }
  return best?.budget ?? null;
}
