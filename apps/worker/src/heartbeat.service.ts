import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import { hostname } from 'node:os';
import { REDIS, RedisKeys } from '../../../libs/core/src/index.js';

const INTERVAL_MS = 10_000;

/** Reports the worker's liveness in Redis (`<prefix>:worker:<host>:<pid>`, expiring after 3 missed beats). */
@Injectable()
export class HeartbeatService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('Worker');
  private timer?: NodeJS.Timeout;
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  onApplicationBootstrap(): void {
    const beat = () => this.redis.set(this.keys.key('worker', hostname(), String(process.pid)), new Date().toISOString(), 'PX', INTERVAL_MS * 3).catch((err: Error) => this.log.warn(`heartbeat failed: ${err.message}`));
    void beat();
    this.timer = setInterval(beat, INTERVAL_MS);
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }
}
