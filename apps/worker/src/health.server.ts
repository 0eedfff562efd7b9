import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Redis } from 'ioredis';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { DataSource } from 'typeorm';
import { APP_CONFIG, AppConfig } from '../../../libs/config/src/index.js';
import { REDIS } from '../../../libs/core/src/index.js';
import { WorkerStatus } from './worker-status.service.js';

/**
 * `GET /healthz` on WORKER_HEALTH_PORT (0 disables), for orchestrators: 200 when Postgres and Redis answer,
 * 503 otherwise, with when the periodic jobs last completed. A bare node:http server: the worker has no
 * HTTP stack of its own and needs none.
 */
@Injectable()
export class WorkerHealthServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('WorkerHealth');
  private server?: Server;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectDataSource() private readonly ds: DataSource,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly status: WorkerStatus,
  ) {}

  /** The bound port, once listening (null when disabled). */
  get port(): number | null {
    return this.server ? (this.server.address() as AddressInfo).port : null;
  }

  async onApplicationBootstrap(): Promise<void> {
    if (!this.config.workerHealthPort) return;
    this.server = createServer((req, res) => {
      if (req.method !== 'GET' || req.url !== '/healthz') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
        return;
      }
      void this.report().then(
        (body) => res.writeHead(body.status === 'ok' ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body)),
        () => res.writeHead(500).end(),
      );
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.config.workerHealthPort, this.config.host, () => resolve());
    });
    this.log.log(`health on http://${this.config.host}:${this.port}/healthz`);
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  async report() {
    const timeout = <T>(p: Promise<T>) => Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), 2000).unref())]);
    const [postgres, redis] = await Promise.all([
      timeout(this.ds.query('SELECT 1')).then(() => 'ok', () => 'unreachable'),
      timeout(this.redis.ping()).then(() => 'ok', () => 'unreachable'),
    ]);
    const [expiry, seal, retention] = await Promise.all([this.status.last('expiry_sweep'), this.status.last('audit_seal'), this.status.last('retention')]);
    return {
      status: postgres === 'ok' && redis === 'ok' ? 'ok' : 'degraded',
      checks: { postgres, redis },
      last_expiry_sweep_at: expiry,
      last_audit_seal_at: seal,
      last_retention_at: retention,
      pid: process.pid,
    };
  }
}
