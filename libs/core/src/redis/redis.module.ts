import { Global, Inject, Injectable, Logger, Module, OnApplicationShutdown } from '@nestjs/common';
import { Redis, RedisOptions } from 'ioredis';
import { APP_CONFIG, AppConfig } from '../../../config/src/index.js';

export const REDIS = Symbol('REDIS');

/**
 * Where Redis is: REDIS_URL's host, or with REDIS_SENTINELS the primary the sentinels name (found again
 * after a failover). Credentials and the database number come from REDIS_URL either way.
 */
export function redisTarget(config: Pick<AppConfig, 'redisUrl' | 'redisSentinel'>): RedisOptions {
  const u = new URL(config.redisUrl);
  const auth: RedisOptions = {
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
  };
  const s = config.redisSentinel;
  if (s) return { ...auth, sentinels: s.sentinels, name: s.name, sentinelPassword: s.password };
  return { ...auth, host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : 6379, tls: u.protocol === 'rediss:' ? {} : undefined };
}

export function createRedis(config: Pick<AppConfig, 'redisUrl' | 'redisSentinel'>): Redis {
  // No offline queue and a short command timeout: when Redis is away, callers learn it at once
  // and fail closed instead of piling up requests. Auto-pipelining sends the commands of concurrent
  // requests issued in one event-loop tick as one write: socket writes dominated the hot paths' profile.
  return new Redis({
    ...redisTarget(config),
    lazyConnect: true,
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 2000,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
}

/** Builds every Redis key under the deployment's prefix so deployments can share one Redis. */
@Injectable()
export class RedisKeys {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}
  key(...parts: string[]): string {
    return [this.config.redisPrefix, ...parts].join(':');
  }
}

@Injectable()
class RedisLifecycle implements OnApplicationShutdown {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}
  onApplicationShutdown(): void {
    this.redis.disconnect();
  }
}

@Global()
@Module({
  providers: [
    {
      provide: REDIS,
      inject: [APP_CONFIG],
      useFactory: async (config: AppConfig) => {
        const redis = createRedis(config);
        redis.on('error', () => {}); // surfaced per command and by /readyz; reconnects on its own
        await redis.connect().catch((err: Error) => new Logger('Redis').warn(`Redis not reachable at start: ${err.message}`));
        return redis;
      },
    },
    RedisKeys,
    RedisLifecycle,
  ],
  exports: [REDIS, RedisKeys],
})
export class RedisModule {}
