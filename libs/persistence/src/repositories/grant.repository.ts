import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager, Repository } from 'typeorm';
import { GrantEntity, GrantStatus } from '../entities/grant.entity.js';
import { Page, toPage } from '../page.js';
import { preparedQuery } from '../prepared.js';
import { selectColumns } from '../plain-insert.js';

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

  /**
   * Root grants (not sub-grants) a principal gave this agent on this resource server, live at `now`.
   * Every exchange runs it: plain SQL, rows shaped by the entity metadata, no query building per call.
   */
  async findActiveForExchange(principal: PrincipalRef, agentId: string, resourceServerId: string, autonomous: boolean, now: Date): Promise<GrantEntity[]> {
    const rows = await preparedQuery<GrantEntity>(
      this.ds,
      'procura_grants_for_exchange',
      `SELECT ${this.selectList()} FROM grants g
        WHERE g.agent_id = $1 AND g.resource_server_id = $2 AND g.status = 'active'
          AND g.principal_iss = $3 AND g.principal_sub = $4 AND g.autonomous = $5 AND g.parent_id IS NULL
          AND (g.expires_at IS NULL OR g.expires_at > $6)
        ORDER BY g.id ASC`,
      [agentId, resourceServerId, principal.iss, principal.sub, autonomous, now],
    );
    return rows.map((r) => Object.assign(new GrantEntity(), r));
  }

  private columns?: string;
  private selectList(): string {
    return (this.columns ??= selectColumns(this.repo.metadata, 'g'));
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

  // ---------------------------------------------------------------- delegation (sub-grants)

  /**
   * Inside a delegation's transaction: locks the path from the root down to `parentId`, top-down like
   * revokes, and returns it (null when the parent does not exist). Ancestors FOR SHARE, so delegations
   * in one tree do not queue behind each other; the parent FOR UPDATE, so its children are counted and
   * added one delegation at a time. A concurrent revoke of any grant on the path then either commits
   * first (this sees it revoked) or waits and sees the new child (revokeSubtree).
   */
  async lockPathForDelegation(parentId: string, em: EntityManager): Promise<{ parent: GrantEntity; ancestors: GrantEntity[] } | null> {
    const repo = em.getRepository(GrantEntity);
    const path = await repo.findOne({ where: { id: parentId }, select: { id: true, ancestorIds: true } });
    if (!path) return null;
    const ancestors = path.ancestorIds.length
      ? await repo.createQueryBuilder('g').where('g.id = ANY(:ids::uuid[])', { ids: path.ancestorIds }).setLock('pessimistic_read').getMany()
      : [];
    const parent = await repo.createQueryBuilder('g').where('g.id = :id', { id: parentId }).setLock('pessimistic_write').getOne();
    const byId = new Map(ancestors.map((g) => [g.id, g]));
    return { parent: parent!, ancestors: path.ancestorIds.map((id) => byId.get(id)).filter((g): g is GrantEntity => g !== undefined) };
  }

  /** Live (active, unexpired) sub-grants directly under `parentId`: what MAX_CHILDREN_PER_GRANT limits. */
  countChildren(parentId: string, now: Date, em?: EntityManager): Promise<number> {
    return (em ? em.getRepository(GrantEntity) : this.repo)
      .createQueryBuilder('g')
      .where("g.parent_id = :parentId AND g.status = 'active' AND (g.expires_at IS NULL OR g.expires_at > :now)", { parentId, now })
      .getCount();
  }

  /** A sub-grant: it keeps the parent's principal and resource, and extends the parent's materialized path. */
  insertChild(
    parent: GrantEntity,
    child: Pick<GrantEntity, 'id' | 'agentId' | 'action' | 'constraints' | 'rateLimit' | 'maxUses' | 'expiresAt' | 'maxDelegationDepth' | 'purpose' | 'createdBy'>,
    em: EntityManager,
  ): Promise<GrantEntity> {
    return this.insert(
      {
        ...child,
        principalIss: parent.principalIss,
        principalSub: parent.principalSub,
        autonomous: parent.autonomous,
        resourceServerId: parent.resourceServerId,
        resource: parent.resource,
        parentId: parent.id,
        ancestorIds: [...parent.ancestorIds, parent.id],
      },
      em,
    );
  }

  /** The grant and every grant below it, shallowest first: one lookup on the GIN-indexed `ancestor_ids`. */
  findSubtree(rootId: string): Promise<GrantEntity[]> {
    return this.repo
      .createQueryBuilder('g')
      .where('(g.id = :rootId OR g.ancestor_ids @> ARRAY[:rootId]::uuid[])', { rootId })
      .orderBy('cardinality(g.ancestor_ids)', 'ASC')
      .addOrderBy('g.id', 'ASC')
      .getMany();
  }

  /**
   * Revokes a grant and its whole subtree in one transaction. `beforeCommit` receives every id that
   * changes state and runs while the rows are locked: it publishes the revocation to the shared
   * status cache first, so no reader can see the grant as active once this returns. `mayRevoke` sees
   * the locked root first; null when the grant is missing or `mayRevoke` refuses it (nothing changes).
   * Returns the root as it is after the revoke, without reading it again: each round trip of a revoke
   * waits its turn on a busy event loop.
   */
  async revokeSubtree(
    rootId: string,
    meta: RevocationMeta,
    mayRevoke: (root: GrantEntity) => boolean,
    beforeCommit: (ids: string[], em: EntityManager, root: GrantEntity) => Promise<void>,
  ): Promise<{ root: GrantEntity; revokedIds: string[] } | null> {
    return this.ds.transaction(async (em) => {
      // The subtree's root first, in a statement of its own: a delegation below it holds its path locked
      // until it commits (lockPathForDelegation), so the next statement's snapshot includes the new child.
      const [locked] = (await em.query(`SELECT ${this.selectList()} FROM grants g WHERE g.id = $1 FOR UPDATE`, [rootId])) as GrantEntity[];
      if (!locked || !mayRevoke(locked)) return null;
      // One indexed pass that changes and locks the subtree; nobody sees the change before the commit,
      // which comes after `beforeCommit` (a failure there rolls it all back).
      const rows: { id: string }[] = await em.query(
        `WITH revoked AS (
           UPDATE grants SET status = 'revoked', revoked_at = $2, revoked_by = $3, revocation_reason = $4, updated_at = $2
            WHERE (id = $1 OR ancestor_ids @> ARRAY[$1]::uuid[]) AND status = 'active' RETURNING id)
         SELECT id FROM revoked`,
        [rootId, meta.at, meta.by, meta.reason],
      );
      const revokedIds = rows.map((r) => r.id);
      const root = Object.assign(new GrantEntity(), locked);
      if (revokedIds.length) await beforeCommit(revokedIds, em, root);
      // The same columns the UPDATE set, when it changed the root (an already revoked or expired root stays as it was).
      if (revokedIds.includes(root.id)) Object.assign(root, { status: 'revoked', revokedAt: meta.at, revokedBy: meta.by, revocationReason: meta.reason, updatedAt: meta.at });
      return { root, revokedIds };
    });
  }

  /**
   * Expires, in one transaction, up to `limit` active grants whose `expires_at` is at or before `now`,
   * with their active subtrees. Rows are taken FOR UPDATE SKIP LOCKED: concurrent sweepers (several
   * workers) and revokes never wait on each other, so they cannot deadlock, and every grant changes
   * state, and reaches `beforeCommit`, exactly once. Each entry names the due grant that caused it.
   */
  async expireDue(now: Date, limit: number, beforeCommit: (expired: ExpiredGrant[], em: EntityManager) => Promise<void>): Promise<ExpiredGrant[]> {
    return this.ds.transaction(async (em) => {
      const roots = await em
        .getRepository(GrantEntity)
        .createQueryBuilder('g')
        .where("g.status = 'active' AND g.expires_at <= :now", { now })
        .orderBy('g.expires_at', 'ASC')
        .addOrderBy('g.id', 'ASC')
        .take(limit)
        .setLock('pessimistic_write')
        .setOnLocked('skip_locked')
        .getMany();
      if (!roots.length) return [];
      const rootIds = roots.map((g) => g.id);
      const descendants = await em
        .getRepository(GrantEntity)
        .createQueryBuilder('g')
        .where("g.status = 'active' AND g.ancestor_ids && :rootIds::uuid[] AND NOT (g.id = ANY(:rootIds::uuid[]))", { rootIds })
        .orderBy('g.id', 'ASC')
        .setLock('pessimistic_write')
        .setOnLocked('skip_locked')
        .getMany();
      const expired: ExpiredGrant[] = [
        ...roots.map((grant) => ({ grant, dueGrantId: grant.id })),
        ...descendants.map((grant) => ({ grant, dueGrantId: grant.ancestorIds.find((a) => rootIds.includes(a))! })),
      ];
      await beforeCommit(expired, em);
      await em.query(`UPDATE grants SET status = 'expired', updated_at = $2 WHERE id = ANY($1::uuid[]) AND status = 'active'`, [expired.map((e) => e.grant.id), now]);
      return expired;
    });
  }
}

export interface ExpiredGrant {
  grant: GrantEntity;
  /** The grant whose `expires_at` passed: the grant itself, or the ancestor that took it along. */
  dueGrantId: string;
}
