import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { Redis } from 'ioredis';
import { REDIS, RedisKeys } from '../redis/redis.module.js';

/** `target`: a resolved RFC 8693 resource/audience list (keyed by the values), dropped with any resource server. */
export type ClientKind = 'agent' | 'rs' | 'target';

/** Upper bound on an entry's age even if an invalidation were lost. */
export const CLIENT_CACHE_TTL_MS = 60_000;
const MAX_ENTRIES = 20_000;

/**
 * Client records (agents, resource servers) kept per process for client authentication, which
 * otherwise costs a Postgres round trip on every introspection and exchange.
 *
 * Safe across processes:
 * - whoever changes a client record calls `invalidate` after the change commits: it drops the entry
 *   here and publishes the id on Redis, and every process drops it on receipt;
 * - entries are served only while this process's subscription is live. While it is down an
 *   invalidation could be missed, so reads go to Postgres, and the cache starts empty once the
 *   subscription is back (a publisher that cannot reach Redis means no subscriber can either);
 * - a load that raced an invalidation is not stored; no entry outlives CLIENT_CACHE_TTL_MS.
 *
 * Decisions that must hold everywhere the moment they return (disabling an agent) are not taken
 * from this cache: agent status is read through the StatusCache, like at introspection.
 */
@Injectable()
export class ClientRecordCache implements OnModuleInit, OnApplicationShutdown {
  private readonly log = new Logger(ClientRecordCache.name);
  private readonly entries = new Map<string, { value: unknown; until: number }>();
  private subscriber?: Redis;
  private live = false;
  /** Bumped by every invalidation and every loss of the subscription. */
  private epoch = 0;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  private get channel(): string {
    return this.keys.key('inv', 'clients');
  }

  onModuleInit(): void {
    const sub = this.redis.duplicate({ autoResubscribe: false, lazyConnect: true, enableAutoPipelining: false });
    this.subscriber = sub;
    sub.on('error', () => {}); // reconnects on its own; until then the cache is bypassed
    sub.on('ready', () => {
      sub.subscribe(this.channel).then(
        () => {
          this.clear();
          this.live = true;
        },
        () => sub.disconnect(true), // reconnect and try again
      );
    });
    sub.on('close', () => this.clear());
    sub.on('message', (_channel: string, key: string) => this.drop(key));
    sub.connect().catch(() => undefined);
  }

  onApplicationShutdown(): void {
    this.live = false;
    this.subscriber?.disconnect();
  }

  /** `keep` decides whether a loaded value may be cached (never cache a lookup that found nothing). */
  async get<T>(kind: ClientKind, id: string, load: () => Promise<T | null>, keep: (value: T) => boolean = () => true): Promise<T | null> {
    const key = `${kind}:${id}`;
    if (this.live) {
      const hit = this.entries.get(key);
      if (hit && hit.until > Date.now()) return hit.value as T;
      if (hit) this.entries.delete(key);
    }
    const epoch = this.epoch;
    const value = await load();
    // Missing clients are not cached: random ids must not fill the memory.
    if (value !== null && keep(value) && this.live && epoch === this.epoch) {
      if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value as string);
      this.entries.set(key, { value, until: Date.now() + CLIENT_CACHE_TTL_MS });
    }
    return value;
  }

  /** Call after a change to the client's record has committed. */
  async invalidate(kind: ClientKind, id: string): Promise<void> {
    const key = `${kind}:${id}`;
    this.drop(key);
    try {
      await this.redis.publish(this.channel, key);
    } catch (err) {
      // Redis is unreachable for everyone: subscribers have lost their subscription and their cache.
      this.log.warn(`could not publish the invalidation of ${key}: ${(err as Error).message}`);
    }
  }

  private drop(key: string): void {
    this.epoch++;
    this.entries.delete(key);
    if (key.startsWith('rs:')) for (const k of this.entries.keys()) if (k.startsWith('target:')) this.entries.delete(k);
  }

  private clear(): void {
    this.live = false;
    this.epoch++;
    this.entries.clear();
  }
}
