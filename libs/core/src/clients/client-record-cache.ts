import { Injectable, Logger } from '@nestjs/common';
import { CacheCoherence } from '../status/cache-coherence.js';
import { LeasedCache } from '../status/leased-cache.js';

/** `target`: a resolved RFC 8693 resource/audience list (keyed by the values), dropped with any resource server. */
export type ClientKind = 'agent' | 'rs' | 'target';

/** Upper bound on an entry's age even if an invalidation were lost. */
export const CLIENT_CACHE_TTL_MS = 60_000;
const MAX_ENTRIES = 20_000;

/**
 * Client records (agents, resource servers) kept per process for client authentication, which
 * otherwise costs a Postgres round trip on every introspection and exchange.
 *
 * Safe across processes: whoever changes a client record calls `invalidate` after the change commits,
 * which drops the entry in every process holding a cache lease before it returns (CacheCoherence);
 * entries are served only under that lease, a load that raced an invalidation is not stored, and no
 * entry outlives CLIENT_CACHE_TTL_MS.
 *
 * Decisions that must hold everywhere the moment they return (disabling an agent) are not taken
 * from this cache: agent status is read through the StatusCache, like at introspection.
 */
@Injectable()
export class ClientRecordCache {
  private readonly log = new Logger(ClientRecordCache.name);
  private readonly cache: LeasedCache<unknown>;

  constructor(private readonly coherence: CacheCoherence) {
    this.cache = new LeasedCache(coherence, CLIENT_CACHE_TTL_MS, MAX_ENTRIES);
    coherence.onInvalidate((change) => {
      if (change === 'all') return this.cache.clear();
      for (const key of change.clients ?? []) this.drop(key);
    });
  }

  /** `keep` decides whether a loaded value may be cached (never cache a lookup that found nothing). */
  get<T>(kind: ClientKind, id: string, load: () => Promise<T | null>, keep: (value: T) => boolean = () => true): Promise<T | null> {
    // Missing clients are not cached: random ids must not fill the memory.
    const keepIt = (value: unknown) => value !== null && keep(value as T);
    return this.cache.get(`${kind}:${id}`, load, { group: kind === 'target' ? 'target' : undefined, keep: keepIt }) as Promise<T | null>;
  }

  /** Call after a change to the client's record has committed. */
  async invalidate(kind: ClientKind, id: string): Promise<void> {
    const key = `${kind}:${id}`;
    try {
      await this.coherence.publish({ clients: [key] });
    } catch (err) {
      // Dropped here already; Redis is unreachable, so other processes lose their lease, and with it this entry.
      this.log.warn(`could not publish the invalidation of ${key}: ${(err as Error).message}`);
    }
  }

  private drop(key: string): void {
    this.cache.delete(key);
    // A resource server's audience may have changed: resolved targets could name it.
    if (key.startsWith('rs:')) this.cache.deleteGroup('target');
  }
}
