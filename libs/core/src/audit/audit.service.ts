import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { APP_CONFIG, AppConfig } from '../../../config/src/index.js';
import { uuidv7 } from '../../../domain/src/ids.js';
import { AuditEventEntity, AuditEventRow, AuditFilters, AuditRepository, Page } from '../../../persistence/src/index.js';
import { Principal } from '../identity/principal.js';
import { JobQueues, QUEUE } from '../queues/queues.module.js';
import { AuditEventInput } from './audit-events.js';
import { eventHash, GENESIS_HASH, VerifyResult } from './chain.js';
import { verifyChain } from './verify.js';

/** The job that carries a batch of high-volume events to the worker. */
export const AUDIT_BATCH_JOB = 'events';
const MAX_BATCH = 200;
/** After the queue refused a batch, batches go straight to Postgres for this long before the queue is tried again. */
const QUEUE_BACKOFF_MS = 10_000;
const SEAL_BATCH = 500;
const EXPORT_BATCH = 500;

/** Row shape on the queue (JSON: dates travel as strings). */
export type QueuedRow = Omit<AuditEventRow, 'occurredAt'> & { occurredAt: string };

/**
 * The audit trail. Two ways in:
 * - `record(em, event)`: in the caller's transaction, so the change and its event commit or roll back
 *   together (grants, approvals, issued tokens, revocations).
 * - `recordAsync(event)`: high-volume decisions (introspection, authorize, exchange refusals). Buffered
 *   in memory for at most AUDIT_FLUSH_MS, then sent as one BullMQ job the worker inserts in one
 *   statement. If Redis refuses the batch, it is written to Postgres directly; it is lost only if this
 *   process dies inside the buffer window or both Redis and Postgres refuse it (logged).
 * The worker alone seals events into the hash chain (`seal`), in id order, under an advisory lock.
 */
@Injectable()
export class AuditService implements OnModuleDestroy {
  private readonly log = new Logger('Audit');
  private buffer: QueuedRow[] = [];
  private timer?: NodeJS.Timeout;
  /** Coalesced events by key, moved to `buffer` when their window closes. */
  private coalesced = new Map<string, QueuedRow>();
  private coalesceTimer?: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  private queueDownUntil = 0;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly events: AuditRepository,
    private readonly queues: JobQueues,
  ) {}

  /** Inserts the event now; with `em`, inside that transaction. Returns the stored row's id. */
  async record(em: EntityManager | null, event: AuditEventInput): Promise<string> {
    const row = toRow(event);
    await this.events.insert(row, em);
    return row.id;
  }

  /** The row `record` would insert, for a caller that writes it in its own statement (atomic with its change). */
  prepare(event: AuditEventInput): AuditEventRow {
    return toRow(event);
  }

  /** Several events in one statement, in the caller's transaction. Returns their ids in order. */
  async recordMany(em: EntityManager | null, events: AuditEventInput[]): Promise<string[]> {
    const rows = events.map(toRow);
    await this.events.insert(rows, em);
    return rows.map((r) => r.id);
  }

  /**
   * Fire and forget: never throws and never waits on Redis. With `coalesceKey`, events with the same
   * key within AUDIT_COALESCE_MS become one, whose `data.count` says how many it stands for and
   * `data.last_at` when the last one happened (a resource server introspects a token many times).
   */
  recordAsync(event: AuditEventInput, coalesceKey?: string): void {
    const coalesce = coalesceKey !== undefined && this.config.auditCoalesceMs > 0;
    if (coalesce && this.countRepeat(coalesceKey, event.occurredAt?.getTime())) return;
    let row: AuditEventRow;
    try {
      row = toRow(event);
    } catch (err) {
      this.log.error(`audit event dropped: ${(err as Error).message}`);
      return;
    }
    const queued = { ...row, occurredAt: row.occurredAt.toISOString() };
    if (coalesce) {
      // Its own data object: repeats update it in place.
      this.coalesced.set(coalesceKey!, { ...queued, data: { ...queued.data, count: 1 } });
      if (!this.coalesceTimer) {
        this.coalesceTimer = setTimeout(() => this.closeCoalesceWindow(), this.config.auditCoalesceMs);
        this.coalesceTimer.unref();
      }
      return;
    }
    this.enqueue(queued);
  }

  /**
   * When an event with `coalesceKey` is open in the current window, counts one more and returns true:
   * the caller need not even build the event (most introspections are such repeats).
   */
  countRepeat(coalesceKey: string, atMs = Date.now()): boolean {
    const first = this.coalesced.get(coalesceKey);
    if (!first) return false;
    first.data.count = (first.data.count as number) + 1;
    first.data.last_at = atMs; // made an ISO string when the window closes
    return true;
  }

  private closeCoalesceWindow(): void {
    clearTimeout(this.coalesceTimer);
    this.coalesceTimer = undefined;
    const rows = [...this.coalesced.values()];
    this.coalesced.clear();
    for (const r of rows) {
      if (typeof r.data.last_at === 'number') r.data.last_at = new Date(r.data.last_at).toISOString();
      this.enqueue(r);
    }
  }

  private enqueue(queued: QueuedRow): void {
    this.buffer.push(queued);
    if (this.buffer.length >= MAX_BATCH) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.config.auditFlushMs);
      this.timer.unref();
    }
  }

  /** Sends what is buffered (coalesced events included); also called at shutdown, before the queues close. */
  flush(): Promise<void> {
    if (this.coalesced.size) this.closeCoalesceWindow();
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.buffer.splice(0);
    if (batch.length) this.flushing = this.flushing.then(() => this.send(batch));
    return this.flushing;
  }

  async onModuleDestroy(): Promise<void> {
    await this.flush();
  }

  private async send(batch: QueuedRow[]): Promise<void> {
    if (Date.now() >= this.queueDownUntil) {
      try {
        // The first event's id makes the job id: a batch re-sent after a timeout is not enqueued twice.
        await this.queues.add(QUEUE.audit, AUDIT_BATCH_JOB, { events: batch }, { jobId: `audit-${batch[0].id}`, attempts: 10, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: true, removeOnFail: 1000 });
        return;
      } catch (err) {
        // Do not make every following batch wait for the queue's timeout while Redis is away.
        this.queueDownUntil = Date.now() + QUEUE_BACKOFF_MS;
        this.log.warn(`audit queue unavailable (${(err as Error).message}); writing audit events to Postgres directly for ${QUEUE_BACKOFF_MS / 1000} s`);
      }
    }
    try {
      // Unsealed rows like any other: the worker seals them whichever way they arrived.
      await this.events.insertManyIgnoringDuplicates(batch.map(fromQueued));
    } catch (dbErr) {
      this.log.error(`lost ${batch.length} audit events (${batch[0].type}...): ${(dbErr as Error).message}`);
    }
  }

  /** Worker: inserts a batch from the queue. Idempotent (ids), since BullMQ delivers at least once. */
  async ingest(events: QueuedRow[]): Promise<number> {
    return this.events.insertManyIgnoringDuplicates(events.map(fromQueued));
  }

  /** Worker: seals every unsealed event (in batches). Returns how many it sealed. */
  async seal(): Promise<number> {
    let total = 0;
    for (;;) {
      const { acquired, sealed } = await this.events.sealBatch(SEAL_BATCH, eventHash, GENESIS_HASH);
      total += sealed;
      if (!acquired || sealed < SEAL_BATCH) return total;
    }
  }

  /** Recomputes the chain from the first event up to the current head; reports the first broken link. */
  verify(): Promise<VerifyResult> {
    return verifyChain(this.events);
  }

  list(principal: Principal, filters: AuditFilters, limit: number, cursor: string | null): Promise<Page<AuditEventEntity>> {
    return this.events.listPage(scopeOf(principal), filters, limit, cursor);
  }

  /** Oldest first, in batches, for streaming. */
  async *export(principal: Principal, filters: AuditFilters): AsyncGenerator<AuditEventEntity> {
    let after: string | null = null;
    for (;;) {
      const rows = await this.events.exportBatch(scopeOf(principal), filters, after, EXPORT_BATCH);
      yield* rows;
      if (rows.length < EXPORT_BATCH) return;
      after = rows[rows.length - 1].id;
    }
  }
}

/** Admins see every event; everyone else the events about their own grants. */
const scopeOf = (p: Principal) => (p.isAdmin ? null : { iss: p.iss, sub: p.sub });

function fromQueued(r: QueuedRow): AuditEventRow {
  return { ...r, occurredAt: new Date(r.occurredAt) };
}

function toRow(e: AuditEventInput): AuditEventRow {
  return {
    id: e.id ?? uuidv7(e.occurredAt?.getTime()),
    type: e.type,
    occurredAt: e.occurredAt ?? new Date(),
    actor: e.by.actor,
    actorType: e.by.actorType,
    principalIss: e.principal?.iss || null, // '' (a chained token's principal issuer is not known there) is stored as unknown
    principalSub: e.principal?.sub ?? null,
    agentId: e.agentId ?? null,
    actorChain: e.actorChain ?? [],
    grantIds: [...new Set(e.grantIds ?? [])],
    resource: e.resource ?? null,
    actions: e.actions ?? [],
    purpose: e.purpose ?? null,
    outcome: e.outcome,
    reason: e.reason ?? null,
    data: withoutSecrets(e.data ?? {}) as Record<string, unknown>,
  };
}

// Names that carry credentials. `jti` and `*_token_type` are fine; `*_token`, secrets and assertions are not.
const SECRET_KEY = /(^|_)(token|secret|password|assertion|private_key|authorization|client_secret|jwt)$/i;
// A compact JWS/JWE anywhere in a value.
const JWT_LIKE = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g;

/** Defence in depth: callers never pass secrets, and this drops anything that still looks like one. */
export function withoutSecrets(value: unknown, depth = 0): unknown {
  if (depth > 10) return '[too deep]';
  if (typeof value === 'string') return value.replace(JWT_LIKE, '[redacted]');
  if (Array.isArray(value)) return value.map((v) => withoutSecrets(v, depth + 1));
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([k, v]) => v !== undefined && !SECRET_KEY.test(k))
        .map(([k, v]) => [k, withoutSecrets(v, depth + 1)]),
    );
  }
  return value;
}
