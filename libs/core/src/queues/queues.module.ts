import { BullModule, InjectQueue } from '@nestjs/bullmq';
import { DynamicModule, Global, Injectable, Logger, Module } from '@nestjs/common';
import { ConnectionOptions, JobsOptions, Queue } from 'bullmq';
import { APP_CONFIG, AppConfig } from '../../../config/src/index.js';
import { redisTarget } from '../redis/redis.module.js';

/** Queue names (BullMQ forbids ':' in them). Keys live under `<REDIS_PREFIX>:bull`. */
export const QUEUE = {
  /** High-volume audit events (introspection, authorize, refusals), inserted in batches by the worker. */
  audit: 'audit',
  /** Revocation SETs and approval notifications. */
  webhooks: 'webhooks',
  /** Repeatable jobs: sealing the audit chain, the expiry sweep, token retention, outbox redrive. */
  maintenance: 'maintenance',
} as const;
export type QueueName = (typeof QUEUE)[keyof typeof QUEUE];

/**
 * Who is connecting. The API must never wait for Redis to enqueue (it would stall requests), so its
 * connection has no offline queue: an add fails at once while Redis is away and the caller falls back.
 * The worker keeps ioredis' defaults and simply resumes when Redis returns.
 */
export type QueueRole = 'api' | 'worker';

const ADD_TIMEOUT_MS = 2000;

/** The queues both apps share, with an `add` that fails fast instead of hanging when Redis is down. */
@Injectable()
export class JobQueues {
  private readonly log = new Logger('Queues');
  private lastErrorLog = 0;
  private readonly byName: Record<QueueName, Queue>;

  constructor(
    @InjectQueue(QUEUE.audit) audit: Queue,
    @InjectQueue(QUEUE.webhooks) webhooks: Queue,
    @InjectQueue(QUEUE.maintenance) maintenance: Queue,
  ) {
    this.byName = { audit, webhooks, maintenance };
    // Without a listener BullMQ prints every connection error; log them at most every 10 s instead.
    // Attached here, as early as the queues exist, before their first connection attempt can fail.
    for (const q of Object.values(this.byName)) {
      q.on('error', (err: Error) => {
        if (Date.now() - this.lastErrorLog < 10_000) return;
        this.lastErrorLog = Date.now();
        this.log.warn(`queue ${q.name}: ${err.message}`);
      });
    }
  }

  queue(name: QueueName): Queue {
    return this.byName[name];
  }

  /** Rejects within `timeoutMs` when Redis does not answer (e.g. it was down when the process started). */
  async add(name: QueueName, jobName: string, data: unknown, opts: JobsOptions = {}, timeoutMs = ADD_TIMEOUT_MS): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`queue ${name} did not answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.byName[name].add(jobName, data, opts), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Imported by the API (role `api`) and the worker (role `worker`), so both address the same queues. */
@Global()
@Module({})
export class QueuesModule {
  static forRoot(role: QueueRole): DynamicModule {
    return {
      module: QueuesModule,
      global: true,
      imports: [
        BullModule.forRootAsync({
          inject: [APP_CONFIG],
          useFactory: (c: AppConfig) => ({
            // ioredis' option types and BullMQ's own declaration of them differ in detail, not in substance.
            connection: { ...redisTarget(c), maxRetriesPerRequest: null, ...(role === 'api' ? { enableOfflineQueue: false } : {}) } as ConnectionOptions,
            prefix: `${c.redisPrefix}:bull`,
          }),
        }),
        BullModule.registerQueue(...Object.values(QUEUE).map((name) => ({ name }))),
      ],
      providers: [JobQueues],
      exports: [BullModule, JobQueues],
    };
  }
}
