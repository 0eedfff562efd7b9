import { Injectable, Logger } from '@nestjs/common';
import { CacheCoherence } from '../status/cache-coherence.js';

/** Upper bound on an entry's age, should a grant's creator have been unable to publish its invalidation. */
const MAX_AGE_MS = 60_000;
const MAX_ENTRIES = 50_000;

/**
 * "Which grants does this agent hold for this person and resource server": the exchange's Postgres
 * read, kept in process memory while CacheCoherence vouches for it. Grants never change after creation
 * except their status, and callers check status through the StatusCache on every use, so the only
 * event that makes an entry stale is a new grant for the holder (`changed`). A stale entry can only
 * deny (the new grant is missing from it), never allow.
 */
@Injectable()
export class HeldGrantsCache {
  private readonly log = new Logger(HeldGrantsCache.name);
  private readonly entries = new Map<string, { value: unknown; until: number }>();
  private readonly byHolder = new Map<string, Set<string>>();

  constructor(private readonly coherence: CacheCoherence) {
    coherence.onInvalidate((change) => {
      if (change === 'all') {
        this.entries.clear();
        this.byHolder.clear();
        return;
      }
      for (const holder of change.holders ?? []) this.forget(holder);
    });
  }

  /** `key` must identify the query within the holder's grants. */
  async get<T>(holder: string, key: string, load: () => Promise<T>): Promise<T> {
    const id = `${holder}|${key}`;
    if (this.coherence.live()) {
      const hit = this.entries.get(id);
      if (hit && hit.until > Date.now()) return hit.value as T;
    }
    const epoch = this.coherence.epoch;
    const value = await load();
    if (this.coherence.mayStore(epoch)) {
      if (this.entries.size >= MAX_ENTRIES) {
        this.entries.clear();
        this.byHolder.clear();
      }
      this.entries.set(id, { value, until: Date.now() + MAX_AGE_MS });
      let keys = this.byHolder.get(holder);
      if (!keys) this.byHolder.set(holder, (keys = new Set()));
      keys.add(id);
    }
    return value;
  }

  /**
   * Call after a new grant for these agents committed. Never throws: the grant exists either way, and a
   * process that missed this can only deny the new grant, for at most MAX_AGE_MS.
   */
  async changed(holders: string[]): Promise<void> {
    try {
      await this.coherence.publish({ holders });
    } catch (err) {
      this.log.warn(`could not publish new grants for ${holders.join(', ')}: ${(err as Error).message}`);
    }
  }

  private forget(holder: string): void {
    for (const id of this.byHolder.get(holder) ?? []) this.entries.delete(id);
    this.byHolder.delete(holder);
  }
}
