import { Inject, Injectable, Logger } from '@nestjs/common';
import { JWTPayload } from 'jose';
import { EntityManager } from 'typeorm';
import { APP_CONFIG, AppConfig } from '../../../config/src/index.js';
import { uuidv7 } from '../../../domain/src/ids.js';
import { IssuedTokenRepository, Page, ResourceServerRepository, WebhookDeliveryAttemptEntity, WebhookDeliveryEntity, WebhookDeliveryRepository } from '../../../persistence/src/index.js';
import { NotFoundProblem } from '../errors/problem.js';
import { KeysService } from '../keys/keys.service.js';
import { JobQueues, QUEUE } from '../queues/queues.module.js';

/** RFC 8417 event type URIs of the SETs Procura pushes. */
export const SECEVENT = {
  grantRevoked: 'https://procura.dev/secevent/grant-revoked',
  approvalRequested: 'https://procura.dev/secevent/approval-requested',
} as const;

/** The job that makes one delivery attempt. */
export const DELIVER_JOB = 'deliver';

export type AttemptOutcome = 'delivered' | 'failed' | 'dead_letter' | 'skipped';

/** What an approval notification carries; the approvals feature decides the rest of the fields. */
export interface ApprovalNotice {
  id: string;
  [field: string]: unknown;
}

/**
 * Pushes Security Event Tokens (RFC 8417, delivered as in RFC 8935) to resource servers that registered a
 * `webhook_url`, and approval notifications to APPROVAL_WEBHOOK_URL.
 *
 * Outbox: delivery rows are written in the transaction of the change (`prepare*`), jobs are enqueued after
 * commit (`enqueue`), and a periodic redrive re-enqueues rows whose job was lost (Redis down at commit).
 * At least once: a job may run twice; the row's lease and status make the second run a no-op, and the
 * SET's `jti` (the delivery id) is stable across attempts so receivers can de-duplicate.
 */
@Injectable()
export class WebhooksService {
  private readonly log = new Logger('Webhooks');

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly deliveries: WebhookDeliveryRepository,
    private readonly tokens: IssuedTokenRepository,
    private readonly keys: KeysService,
    private readonly queues: JobQueues,
    private readonly resourceServers: ResourceServerRepository,
  ) {}

  /** In the revoke (or expiry) transaction: one delivery per resource server with a webhook the grants concern. */
  async prepareRevocation(em: EntityManager, eventId: string, revokedIds: string[], reason: string | null): Promise<WebhookDeliveryEntity[]> {
    const targets = await this.deliveries.webhookTargetsForGrants(revokedIds, em);
    return this.deliveries.insertPending(
      targets.map((t) => ({
        id: uuidv7(),
        eventId,
        resourceServerId: t.resourceServerId,
        kind: 'grant_revoked' as const,
        url: t.webhookUrl,
        audience: t.audience,
        // Only the grants on this receiver: the others are no business of it. jtis are looked up at the first attempt.
        payload: { grant_ids: t.grantIds, reason },
      })),
      em,
    );
  }

  /** For the approvals feature, inside its transaction; then `enqueue` the result after commit. */
  async prepareApprovalRequested(em: EntityManager | null, approval: ApprovalNotice): Promise<WebhookDeliveryEntity[]> {
    if (!this.config.approvalWebhookUrl) return [];
    return this.deliveries.insertPending(
      [{ id: uuidv7(), eventId: approval.id, resourceServerId: null, kind: 'approval_requested', url: this.config.approvalWebhookUrl, audience: null, payload: { approval } }],
      em ?? undefined,
    );
  }

  /** After commit. Never throws: a delivery whose job could not be enqueued is picked up by `redrive`. */
  async enqueue(deliveries: WebhookDeliveryEntity[], jobIdSuffix = ''): Promise<void> {
    for (const d of deliveries) {
      try {
        await this.queues.add(QUEUE.webhooks, DELIVER_JOB, { deliveryId: d.id }, {
          jobId: `${deliveryJobId(d)}${jobIdSuffix}`,
          attempts: this.config.webhookMaxAttempts,
          backoff: { type: 'exponential', delay: this.config.webhookBackoffMs },
          removeOnComplete: { age: 86_400, count: 10_000 },
          removeOnFail: { age: 7 * 86_400 },
        });
      } catch (err) {
        this.log.warn(`delivery ${d.id} not enqueued (${(err as Error).message}); the redrive will retry`);
      }
    }
  }

  /**
   * Worker: one attempt at one delivery. `attemptsMade`/`maxAttempts` come from the BullMQ job; the row's
   * own attempt count also bounds the total, so a duplicated job cannot exceed WEBHOOK_MAX_ATTEMPTS.
   */
  async attempt(deliveryId: string, job: { attemptsMade: number; maxAttempts: number }): Promise<AttemptOutcome> {
    const now = new Date();
    const d = await this.deliveries.claim(deliveryId, now, this.config.webhookTimeoutMs + 5000);
    if (!d) return 'skipped';
    let payload = d.payload;
    if (d.kind === 'grant_revoked' && !Array.isArray(payload.jtis)) {
      // Looked up now rather than at revoke time: this also catches a token recorded in the instant the
      // revoke committed, and leaves out tokens that expired before anyone could use them.
      const jtis = await this.tokens.findUnexpiredJtis(payload.grant_ids as string[], d.audience, now);
      payload = { ...payload, jtis };
      await this.deliveries.setPayload(d.id, payload);
    }
    const set = await this.keys.sign(this.setClaims(d, payload), 'secevent+jwt');

    const started = Date.now();
    let statusCode: number | null = null;
    let error: string | null = null;
    try {
      const res = await fetch(d.url, {
        method: 'POST',
        headers: { 'content-type': 'application/secevent+jwt', accept: 'application/json' },
        body: set,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.config.webhookTimeoutMs),
      });
      statusCode = res.status;
      await res.body?.cancel().catch(() => undefined);
      if (res.status < 200 || res.status > 299) error = `HTTP ${res.status}`;
    } catch (err) {
      error = describeFetchError(err);
    }
    const attempt = d.attempts + 1;
    const last = attempt >= job.maxAttempts || job.attemptsMade + 1 >= job.maxAttempts;
    const outcome = error === null ? 'delivered' : last ? 'dead_letter' : 'failed';
    await this.deliveries.recordAttempt(d.id, { attempt, attemptedAt: new Date(started), durationMs: Date.now() - started, statusCode, error, outcome }, uuidv7());
    if (outcome === 'dead_letter') this.log.warn(`delivery ${d.id} to ${d.url} dead-lettered after ${attempt} attempts: ${error}`);
    return outcome;
  }

  /** Worker (maintenance): re-enqueues pending deliveries idle for longer than their next backoff allows. */
  async redrive(now = new Date()): Promise<number> {
    const stale = await this.deliveries.findStalePending(new Date(now.getTime() - 60_000), now, 100);
    const due = stale.filter((d) => d.updatedAt.getTime() + this.config.webhookBackoffMs * 2 ** Math.max(0, d.attempts - 1) + 60_000 < now.getTime());
    // A fresh job id per minute: the original job may still exist (completed or failed) under the base id.
    await this.enqueue(due, `-redrive-${Math.floor(now.getTime() / 60_000)}`);
    return due.length;
  }

  async listForResourceServer(resourceServerId: string, limit: number, cursor: string | null): Promise<Page<WebhookDeliveryEntity & { attemptLog: WebhookDeliveryAttemptEntity[] }>> {
    if (!(await this.resourceServers.findById(resourceServerId))) throw new NotFoundProblem('resource server');
    return this.deliveries.listPageByResourceServer(resourceServerId, limit, cursor);
  }

  /** RFC 8417 claims. `iat` is the delivery's creation and `jti` its id, so retries carry the same SET. */
  private setClaims(d: WebhookDeliveryEntity, payload: Record<string, unknown>): JWTPayload {
    const base = { iss: this.config.issuer, iat: Math.floor(d.createdAt.getTime() / 1000), jti: d.id, txn: d.eventId };
    if (d.kind === 'approval_requested') {
      return { ...base, aud: d.url, events: { [SECEVENT.approvalRequested]: payload.approval as Record<string, unknown> } };
    }
    return {
      ...base,
      aud: d.audience!,
      events: { [SECEVENT.grantRevoked]: { grant_ids: payload.grant_ids, jtis: payload.jtis, reason: payload.reason ?? null } },
    };
  }
}

/** Deterministic per (event, receiver): enqueuing the same delivery twice yields one job. */
export function deliveryJobId(d: Pick<WebhookDeliveryEntity, 'kind' | 'eventId' | 'resourceServerId'>): string {
  return d.kind === 'grant_revoked' ? `revocation-${d.eventId}-${d.resourceServerId}` : `approval-${d.eventId}`;
}

function describeFetchError(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return 'timeout';
  return (e?.cause?.code ?? e?.cause?.message ?? e?.message ?? 'request failed').slice(0, 500);
}
