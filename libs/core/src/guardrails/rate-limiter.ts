import { Inject, Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { createHash } from 'node:crypto';
import { GrantRepository } from '../../../persistence/src/index.js';
import { REDIS, RedisKeys } from '../redis/redis.module.js';
import { bindingBudget, Budget, GrantLimits, GrantUsage, isLimited } from './budget.js';

/** Redis could not be asked: callers fail closed (no token, no "allowed"). */
export class LimiterUnavailableError extends Error {}

export interface Use {
  grant: GrantLimits;
  /** Uses this request takes from the grant (a token with two capabilities on one chain takes two). */
  cost: number;
}

export type ConsumeOutcome =
  | { kind: 'allowed'; /** True when the use was already paid for (first call with a token). */ free: boolean; usage: Map<string, GrantUsage> }
  | { kind: 'rate_limited'; grantId: string; retryAfterSeconds: number; usage: Map<string, GrantUsage> }
  | { kind: 'budget_exhausted'; grantId: string; usage: Map<string, GrantUsage> };

/**
 * Checks every grant, then consumes from every grant, in one atomic step (a Lua script runs alone).
 *
 * Windows are FIXED windows that start with the first use of a grant (the counter key expires after
 * `window_seconds`), not sliding logs. Why: one integer per grant whatever `max` is (a grant may allow
 * a billion uses a year; a sliding log would keep one entry per use), one INCRBY per use, and `used`,
 * `max`, `resets_at` mean exactly what they say. The price: right across a window boundary a client can
 * make up to 2 x max uses in a span shorter than one window. Lifetime budgets (`max_uses`) are exact
 * counters with no window.
 *
 * KEYS[1]              first-use marker (read only in mode "first")
 * KEYS[2i], KEYS[2i+1] window counter and lifetime counter of grant i
 * ARGV[1] mode         "consume" | "first" (free when the marker is new) | "peek" (read only)
 * ARGV[2]              marker TTL in ms
 * ARGV[3+5(i-1)..]     cost, window max (0 = none), window ms, lifetime max (0 = none), lifetime key TTL ms (0 = keep)
 * Returns {status, retry_ms, index, then per grant: window used, window PTTL ms, lifetime used}
 * status: 0 consumed (or peeked), 1 free first use, 2 rate limited, 3 budget exhausted
 */
const SCRIPT = `
local mode = ARGV[1]
local n = (#KEYS - 1) / 2
local used, ttl, total = {}, {}, {}
for i = 1, n do
  used[i] = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  ttl[i] = redis.call('PTTL', KEYS[2 * i])
  total[i] = tonumber(redis.call('GET', KEYS[2 * i + 1]) or '0')
end
local function report(status, retry, index)
  local out = { status, retry, index }
  for i = 1, n do
    out[#out + 1] = used[i]
    out[#out + 1] = ttl[i]
    out[#out + 1] = total[i]
  end
  return out
end
if mode == 'peek' then return report(0, 0, 0) end
if mode == 'first' and redis.call('SET', KEYS[1], '1', 'PX', ARGV[2], 'NX') then return report(1, 0, 0) end
local exhausted, limited, retry = 0, 0, 0
for i = 1, n do
  local a = 3 + 5 * (i - 1)
  local cost, max, win, cap = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  if cap > 0 and total[i] + cost > cap then
    if exhausted == 0 then exhausted = i end
  elseif max > 0 and used[i] + cost > max then
    if limited == 0 then limited = i end
    local wait = ttl[i]
    if wait < 0 then wait = win end
    if wait > retry then retry = wait end
  end
end
if exhausted > 0 then return report(3, 0, exhausted) end
if limited > 0 then return report(2, retry, limited) end
for i = 1, n do
  local a = 3 + 5 * (i - 1)
  local cost, max, win, cap, keep = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  if cost > 0 then
    if max > 0 then
      if ttl[i] < 0 then
        redis.call('SET', KEYS[2 * i], cost, 'PX', win)
        used[i] = cost
        ttl[i] = win
      else
        used[i] = redis.call('INCRBY', KEYS[2 * i], cost)
      end
    end
    if cap > 0 then
      total[i] = redis.call('INCRBY', KEYS[2 * i + 1], cost)
      if keep > 0 then redis.call('PEXPIRE', KEYS[2 * i + 1], keep) end
    end
  end
end
return report(0, 0, 0)
`;
const SHA = createHash('sha1').update(SCRIPT).digest('hex');
const DAY_MS = 86_400_000;
const LIMITS_CACHE_SIZE = 10_000;

/**
 * Rate limits and lifetime budgets of grants, in Redis, shared by every API process. A use through a
 * sub-grant is a use of every grant of its chain, so callers pass the whole chain.
 */
@Injectable()
export class RateLimiter {
  private readonly limits = new Map<string, GrantLimits>();

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly k: RedisKeys,
    private readonly grants: GrantRepository,
  ) {}

  /**
   * Takes `cost` uses from every grant, or none if any grant is over its limit. With `firstUse`, the
   * call is free (nothing checked or taken) when that marker did not exist yet.
   */
  async consume(uses: Use[], firstUse?: { parts: string[]; ttlMs: number }): Promise<ConsumeOutcome> {
    const merged = new Map<string, Use>();
    for (const u of uses) {
      if (!isLimited(u.grant)) continue;
      const prev = merged.get(u.grant.id);
      merged.set(u.grant.id, { grant: u.grant, cost: (prev?.cost ?? 0) + u.cost });
    }
    const limited = [...merged.values()];
    if (!limited.length) return { kind: 'allowed', free: false, usage: new Map() };
    const now = Date.now();
    const args: (string | number)[] = [firstUse ? 'first' : 'consume', Math.max(1000, Math.ceil(firstUse?.ttlMs ?? 1000))];
    for (const { grant: g, cost } of limited) {
      const keep = g.expiresAt ? Math.max(1, g.expiresAt.getTime() - now + DAY_MS) : 0;
      args.push(cost, g.rateLimit?.max ?? 0, (g.rateLimit?.window_seconds ?? 0) * 1000, g.maxUses ?? 0, keep);
    }
    const marker = firstUse ? this.k.key('rl', 'f', ...firstUse.parts) : this.k.key('rl', 'f', '-');
    const out = await this.run([marker, ...this.grantKeys(limited.map((u) => u.grant.id))], args);
    const usage = decodeUsage(limited.map((u) => u.grant.id), out, now);
    const [status, retryMs, index] = out;
    if (status === 2) return { kind: 'rate_limited', grantId: limited[index - 1].grant.id, retryAfterSeconds: Math.max(1, Math.ceil(retryMs / 1000)), usage };
    if (status === 3) return { kind: 'budget_exhausted', grantId: limited[index - 1].grant.id, usage };
    return { kind: 'allowed', free: status === 1, usage };
  }

  /** Current counters, read only. */
  async peek(grants: GrantLimits[]): Promise<Map<string, GrantUsage>> {
    const limited = grants.filter(isLimited);
    if (!limited.length) return new Map();
    const args: (string | number)[] = ['peek', 1000];
    for (const g of limited) args.push(0, g.rateLimit?.max ?? 0, (g.rateLimit?.window_seconds ?? 0) * 1000, g.maxUses ?? 0, 0);
    const now = Date.now();
    const out = await this.run([this.k.key('rl', 'f', '-'), ...this.grantKeys(limited.map((g) => g.id))], args);
    return decodeUsage(limited.map((g) => g.id), out, now);
  }

  /** Lifetime uses consumed so far, e.g. for carving a sub-grant's budget out of what is left. */
  async usesConsumed(grantId: string): Promise<number> {
    const limits = (await this.limitsOf([grantId])).get(grantId);
    if (!limits || limits.maxUses === null) return 0;
    return (await this.peek([limits])).get(grantId)?.usesUsed ?? 0;
  }

  /**
   * Limits of grants by id. Grants never change their limits after creation, so they are cached
   * in-process (bounded) and the hot paths (authorize, introspection) rarely touch Postgres.
   */
  async limitsOf(ids: string[]): Promise<Map<string, GrantLimits>> {
    const out = new Map<string, GrantLimits>();
    const missing: string[] = [];
    for (const id of new Set(ids)) {
      const hit = this.limits.get(id);
      if (hit) out.set(id, hit);
      else missing.push(id);
    }
    if (missing.length) {
      for (const g of await this.grants.findByIds(missing)) {
        const l = toLimits(g);
        out.set(g.id, l);
        if (this.limits.size >= LIMITS_CACHE_SIZE) this.limits.delete(this.limits.keys().next().value as string);
        this.limits.set(g.id, l);
      }
    }
    return out;
  }

  /** True when any of these grants has a rate limit or a lifetime budget. Throws when Postgres cannot say. */
  async anyLimited(ids: string[]): Promise<boolean> {
    return [...(await this.limitsOf(ids)).values()].some(isLimited);
  }

  /**
   * Adds `budget` (the binding limit of the chain) to each capability that has a limit. Never fails:
   * when Postgres or Redis cannot answer, the capabilities are returned without budgets.
   */
  async withBudgets<T extends { grant_chain: string[] }>(details: T[]): Promise<(T & { budget?: Budget })[]> {
    try {
      const limits = await this.limitsOf(details.flatMap((d) => d.grant_chain));
      const all = [...limits.values()].filter(isLimited);
      if (!all.length) return details;
      const usage = await this.peek(all);
      const now = Date.now();
      return details.map((d) => {
        const budget = bindingBudget(chainLimits(d.grant_chain, limits), usage, now);
        return budget ? { ...d, budget } : d;
      });
    } catch {
      return details;
    }
  }

  private grantKeys(ids: string[]): string[] {
    return ids.flatMap((id) => [this.k.key('rl', 'w', id), this.k.key('rl', 'n', id)]);
  }

  private async run(keys: string[], args: (string | number)[]): Promise<number[]> {
    try {
      try {
        return (await this.redis.evalsha(SHA, keys.length, ...keys, ...args)) as number[];
      } catch (err) {
        if (!/NOSCRIPT/.test((err as Error).message)) throw err;
        return (await this.redis.eval(SCRIPT, keys.length, ...keys, ...args)) as number[];
      }
    } catch (err) {
      throw new LimiterUnavailableError(`rate-limit store unreachable: ${(err as Error).message}`);
    }
  }
}

export function toLimits(g: { id: string; rateLimit: { max: number; window_seconds: number } | null; maxUses: number | null; expiresAt: Date | null }): GrantLimits {
  return { id: g.id, rateLimit: g.rateLimit ? { max: g.rateLimit.max, window_seconds: g.rateLimit.window_seconds } : null, maxUses: g.maxUses, expiresAt: g.expiresAt };
}

/** The limits of a chain, root first; grants that no longer exist are skipped. */
export function chainLimits(chain: string[], limits: Map<string, GrantLimits>): GrantLimits[] {
  return chain.map((id) => limits.get(id)).filter((g): g is GrantLimits => g !== undefined);
}

function decodeUsage(ids: string[], out: number[], now: number): Map<string, GrantUsage> {
  const usage = new Map<string, GrantUsage>();
  ids.forEach((id, i) => {
    const [used, pttl, total] = out.slice(3 + 3 * i, 6 + 3 * i);
    usage.set(id, { windowUsed: pttl > 0 ? used : 0, windowResetsAt: pttl > 0 ? now + pttl : null, usesUsed: total });
  });
  return usage;
}
