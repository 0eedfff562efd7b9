import { z } from 'zod';

const trustedIssuer = z
  .object({
    issuer: z.string().url(),
    jwks_uri: z.string().url().optional(),
    jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }).optional(),
    audience: z.string().min(1).optional(),
  })
  .strict()
  .refine((v) => Boolean(v.jwks_uri) !== Boolean(v.jwks), { message: 'each issuer needs exactly one of jwks_uri or jwks' });

const jsonArray = <T extends z.ZodTypeAny>(item: T) =>
  z
    .string()
    .transform((s, ctx) => {
      try {
        return JSON.parse(s) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be a JSON array' });
        return z.NEVER;
      }
    })
    .pipe(z.array(item));

const csv = z
  .string()
  .transform((s) => s.split(',').map((v) => v.trim()).filter(Boolean));

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** `host:port,host:port`: Redis Sentinel addresses. */
const hostPorts = z.string().transform((s, ctx) =>
  s
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean)
    .map((v) => {
      const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(v);
      if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
        ctx.addIssue({ code: 'custom', message: `"${v}" is not host:port` });
        return { host: '', port: 0 };
      }
      return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
    }),
);

const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

const envSchema = z.object({
  PORT: int(0, 65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_URL: z.string().url().default('postgres://postgres@127.0.0.1:5432/procura'),
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only').default('procura'),
  // Redis Sentinel (docs/scaling.md): the primary is found through the sentinels; REDIS_URL then only
  // supplies the username, password and database number.
  REDIS_SENTINELS: hostPorts.optional(),
  REDIS_SENTINEL_NAME: z.string().min(1).default('mymaster'),
  REDIS_SENTINEL_PASSWORD: z.string().min(1).optional(),
  REDIS_WAIT_REPLICAS: int(0, 16).optional(),
  REDIS_WAIT_TIMEOUT_MS: int(1, 60_000).default(500),
  ISSUER: z.string().url().optional(),
  TRUSTED_ISSUERS: jsonArray(trustedIssuer).default([]),
  ADMIN_SUBJECTS: csv.default([]),
  KEY_ENCRYPTION_KEY: z
    .string()
    .refine((s) => Buffer.from(s, 'base64').length === 32, 'must be 32 bytes, base64-encoded')
    .optional(),
  SIGNING_ALG: z.enum(['ES256', 'EdDSA', 'RS256']).default('ES256'),
  TOKEN_TTL_SECONDS: int(1, 86_400).default(300),
  MAX_TOKEN_TTL_SECONDS: int(1, 86_400).default(3600),
  BODY_LIMIT_BYTES: int(1024, 10 * 1024 * 1024).default(64 * 1024),
  TRUSTED_PROXIES: csv.default([]),
  MAX_CHAIN_DEPTH: int(1, 32).default(5),
  MAX_CHILDREN_PER_GRANT: int(1, 100_000).default(100),
  MIGRATE_ON_START: bool.default(true),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug']).default('info'),
  CLOCK_LEEWAY_SECONDS: int(0, 300).default(30),
  APPROVAL_TTL_SECONDS: int(1, 86_400).default(600),
  // Audit trail and worker (docs/operations.md).
  AUDIT_FLUSH_MS: int(1, 60_000).default(250),
  AUDIT_COALESCE_MS: int(0, 60_000).default(5000),
  AUDIT_SEAL_INTERVAL_MS: int(50, 3_600_000).default(2000),
  WEBHOOK_MAX_ATTEMPTS: int(1, 50).default(5),
  WEBHOOK_BACKOFF_MS: int(1, 3_600_000).default(1000),
  WEBHOOK_TIMEOUT_MS: int(100, 120_000).default(5000),
  APPROVAL_WEBHOOK_URL: z.string().url().optional(),
  EXPIRY_SWEEP_SECONDS: int(1, 86_400).default(30),
  TOKEN_RETENTION_DAYS: int(0, 3650).default(30),
  RETENTION_SWEEP_SECONDS: int(1, 604_800).default(3600),
  WORKER_HEALTH_PORT: int(0, 65535).default(3100),
  CACHE_LEASE_MS: int(0, 60_000).default(1500),
});

export type TrustedIssuerConfig = { issuer: string; jwksUri?: string; jwks?: { keys: Record<string, unknown>[] }; audience?: string };

export interface AppConfig {
  port: number;
  host: string;
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
  /** Set: connect through Redis Sentinel to the primary it names. */
  redisSentinel?: { sentinels: { host: string; port: number }[]; name: string; password?: string };
  /**
   * Replicas that must hold a revocation's tombstones before the revoke returns (Redis WAIT), so a
   * failover cannot lose them. Default 1 with Sentinel, 0 otherwise.
   */
  redisWaitReplicas: number;
  redisWaitTimeoutMs: number;
  issuer: string;
  trustedIssuers: TrustedIssuerConfig[];
  adminSubjects: string[];
  keyEncryptionKey?: Buffer;
  signingAlg: 'ES256' | 'EdDSA' | 'RS256';
  tokenTtlSeconds: number;
  maxTokenTtlSeconds: number;
  bodyLimitBytes: number;
  trustedProxies: string[];
  maxChainDepth: number;
  maxChildrenPerGrant: number;
  migrateOnStart: boolean;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug';
  clockLeewaySeconds: number;
  /** How long a human approval stays valid: pending, and once approved until the agent collects its token. */
  approvalTtlSeconds: number;
  /** API: how long high-volume audit events wait in memory before travelling to the worker as one batch. */
  auditFlushMs: number;
  /** Repeated introspections of one token by one resource server with one outcome become one event per window. */
  auditCoalesceMs: number;
  auditSealIntervalMs: number;
  webhookMaxAttempts: number;
  webhookBackoffMs: number;
  webhookTimeoutMs: number;
  approvalWebhookUrl?: string;
  expirySweepSeconds: number;
  tokenRetentionDays: number;
  retentionSweepSeconds: number;
  /** 0 disables the worker's health endpoint. */
  workerHealthPort: number;
  /**
   * How long a process may answer from its in-memory status and grant caches without proof that it
   * still receives every invalidation (docs/scaling.md). It also bounds how long a revoke waits for a
   * process that stopped answering. 0 turns the in-memory caches off (every check asks Redis).
   */
  cacheLeaseMs: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Validates the environment once; every problem names its variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): AppConfig {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${String(i.path[0] ?? '?')}${i.path.length > 1 ? `[${i.path.slice(1).join('.')}]` : ''}: ${i.message}`));
  }
  const e = parsed.data;
  if (e.TOKEN_TTL_SECONDS > e.MAX_TOKEN_TTL_SECONDS) {
    throw new ConfigError(['TOKEN_TTL_SECONDS: must not exceed MAX_TOKEN_TTL_SECONDS']);
  }
  if (e.REDIS_SENTINELS && !e.REDIS_SENTINELS.length) throw new ConfigError(['REDIS_SENTINELS: name at least one host:port']);
  const sentinels = e.REDIS_SENTINELS?.length ? e.REDIS_SENTINELS : undefined;
  return {
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
    redisSentinel: sentinels ? { sentinels, name: e.REDIS_SENTINEL_NAME, password: e.REDIS_SENTINEL_PASSWORD } : undefined,
    redisWaitReplicas: e.REDIS_WAIT_REPLICAS ?? (sentinels ? 1 : 0),
    redisWaitTimeoutMs: e.REDIS_WAIT_TIMEOUT_MS,
    issuer: (e.ISSUER ?? `http://127.0.0.1:${e.PORT}`).replace(/\/$/, ''),
    trustedIssuers: e.TRUSTED_ISSUERS.map((t) => ({ issuer: t.issuer, jwksUri: t.jwks_uri, jwks: t.jwks, audience: t.audience })),
    adminSubjects: e.ADMIN_SUBJECTS,
    keyEncryptionKey: e.KEY_ENCRYPTION_KEY ? Buffer.from(e.KEY_ENCRYPTION_KEY, 'base64') : undefined,
    signingAlg: e.SIGNING_ALG,
    tokenTtlSeconds: e.TOKEN_TTL_SECONDS,
    maxTokenTtlSeconds: e.MAX_TOKEN_TTL_SECONDS,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    trustedProxies: e.TRUSTED_PROXIES,
    maxChainDepth: e.MAX_CHAIN_DEPTH,
    maxChildrenPerGrant: e.MAX_CHILDREN_PER_GRANT,
    migrateOnStart: e.MIGRATE_ON_START,
    logLevel: e.LOG_LEVEL,
    clockLeewaySeconds: e.CLOCK_LEEWAY_SECONDS,
    approvalTtlSeconds: e.APPROVAL_TTL_SECONDS,
    auditFlushMs: e.AUDIT_FLUSH_MS,
    auditCoalesceMs: e.AUDIT_COALESCE_MS,
    auditSealIntervalMs: e.AUDIT_SEAL_INTERVAL_MS,
    webhookMaxAttempts: e.WEBHOOK_MAX_ATTEMPTS,
    webhookBackoffMs: e.WEBHOOK_BACKOFF_MS,
    webhookTimeoutMs: e.WEBHOOK_TIMEOUT_MS,
    approvalWebhookUrl: e.APPROVAL_WEBHOOK_URL,
    expirySweepSeconds: e.EXPIRY_SWEEP_SECONDS,
    tokenRetentionDays: e.TOKEN_RETENTION_DAYS,
    retentionSweepSeconds: e.RETENTION_SWEEP_SECONDS,
    workerHealthPort: e.WORKER_HEALTH_PORT,
    cacheLeaseMs: e.CACHE_LEASE_MS,
  };
}

/** For entry points: print the problems and stop, naming the variables. */
export function loadConfigOrExit(env: Record<string, string | undefined> = process.env): AppConfig {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}
