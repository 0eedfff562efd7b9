import 'reflect-metadata';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { createApp } from '../../apps/api/src/app.factory.js';
import { AppConfig, loadConfig } from '../../libs/config/src/index.js';
import { adminQuery, dbUrl, dropDatabase, templateDb } from './db.js';
import { TestIdp } from './idp.js';

export interface TestApp {
  url: string;
  app: NestFastifyApplication;
  config: AppConfig;
  database: string;
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** A database of its own, cloned from the migrated template: test files never see each other's rows. */
export async function createTestDatabase(): Promise<string> {
  const name = `procura_t_${process.env.PROCURA_TEST_RUN ?? 'adhoc'}_${randomBytes(5).toString('hex')}`;
  await adminQuery(`CREATE DATABASE "${name}" TEMPLATE "${templateDb()}"`);
  return name;
}

export interface StartOptions {
  idp: TestIdp;
  env?: Record<string, string>;
  /** Reuse a database (and Redis prefix) to run a second API process against the same state. */
  database?: string;
  redisPrefix?: string;
}

/** Boots the real API (Fastify, Postgres, Redis) on a free loopback port. */
export async function startApp(opts: StartOptions): Promise<TestApp> {
  const database = opts.database ?? (await createTestDatabase());
  const port = await freePort();
  const config = loadConfig({
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: dbUrl(database),
    REDIS_PREFIX: opts.redisPrefix ?? `test-${database}`,
    TRUSTED_ISSUERS: JSON.stringify([opts.idp.trustedIssuerConfig()]),
    ADMIN_SUBJECTS: 'admin',
    LOG_LEVEL: 'error',
    MIGRATE_ON_START: 'false',
    ...opts.env,
  });
  const app = await createApp(config);
  await app.listen({ port, host: '127.0.0.1' });
  return {
    url: `http://127.0.0.1:${port}`,
    app,
    config,
    database,
    close: async () => {
      await app.close();
      if (!opts.database) await dropDatabase(database);
    },
  };
}

/**
 * Another API process on the same Postgres database, Redis prefix and issuer, as replicas behind one
 * load balancer are (a shared ISSUER is what lets each verify the others' tokens).
 */
export function startReplica(of: TestApp, idp: TestIdp, env: Record<string, string> = {}): Promise<TestApp> {
  return startApp({ idp, database: of.database, redisPrefix: of.config.redisPrefix, env: { ISSUER: of.config.issuer, ...env } });
}
