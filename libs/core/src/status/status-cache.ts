import { Inject, Injectable } from '@nestjs/common';
import { ChainableCommander, Redis } from 'ioredis';
import { AgentRepository, GrantRepository, IssuedTokenRepository } from '../../../persistence/src/index.js';
import { REDIS, RedisKeys } from '../redis/redis.module.js';
import { CacheCoherence, Invalidation } from './cache-coherence.js';

export type GrantState = { status: 'active'; expiresAt: number | null } | { status: 'revoked' | 'expired' | 'missing' };

export interface StatusSnapshot {
  grants: Map<string, GrantState>;
  /** Agent id -> active. */
  agents: Map<string, boolean>;
  tokenRevoked: boolean;
}

export class StatusUnavailableError extends Error {}

const DAY = 86_400;
const LOCAL_MAX_ENTRIES = 500_000;

/**
 * Grant, agent and token status, shared by every API process through Redis with Postgres as the truth.
 *
 * Consistency: writers (revoke, disable) set a tombstone in Redis *before* their Postgres transaction
 * commits; readers fill misses from Postgres with SET NX. A reader that loaded a stale "active" row
 * therefore can never overwrite the tombstone, and once a revoke has returned, no process sees the
 * capability as active. If the tombstone cannot be written the revoke is refused, not half-done.
 */
@Injectable()
export class StatusCache {
  /**
   * Answers already read through Redis, kept in this process while CacheCoherence vouches for them:
   * the hot paths then skip the Redis round trip. Keyed by the bare id (no per-lookup key strings).
   */
  private readonly localGrants = new Map<string, GrantState>();
  private readonly localAgents = new Map<string, boolean>();
  /** jti -> revoked. */
  private readonly localTokens = new Map<string, boolean>();

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly k: RedisKeys,
    private readonly grants: GrantRepository,
    private readonly agents: AgentRepository,
    private readonly tokens: IssuedTokenRepository,
    private readonly coherence: CacheCoherence,
  ) {
    coherence.onInvalidate((change) => {
      if (change === 'all') return this.clearLocal();
      for (const id of change.grants ?? []) this.localGrants.delete(id);
      for (const id of change.agents ?? []) this.localAgents.delete(id);
      for (const jti of change.tokens ?? []) this.localTokens.delete(jti);
    });
  }

  private gk = (id: string) => this.k.key('st', 'g', id);
  private ak = (id: string) => this.k.key('st', 'a', id);
  private tk = (jti: string) => this.k.key('st', 't', jti);

  async lookup(grantIds: string[], agentIds: string[], jti: string | null): Promise<StatusSnapshot> {
    const local = this.coherence.live() ? this.fromLocal(grantIds, agentIds, jti) : null;
    if (local) return local;
    const epoch = this.coherence.epoch;
    const keys = [...grantIds.map(this.gk), ...agentIds.map(this.ak), ...(jti ? [this.tk(jti)] : [])];
    let values: (string | null)[];
    let redisUp = true;
    try {
      values = keys.length ? await this.redis.mget(keys) : [];
    } catch {
      // Redis unreachable: every status comes from Postgres (nothing is written back).
      values = keys.map(() => null);
      redisUp = false;
    }
    const grantValues = values.slice(0, grantIds.length);
    const agentValues = values.slice(grantIds.length, grantIds.length + agentIds.length);
    const tokenValue = jti ? values[values.length - 1] : 'a';

    const missingGrants = grantIds.filter((_, i) => grantValues[i] === null);
    const missingAgents = agentIds.filter((_, i) => agentValues[i] === null);
    const missingJti = jti && tokenValue === null ? jti : null;
    const filled = missingGrants.length || missingAgents.length || missingJti ? await this.fill(missingGrants, missingAgents, missingJti, redisUp) : EMPTY_FILL;

    const grants = new Map<string, GrantState>();
    grantIds.forEach((id, i) => grants.set(id, decodeGrant(grantValues[i] ?? filled.grants.get(id)!)));
    const agents = new Map<string, boolean>();
    agentIds.forEach((id, i) => agents.set(id, (agentValues[i] ?? filled.agents.get(id)) === 'a'));
    const token = tokenValue ?? filled.token;
    const snapshot = { grants, agents, tokenRevoked: token !== 'a' };
    // Only what Redis answered or accepted may be kept: with Redis away nothing vouches for it.
    if (redisUp && this.coherence.mayStore(epoch)) this.keep(snapshot, jti);
    return snapshot;
  }

  /** The snapshot from this process's memory, or null if any part of it is missing there. */
  private fromLocal(grantIds: string[], agentIds: string[], jti: string | null): StatusSnapshot | null {
    const grants = new Map<string, GrantState>();
    for (const id of grantIds) {
      const state = this.localGrants.get(id);
      if (!state) return null;
      grants.set(id, state);
    }
    const agents = new Map<string, boolean>();
    for (const id of agentIds) {
      const active = this.localAgents.get(id);
      if (active === undefined) return null;
      agents.set(id, active);
    }
    const tokenRevoked = jti ? this.localTokens.get(jti) : false;
    if (tokenRevoked === undefined) return null;
    return { grants, agents, tokenRevoked };
  }

  private keep(snapshot: StatusSnapshot, jti: string | null): void {
    // Rare: bounded memory over precision.
    if (this.localGrants.size + this.localAgents.size + this.localTokens.size > LOCAL_MAX_ENTRIES) this.clearLocal();
    for (const [id, state] of snapshot.grants) this.localGrants.set(id, state);
    for (const [id, active] of snapshot.agents) this.localAgents.set(id, active);
    if (jti) this.localTokens.set(jti, snapshot.tokenRevoked);
  }

  private clearLocal(): void {
    this.localGrants.clear();
    this.localAgents.clear();
    this.localTokens.clear();
  }

  /** Must succeed before the revocation commits (see the class comment). */
  async publishGrantsRevoked(ids: string[], status: 'revoked' | 'expired' = 'revoked'): Promise<void> {
    if (!ids.length) return;
    // A cascade can name thousands of grants: one scripted SET per chunk of keys, not one queued command per grant.
    const tombstones = (pipe: ChainableCommander) => {
      for (let i = 0; i < ids.length; i += SET_ALL_CHUNK) {
        const keys = ids.slice(i, i + SET_ALL_CHUNK).map(this.gk);
        pipe.eval(SET_ALL, keys.length, ...keys, status === 'revoked' ? 'r' : 'x', DAY);
      }
    };
    await this.unavailableIfFails(() => this.coherence.publish({ grants: ids }, tombstones));
  }

  async publishAgentDisabled(id: string): Promise<void> {
    await this.write([[this.ak(id), 'd', DAY]], { agents: [id] });
  }

  async publishTokenRevoked(jti: string, expiresAt: Date): Promise<void> {
    await this.write([[this.tk(jti), 'r', ttlUntil(expiresAt.getTime())]], { tokens: [jti] });
  }

  /** At issuance: seed the entries introspection will ask for, so the hot path rarely touches Postgres. */
  async warm(grants: { id: string; expiresAt: Date | null }[], agentIds: string[], jti: string, tokenExp: Date): Promise<void> {
    // What this process already read through Redis needs no seeding (at worst another process fills it
    // from Postgres); the token's own entry is always written, which also proves Redis reachable.
    const live = this.coherence.live();
    if (live) grants = grants.filter((g) => !this.localGrants.has(g.id));
    if (live) agentIds = agentIds.filter((a) => !this.localAgents.has(a));
    // Plain commands, not a pipeline: auto-pipelining sends them in one write with every other request's
    // commands of this tick, where an explicit pipeline is a socket write per exchange (seen in the profile).
    await Promise.all([
      ...grants.map((g) => this.redis.set(this.gk(g.id), encodeActive(g.expiresAt), 'EX', ttlUntil(g.expiresAt?.getTime() ?? null), 'NX')),
      ...agentIds.map((a) => this.redis.set(this.ak(a), 'a', 'EX', DAY, 'NX')),
      this.redis.set(this.tk(jti), 'a', 'EX', ttlUntil(tokenExp.getTime()), 'NX'),
    ]);
  }

  /** Tombstones first, then every process's in-memory copy, in one round trip (see CacheCoherence). */
  private async write(entries: [string, string, number][], change: Invalidation): Promise<void> {
    await this.unavailableIfFails(() =>
      this.coherence.publish(change, (pipe) => {
        for (const [key, value, ttl] of entries) pipe.set(key, value, 'EX', ttl);
      }),
    );
  }

  private async unavailableIfFails(write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (err) {
      throw new StatusUnavailableError(`status store unreachable: ${(err as Error).message}`);
    }
  }

  /** Reads what Redis lacked from Postgres, encoded like the cache entries, and caches it (SET NX) unless Redis is down. */
  private async fill(grantIds: string[], agentIds: string[], jti: string | null, writeBack: boolean) {
    const [grantRows, agentRows, tokenRow] = await Promise.all([
      this.grants.findStatuses(grantIds),
      this.agents.findByIds(agentIds),
      jti ? this.tokens.findByJti(jti) : Promise.resolve(null),
    ]);
    const grants = new Map<string, string>(grantIds.map((id) => [id, 'm']));
    for (const g of grantRows) grants.set(g.id, g.status === 'active' ? encodeActive(g.expiresAt) : g.status === 'revoked' ? 'r' : 'x');
    const agents = new Map<string, string>(agentIds.map((id) => [id, 'm']));
    for (const a of agentRows) agents.set(a.id, a.status === 'active' ? 'a' : 'd');
    const token = tokenRow ? (tokenRow.revokedAt ? 'r' : 'a') : 'm';
    if (!writeBack) return { grants, agents, token };

    const pipe = this.redis.pipeline();
    for (const g of grantRows) pipe.set(this.gk(g.id), grants.get(g.id)!, 'EX', g.status === 'active' ? ttlUntil(g.expiresAt?.getTime() ?? null) : DAY, 'NX');
    for (const a of agentRows) pipe.set(this.ak(a.id), agents.get(a.id)!, 'EX', DAY, 'NX');
    if (tokenRow) pipe.set(this.tk(tokenRow.jti), token, 'EX', ttlUntil(tokenRow.expiresAt.getTime()), 'NX');
    await pipe.exec().catch(() => undefined); // a failed fill only costs a later Postgres read
    return { grants, agents, token };
  }
}

const EMPTY_FILL = { grants: new Map<string, string>(), agents: new Map<string, string>(), token: 'a' };

/** SET every key in KEYS to ARGV[1] with expiry ARGV[2] seconds. */
const SET_ALL = "for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1], 'EX', ARGV[2]) end return #KEYS";
const SET_ALL_CHUNK = 1000;

const encodeActive = (expiresAt: Date | null) => `a:${expiresAt ? expiresAt.getTime() : '-'}`;

function decodeGrant(v: string): GrantState {
  if (v.startsWith('a:')) return { status: 'active', expiresAt: v === 'a:-' ? null : Number(v.slice(2)) };
  return { status: v === 'r' ? 'revoked' : v === 'x' ? 'expired' : 'missing' };
}

function ttlUntil(epochMs: number | null): number {
  if (epochMs === null) return DAY;
  return Math.max(1, Math.min(DAY, Math.ceil((epochMs - Date.now()) / 1000) + 60));
}

/** True when the grant may be used at `now`. */
export function grantIsLive(state: GrantState | undefined, now: number): boolean {
  return state?.status === 'active' && (state.expiresAt === null || state.expiresAt > now);
}
