import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager, Repository } from 'typeorm';
import { GrantEntity, GrantStatus } from '../entities/grant.entity.js';
import { Page, toPage } from '../page.js';

export interface PrincipalRef {
  iss: string;
  sub: string;
}

export interface GrantFilters {
  agentId?: string;
  resource?: string;
  action?: string;
  status?: GrantStatus;
}

export interface GrantStatusRow {
  id: string;
  status: GrantStatus;
  expiresAt: Date | null;
}

export interface RevocationMeta {
  by: string;
  reason: string | null;
  at: Date;
}

@Injectable()
export class GrantRepository {
  private readonly repo: Repository<GrantEntity>;
  constructor(@InjectDataSource() private readonly ds: DataSource) {
    this.repo = ds.getRepository(GrantEntity);
  }

  insert(grant: Omit<GrantEntity, 'createdAt' | 'updatedAt' | 'status' | 'revokedAt' | 'revokedBy' | 'revocationReason'>, em?: EntityManager): Promise<GrantEntity> {
    const repo = em ? em.getRepository(GrantEntity) : this.repo;
    return repo.save(repo.create({ ...grant, status: 'active', revokedAt: null, revokedBy: null, revocationReason: null }));
  }

  findById(id: string): Promise<GrantEntity | null> {
    return this.repo.findOneBy({ id });
  }

  findByIds(ids: string[]): Promise<GrantEntity[]> {
    return ids.length ? this.repo.createQueryBuilder('g').where('g.id = ANY(:ids::uuid[])', { ids }).getMany() : Promise.resolve([]);
  }

  /** Null when missing or not the caller's: callers must not be able to tell the two apart. */
  findOwnedBy(id: string, principal: PrincipalRef | null): Promise<GrantEntity | null> {
    return principal ? this.repo.findOneBy({ id, principalIss: principal.iss, principalSub: principal.sub }) : this.findById(id);
  }

  /** `principal` null lists every grant (admins). Newest first. */
  async listPage(principal: PrincipalRef | null, filters: GrantFilters, limit: number, beforeId: string | null): Promise<Page<GrantEntity>> {
    const qb = this.repo.createQueryBuilder('g');
    if (principal) qb.andWhere('g.principal_iss = :iss AND g.principal_sub = :sub', principal);
    if (filters.agentId) qb.andWhere('g.agent_id = :agentId', { agentId: filters.agentId });
    if (filters.resource) qb.andWhere('g.resource = :resource', { resource: filters.resource });
    if (filters.action) qb.andWhere('g.action = :action', { action: filters.action });
    if (filters.status) qb.andWhere('g.status = :status', { status: filters.status });
    if (beforeId) qb.andWhere('g.id < :beforeId', { beforeId });
    const rows = await qb.orderBy('g.id', 'DESC').take(limit + 1).getMany();
    return toPage(rows, limit);
  }

  /** Root grants (not sub-grants) a principal gave this agent on this resource server, live at `now`. */
  findActiveForExchange(principal: PrincipalRef, agentId: string, resourceServerId: string, autonomous: boolean, now: Date): Promise<GrantEntity[]> {
    return this.repo
      .createQueryBuilder('g')
      .where('g.agent_id = :agentId AND g.resource_server_id = :rs AND g.status = :active', { agentId, rs: resourceServerId, active: 'active' })
      .andWhere('g.principal_iss = :iss AND g.principal_sub = :sub AND g.autonomous = :autonomous', { ...principal, autonomous })
      .andWhere('g.parent_id IS NULL')
      .andWhere('(g.expires_at IS NULL OR g.expires_at > :now)', { now })
      .orderBy('g.id', 'ASC')
      .getMany();
  }

  /** Live sub-grants held by `agentId` whose parent is one of `parentIds` (a chained exchange). */
  findActiveChildrenForExchange(parentIds: string[], agentId: string, resourceServerId: string, now: Date): Promise<GrantEntity[]> {
    if (!parentIds.length) return Promise.resolve([]);
    return this.repo
      .createQueryBuilder('g')
      .where('g.parent_id = ANY(:parentIds::uuid[]) AND g.agent_id = :agentId', { parentIds, agentId })
      .andWhere('g.resource_server_id = :rs AND g.status = :active', { rs: resourceServerId, active: 'active' })
      .andWhere('(g.expires_at IS NULL OR g.expires_at > :now)', { now })
      .orderBy('g.id', 'ASC')
      .getMany();
  }

  findStatuses(ids: string[]): Promise<GrantStatusRow[]> {
    if (!ids.length) return Promise.resolve([]);
    return this.repo
      .createQueryBuilder('g')
      .select(['g.id', 'g.status', 'g.expiresAt'])
      .where('g.id = ANY(:ids::uuid[])', { ids })
      .getMany();
  }

  /**
   * Revokes a grant and its whole subtree in one transaction. `beforeCommit` receives every id that
   * changes state and runs while the rows are locked: it publishes the revocation to the shared
   * status cache first, so no reader can see the grant as active once this returns.
   */
  async revokeSubtree(rootId: string, meta: RevocationMeta, beforeCommit: (ids: string[], em: EntityManager) => Promise<void>): Promise<string[]> {
    return this.ds.transaction(async (em) => {
      const rows: { id: string }[] = await em.query(
        `SELECT id FROM grants WHERE (id = $1 OR ancestor_ids @> ARRAY[$1]::uuid[]) AND status = 'active' FOR UPDATE`,
        [rootId],
      );
      const ids = rows.map((r) => r.id);
      if (!ids.length) return ids;
      await beforeCommit(ids, em);
      await em.query(
        `UPDATE grants SET status = 'revoked', revoked_at = $2, revoked_by = $3, revocation_reason = $4, updated_at = $2 WHERE id = ANY($1::uuid[])`,
        [ids, meta.at, meta.by, meta.reason],
      );
      return ids;
    });
  }
}
