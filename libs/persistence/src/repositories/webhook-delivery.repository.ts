import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager, Repository } from 'typeorm';
import { WebhookDeliveryAttemptEntity, WebhookDeliveryEntity, WebhookDeliveryStatus } from '../entities/webhook-delivery.entity.js';
import { Page, toPage } from '../page.js';

export type NewWebhookDelivery = Pick<WebhookDeliveryEntity, 'id' | 'eventId' | 'resourceServerId' | 'kind' | 'url' | 'audience' | 'payload'>;

export interface AttemptRecord {
  attempt: number;
  attemptedAt: Date;
  durationMs: number;
  statusCode: number | null;
  error: string | null;
  outcome: 'delivered' | 'failed' | 'dead_letter';
}

@Injectable()
export class WebhookDeliveryRepository {
  private readonly repo: Repository<WebhookDeliveryEntity>;
  private readonly attempts: Repository<WebhookDeliveryAttemptEntity>;
  constructor(@InjectDataSource() private readonly ds: DataSource) {
    this.repo = ds.getRepository(WebhookDeliveryEntity);
    this.attempts = ds.getRepository(WebhookDeliveryAttemptEntity);
  }

  /** Outbox insert, in the caller's transaction. Returns the rows as stored (existing ones win). */
  async insertPending(rows: NewWebhookDelivery[], em?: EntityManager): Promise<WebhookDeliveryEntity[]> {
    if (!rows.length) return [];
    const repo = em ? em.getRepository(WebhookDeliveryEntity) : this.repo;
    await repo
      .createQueryBuilder()
      .insert()
      .values(rows.map((r) => ({ ...r, status: 'pending', attempts: 0, leaseUntil: null, lastStatusCode: null, lastError: null, deliveredAt: null })) as never)
      .orIgnore()
      .execute();
    return repo.createQueryBuilder('d').where('d.id = ANY(:ids::uuid[])', { ids: rows.map((r) => r.id) }).getMany();
  }

  /** For each resource server with a webhook that `grantIds` concern: its audience, URL and the grant ids on it. */
  async webhookTargetsForGrants(grantIds: string[], em?: EntityManager): Promise<{ resourceServerId: string; audience: string; webhookUrl: string; grantIds: string[] }[]> {
    if (!grantIds.length) return [];
    const rows = (await (em ?? this.ds.manager).query(
      `SELECT rs.id AS rs_id, rs.audience, rs.webhook_url, array_agg(g.id ORDER BY g.id) AS grant_ids
         FROM grants g JOIN resource_servers rs ON rs.id = g.resource_server_id
        WHERE g.id = ANY($1::uuid[]) AND rs.webhook_url IS NOT NULL
        GROUP BY rs.id, rs.audience, rs.webhook_url`,
      [grantIds],
    )) as { rs_id: string; audience: string; webhook_url: string; grant_ids: string[] }[];
    return rows.map((r) => ({ resourceServerId: r.rs_id, audience: r.audience, webhookUrl: r.webhook_url, grantIds: r.grant_ids }));
  }

  findById(id: string): Promise<WebhookDeliveryEntity | null> {
    return this.repo.findOneBy({ id });
  }

  /**
   * Takes the delivery for one attempt: only while it is pending and nobody else holds an unexpired lease.
   * Null means another copy of the job is sending it, or it is already settled (delivered or dead-lettered).
   */
  async claim(id: string, now: Date, leaseMs: number): Promise<WebhookDeliveryEntity | null> {
    const result = await this.repo
      .createQueryBuilder()
      .update()
      .set({ leaseUntil: new Date(now.getTime() + leaseMs) })
      .where("id = :id AND status = 'pending' AND (lease_until IS NULL OR lease_until < :now)", { id, now })
      .returning('*')
      .execute();
    return (result.raw as unknown[]).length ? this.findById(id) : null;
  }

  async setPayload(id: string, payload: Record<string, unknown>): Promise<void> {
    await this.repo.update({ id }, { payload: payload as never });
  }

  /** Records the attempt and settles the delivery's state in one transaction, releasing the lease. */
  async recordAttempt(id: string, a: AttemptRecord, attemptId: string): Promise<void> {
    const status: WebhookDeliveryStatus = a.outcome === 'failed' ? 'pending' : a.outcome;
    await this.ds.transaction(async (em) => {
      await em
        .getRepository(WebhookDeliveryAttemptEntity)
        .createQueryBuilder()
        .insert()
        .values({ id: attemptId, deliveryId: id, ...a })
        .orIgnore()
        .execute();
      await em.getRepository(WebhookDeliveryEntity).update(
        { id },
        {
          status,
          attempts: a.attempt,
          leaseUntil: null,
          lastStatusCode: a.statusCode,
          lastError: a.error,
          ...(a.outcome === 'delivered' ? { deliveredAt: a.attemptedAt } : {}),
        },
      );
    });
  }

  /** Pending deliveries created before `createdBefore` that nobody holds: their job may have been lost. */
  findStalePending(createdBefore: Date, now: Date, limit: number): Promise<WebhookDeliveryEntity[]> {
    return this.repo
      .createQueryBuilder('d')
      .where("d.status = 'pending' AND d.created_at < :createdBefore AND (d.lease_until IS NULL OR d.lease_until < :now)", { createdBefore, now })
      .orderBy('d.created_at', 'ASC')
      .take(limit)
      .getMany();
  }

  /** Newest first, each with its attempts in order. */
  async listPageByResourceServer(resourceServerId: string, limit: number, beforeId: string | null): Promise<Page<WebhookDeliveryEntity & { attemptLog: WebhookDeliveryAttemptEntity[] }>> {
    const qb = this.repo.createQueryBuilder('d').where('d.resource_server_id = :rs', { rs: resourceServerId });
    if (beforeId) qb.andWhere('d.id < :beforeId', { beforeId });
    const rows = await qb.orderBy('d.id', 'DESC').take(limit + 1).getMany();
    const page = toPage(rows, limit);
    const attempts = page.data.length
      ? await this.attempts.createQueryBuilder('a').where('a.delivery_id = ANY(:ids::uuid[])', { ids: page.data.map((d) => d.id) }).orderBy('a.attempt', 'ASC').getMany()
      : [];
    return { data: page.data.map((d) => Object.assign(d, { attemptLog: attempts.filter((a) => a.deliveryId === d.id) })), nextCursor: page.nextCursor };
  }
}
