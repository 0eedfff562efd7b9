import { Injectable, Logger } from '@nestjs/common';
import { CacheCoherence } from '../status/cache-coherence.js';
import { LeasedCache } from '../status/leased-cache.js';

/**
 * "Which grants does this agent hold for this person and resource server": the exchange's Postgres
 * read, kept in process memory while CacheCoherence vouches for it. Grants never change after creation
 * except their status, and callers check status through the StatusCache on every use, so the only
 * event that makes an entry stale is a new grant for the holder (`changed`). A stale entry can only
 * deny (the new grant is missing from it), never allow; none outlives 60 s.
 */
@Injectable()
export class HeldGrantsCache {
  private readonly log = new Logger(HeldGrantsCache.name);
  private readonly cache: LeasedCache<unknown>;

  constructor(private readonly coherence: CacheCoherence) {
    this.cache = new LeasedCache(coherence, 60_000, 50_000);
    coherence.onInvalidate((change) => {
      if (change === 'all') return this.cache.clear();
      for (const holder of change.holders ?? []) this.cache.deleteGroup(holder);
    });
  }

  /** `key` must identify the query within the holder's grants. */
  get<T>(holder: string, key: string, load: () => Promise<T>): Promise<T> {
    return this.cache.get(`${holder}|${key}`, load, { group: holder }) as Promise<T>;
  }

  /**
   * Call after a new grant for these agents committed. Never throws: the grant exists either way, and a
   * process that missed this can only deny the new grant, for at most 60 s.
   */
  async changed(holders: string[]): Promise<void> {
    try {
      await this.coherence.publish({ holders });
    } catch (err) {
      this.log.warn(`could not publish new grants for ${holders.join(', ')}: ${(err as Error).message}`);
    }
  }
}
