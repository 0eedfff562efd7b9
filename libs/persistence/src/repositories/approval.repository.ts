import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager, Repository } from 'typeorm';
import { ApprovalEntity, ApprovalStatus } from '../entities/approval.entity.js';
import { Page, toPage } from '../page.js';
import { PrincipalRef } from './grant.repository.js';

export type NewApproval = Omit<ApprovalEntity, 'status' | 'decidedAt' | 'decidedBy' | 'decisionReason' | 'consumedAt' | 'tokenJti'>;

/** Who may see approvals: a principal's own, or (null) every approval, for admins. */
export type ApprovalScope = PrincipalRef | null;

const OPEN: ApprovalStatus[] = ['pending', 'approved'];

@Injectable()
export class ApprovalRepository {
  private readonly repo: Repository<ApprovalEntity>;
  constructor(@InjectDataSource() private readonly ds: DataSource) {
    this.repo = ds.getRepository(ApprovalEntity);
  }

  findById(id: string): Promise<ApprovalEntity | null> {
    return this.repo.findOneBy({ id });
  }

  /** The one pending or approved approval for a request key, if any (a partial unique index keeps it one). */
  findOpen(matchKey: string): Promise<ApprovalEntity | null> {
    return this.repo.createQueryBuilder('a').where('a.match_key = :matchKey AND a.status IN (:...open)', { matchKey, open: OPEN }).getOne();
  }

  /** The newest denial for a request key that has not yet run out: retries keep hearing "denied" until then. */
  findStandingDenial(matchKey: string, now: Date): Promise<ApprovalEntity | null> {
    return this.repo
      .createQueryBuilder('a')
      .where("a.match_key = :matchKey AND a.status = 'denied' AND a.expires_at > :now", { matchKey, now })
      .orderBy('a.id', 'DESC')
      .getOne();
  }

  /**
   * Inserts a pending approval unless one is already open for its key (concurrent first requests create
   * one row). `afterInsert` runs in the same transaction (audit, outbox). Returns the row, or null.
   */
  async insertPending(approval: NewApproval, afterInsert: (em: EntityManager, row: ApprovalEntity) => Promise<void>): Promise<ApprovalEntity | null> {
    return this.ds.transaction(async (em) => {
      const row: ApprovalEntity = { ...approval, status: 'pending', decidedAt: null, decidedBy: null, decisionReason: null, consumedAt: null, tokenJti: null };
      const result = await em.createQueryBuilder().insert().into(ApprovalEntity).values(row).orIgnore().returning(['id']).execute();
      if (!(result.raw as unknown[]).length) return null;
      await afterInsert(em, row);
      return row;
    });
  }

  /** Marks an open approval whose time ran out as expired. True when this call did it. */
  async expire(id: string, now: Date): Promise<boolean> {
    const result: unknown = await this.repo.query(
      `UPDATE approvals SET status = 'expired' WHERE id = $1 AND status = ANY($2::text[]) AND expires_at <= $3 RETURNING id`,
      [id, OPEN, now],
    );
    return returnedRows(result).length > 0;
  }

  /**
   * Pending -> approved | denied, only while pending and unexpired. `afterDecide` runs in the same
   * transaction. Returns the decided row, or null when the row was not pending (anymore).
   */
  async decide(
    id: string,
    decision: 'approved' | 'denied',
    by: string,
    reason: string | null,
    now: Date,
    afterDecide: (em: EntityManager, row: ApprovalEntity) => Promise<void>,
  ): Promise<ApprovalEntity | null> {
    return this.ds.transaction(async (em) => {
      const result: unknown = await em.query(
        `UPDATE approvals SET status = $2, decided_at = $4, decided_by = $3, decision_reason = $5
          WHERE id = $1 AND status = 'pending' AND expires_at > $4 RETURNING id`,
        [id, decision, by, now, reason],
      );
      if (!returnedRows(result).length) return null;
      const row = (await em.getRepository(ApprovalEntity).findOneBy({ id }))!;
      await afterDecide(em, row);
      return row;
    });
  }

  /**
   * Consumes an approved approval exactly once. The row is claimed with FOR UPDATE SKIP LOCKED and stays
   * locked while `work` runs (it issues the token); a concurrent claim does not queue behind it but gets
   * 'busy' at once. If `work` throws, the claim rolls back and the approval stays approved.
   * Null when the approval is not (or no longer) approved and unexpired.
   */
  async consume<T>(id: string, now: Date, work: (em: EntityManager, row: ApprovalEntity) => Promise<T>): Promise<{ result: T } | 'busy' | null> {
    return this.ds.transaction(async (em) => {
      const locked: { status: ApprovalStatus; expires_at: Date }[] = await em.query('SELECT status, expires_at FROM approvals WHERE id = $1 FOR UPDATE SKIP LOCKED', [id]);
      if (!locked.length) return 'busy';
      if (locked[0].status !== 'approved' || !(new Date(locked[0].expires_at).getTime() > now.getTime())) return null;
      await em.query(`UPDATE approvals SET status = 'consumed', consumed_at = $2 WHERE id = $1`, [id, now]);
      const row = (await em.getRepository(ApprovalEntity).findOneBy({ id }))!;
      return { result: await work(em, row) };
    });
  }

  async setTokenJti(em: EntityManager, id: string, jti: string): Promise<void> {
    await em.query('UPDATE approvals SET token_jti = $2 WHERE id = $1', [id, jti]);
  }

  /**
   * Newest first. `status` filters on the effective status: a pending or approved approval past its
   * expiry counts as expired.
   */
  async listPage(scope: ApprovalScope, status: ApprovalStatus | undefined, now: Date, limit: number, beforeId: string | null): Promise<Page<ApprovalEntity>> {
    const qb = this.repo.createQueryBuilder('a');
    if (scope) qb.andWhere('a.principal_iss = :iss AND a.principal_sub = :sub', scope);
    if (status === 'pending' || status === 'approved') qb.andWhere('a.status = :status AND a.expires_at > :now', { status, now });
    else if (status === 'expired') qb.andWhere("(a.status = 'expired' OR (a.status IN (:...open) AND a.expires_at <= :now))", { open: OPEN, now });
    else if (status) qb.andWhere('a.status = :status', { status });
    if (beforeId) qb.andWhere('a.id < :beforeId', { beforeId });
    const rows = await qb.orderBy('a.id', 'DESC').take(limit + 1).getMany();
    return toPage(rows, limit);
  }
}

/** TypeORM's Postgres driver answers UPDATE/DELETE ... RETURNING with `[rows, rowCount]`, SELECT with the rows. */
function returnedRows(result: unknown): unknown[] {
  if (Array.isArray(result) && result.length === 2 && Array.isArray(result[0]) && typeof result[1] === 'number') return result[0] as unknown[];
  return Array.isArray(result) ? result : [];
}
