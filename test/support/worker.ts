import 'reflect-metadata';
import { INestApplicationContext, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Queue } from 'bullmq';
import { WorkerHealthServer } from '../../apps/worker/src/health.server.js';
import { WorkerModule } from '../../apps/worker/src/worker.module.js';
import { AppConfig } from '../../libs/config/src/index.js';
import { QUEUE } from '../../libs/core/src/index.js';
import { TestApp } from './app.js';

export interface TestWorker {
  ctx: INestApplicationContext;
  config: AppConfig;
  get<T>(type: Type<T>): T;
  /** The health endpoint's base URL, when `workerHealthPort` was set. */
  healthUrl: string | null;
  close(): Promise<void>;
}

/**
 * Runs the real worker in-process (BullMQ processors, schedulers, health server) against the test app's
 * database and Redis prefix. The health server is off unless `workerHealthPort` is given.
 */
export async function startWorker(app: TestApp, overrides: Partial<AppConfig> = {}): Promise<TestWorker> {
  const config: AppConfig = { ...app.config, workerHealthPort: 0, ...overrides };
  const ctx = await NestFactory.createApplicationContext(WorkerModule.forRoot(config), { logger: ['error'] });
  const port = ctx.get(WorkerHealthServer).port;
  return {
    ctx,
    config,
    get: (type) => ctx.get(type),
    healthUrl: port ? `http://${config.host}:${port}` : null,
    close: () => ctx.close(),
  };
}

/** Removes every BullMQ key of this test's prefix (schedulers included), so runs leave nothing behind. */
export async function obliterateQueues(config: AppConfig): Promise<void> {
  for (const name of Object.values(QUEUE)) {
    const q = new Queue(name, { connection: { url: config.redisUrl, maxRetriesPerRequest: null }, prefix: `${config.redisPrefix}:bull` });
    try {
      await q.obliterate({ force: true });
    } finally {
      await q.close();
    }
  }
}
