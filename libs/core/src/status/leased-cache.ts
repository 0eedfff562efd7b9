import { CacheCoherence } from './cache-coherence.js';

/**
 * A bounded in-process map whose entries are served only while CacheCoherence vouches for them (this
 * process holds its lease), and never kept when the load raced an invalidation. Owners drop entries
 * from their CacheCoherence listener; `group` lets them drop related entries together.
 */
export class LeasedCache<V> {
  private readonly entries = new Map<string, { value: V; until: number; group?: string }>();
  private readonly groups = new Map<string, Set<string>>();

  constructor(
    private readonly coherence: CacheCoherence,
    /** Upper bound on an entry's age, should an invalidation ever be missed. */
    private readonly maxAgeMs: number,
    private readonly maxEntries: number,
  ) {}

  /** `keep` decides whether a loaded value may be cached (e.g. never a lookup that found nothing). */
  async get(key: string, load: () => Promise<V>, opts: { group?: string; keep?: (value: V) => boolean } = {}): Promise<V> {
    if (this.coherence.live()) {
      const hit = this.entries.get(key);
      if (hit && hit.until > Date.now()) return hit.value;
    }
    const epoch = this.coherence.epoch;
    const value = await load();
    if ((opts.keep?.(value) ?? true) && this.coherence.mayStore(epoch)) this.set(key, value, opts.group);
    return value;
  }

  delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    if (entry.group) this.groups.get(entry.group)?.delete(key);
  }

  deleteGroup(group: string): void {
    for (const key of this.groups.get(group) ?? []) this.entries.delete(key);
    this.groups.delete(group);
  }

  clear(): void {
    this.entries.clear();
    this.groups.clear();
  }

  private set(key: string, value: V, group?: string): void {
    this.delete(key);
    // Evict the oldest insertion (Map keeps insertion order).
    if (this.entries.size >= this.maxEntries) this.delete(this.entries.keys().next().value as string);
    this.entries.set(key, { value, until: Date.now() + this.maxAgeMs, group });
    if (group) {
      let keys = this.groups.get(group);
      if (!keys) this.groups.set(group, (keys = new Set()));
      keys.add(key);
    }
  }
}
