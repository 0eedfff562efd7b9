import { Inject, Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { REDIS, RedisKeys } from '../../../libs/core/src/index.js';

export type Activity = 'expiry_sweep' | 'audit_seal' | 'retention';

/**
 * When each periodic job last completed: in this process, and across workers (a Redis key per activity,
 * since any worker may run a given tick).
 */
@Injectable()
export class WorkerStatus {
  private readonly local = new Map<Activity, Date>();

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  async done(activity: Activity, at = new Date()): Promise<void> {
    this.local.set(activity, at);
    await this.redis.set(this.keys.key('worker', 'last', activity), at.toISOString(), 'EX', 7 * 86_400).catch(() => undefined);
  }

  /** Cluster-wide last completion, falling back to this process' own when Redis does not answer. */
  async last(activity: Activity): Promise<string | null> {
    const shared = await this.redis.get(this.keys.key('worker', 'last', activity)).catch(() => null);
    return shared ?? this.local.get(activity)?.toISOString() ?? null;
  }
}
