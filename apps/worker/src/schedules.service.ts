import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import { APP_CONFIG, AppConfig } from '../../../libs/config/src/index.js';
import { JobQueues, QUEUE, REDIS } from '../../../libs/core/src/index.js';
import { MAINTENANCE_JOB } from './jobs.js';

const RETRY_MS = 5000;

/**
 * Registers the repeatable maintenance jobs. Job schedulers are idempotent upserts keyed by name, so every
 * worker may register them at start: Redis holds one scheduler each, and each tick runs on one worker.
 * Does not hold up the worker's start when Redis is away; it retries until registered, and registers
 * again whenever the Redis connection comes back (a Redis restarted without its data forgets them).
 */
@Injectable()
export class SchedulesService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('Schedules');
  private retry?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly queues: JobQueues,
    @Inject(REDIS) private readonly redis: Redis,
  ) {}

  private readonly onReady = () => void this.register();

  onApplicationBootstrap(): void {
    this.redis.on('ready', this.onReady);
    void this.register();
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    this.redis.off('ready', this.onReady);
    clearTimeout(this.retry);
  }

  private async register(): Promise<void> {
    if (this.stopped) return;
    clearTimeout(this.retry);
    const q = this.queues.queue(QUEUE.maintenance);
    const opts = { removeOnComplete: true, removeOnFail: 100 };
    try {
      await q.upsertJobScheduler(MAINTENANCE_JOB.sealAudit, { every: this.config.auditSealIntervalMs }, { name: MAINTENANCE_JOB.sealAudit, opts });
      await q.upsertJobScheduler(MAINTENANCE_JOB.expireGrants, { every: this.config.expirySweepSeconds * 1000 }, { name: MAINTENANCE_JOB.expireGrants, opts });
      await q.upsertJobScheduler(MAINTENANCE_JOB.purgeTokens, { every: this.config.retentionSweepSeconds * 1000 }, { name: MAINTENANCE_JOB.purgeTokens, opts });
    } catch (err) {
      if (this.stopped) return;
      this.log.warn(`could not register the maintenance schedules (${(err as Error).message}); retrying`);
      this.retry = setTimeout(() => void this.register(), RETRY_MS);
      this.retry.unref();
    }
  }
}
