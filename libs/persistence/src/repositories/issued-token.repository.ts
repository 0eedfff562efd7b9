import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager, Repository } from 'typeorm';
import { IssuedTokenEntity } from '../entities/issued-token.entity.js';
import { Page, toPage } from '../page.js';
import { plainInsert } from '../plain-insert.js';
import { preparedQuery } from '../prepared.js';
import { AuditEventRow, AuditRepository } from './audit.repository.js';

@Injectable()
export class IssuedTokenRepository {
  private readonly repo: Repository<IssuedTokenEntity>;
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly audit: AuditRepository,
  ) {
    this.repo = ds.getRepository(IssuedTokenEntity);
  }

  /**
   * Every exchange records its token and the event that audits it as ONE statement
   * (`WITH t AS (INSERT INTO issued_tokens ...) INSERT INTO audit_events ...`): a statement is atomic on
   * its own, so both rows commit or neither does, without BEGIN/COMMIT round trips or a QueryRunner.
   */
  async recordWithEvent(token: Omit<IssuedTokenEntity, 'revokedAt'>, event: AuditEventRow): Promise<void> {
    const t = plainInsert(this.repo.metadata, [token]);
    const e = this.audit.insertStatement([event], t.values.length + 1);
    // The same columns every time, so one text and one name; a different column set gets its own.
    const key = `${Object.keys(token).join()};${Object.keys(event).join()}`;
    let stmt = this.withEventStatements.get(key);
    if (!stmt) this.withEventStatements.set(key, (stmt = { name: `procura_token_with_event_${this.withEventStatements.size}`, text: `WITH t AS (${t.sql}) ${e.sql}` }));
    await preparedQuery(this.ds, stmt.name, stmt.text, [...t.values, ...e.values]);
  }
  private readonly withEventStatements = new Map<string, { name: string; text: string }>();

  findByJti(jti: string): Promise<IssuedTokenEntity | null> {
    return this.repo.findOneBy({ jti });
  }

  /** Revokes a token only if `agentId` is the client it was issued to. True when it is now revoked. */
  async revokeOwnedBy(jti: string, agentId: string, at: Date, beforeCommit: (em: EntityManager, token: IssuedTokenEntity) => Promise<void>): Promise<boolean> {
    return this.repo.manager.transaction(async (em) => {
      const token = await em.getRepository(IssuedTokenEntity).createQueryBuilder('t').where('t.jti = :jti AND t.agent_id = :agentId', { jti, agentId }).setLock('pessimistic_write').getOne();
      if (!token) return false;
      await beforeCommit(em, token);
      await em.query('UPDATE issued_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE jti = $1', [jti, at]);
      return true;
    });
  }

  /** Tokens that rest on a grant, newest first; `id` (the jti) is the cursor key. */
  async listPageByGrant(grantId: string, limit: number, beforeJti: string | null): Promise<Page<IssuedTokenEntity & { id: string }>> {
    const qb = this.repo.createQueryBuilder('t').where('t.grant_ids @> ARRAY[:g]::uuid[]', { g: grantId });
    if (beforeJti) qb.andWhere('t.jti < :beforeJti', { beforeJti });
    const rows = await qb.orderBy('t.jti', 'DESC').take(limit + 1).getMany();
    return toPage(rows.map((r) => Object.assign(r, { id: r.jti })), limit);
  }

  /** Live (unexpired, unrevoked) token counts per grant id. */
  async countLiveByGrant(grantIds: string[], now: Date): Promise<Map<string, number>> {
    if (!grantIds.length) return new Map();
    const rows: { grant_id: string; n: string }[] = await this.repo.query(
      `SELECT g AS grant_id, count(*) AS n FROM issued_tokens, unnest(grant_ids) g
        WHERE grant_ids && $1::uuid[] AND g = ANY($1::uuid[]) AND revoked_at IS NULL AND expires_at > $2 GROUP BY g`,
      [grantIds, now],
    );
    return new Map(rows.map((r) => [r.grant_id, Number(r.n)]));
  }

  /** jtis of tokens for `audience` resting on any of `grantIds` that have not expired yet (revocation push). */
  async findUnexpiredJtis(grantIds: string[], audience: string | null, now: Date): Promise<string[]> {
    if (!grantIds.length) return [];
    const qb = this.repo.createQueryBuilder('t').select('t.jti').where('t.grant_ids && :ids::uuid[] AND t.expires_at > :now', { ids: grantIds, now });
    if (audience !== null) qb.andWhere('t.audience = :audience', { audience });
    return (await qb.orderBy('t.jti', 'ASC').getMany()).map((t) => t.jti);
  }

  /** Deletes up to `limit` token records that expired before `cutoff`; returns how many went (retention). */
  async purgeExpiredBefore(cutoff: Date, limit: number): Promise<number> {
    const result = await this.repo
      .createQueryBuilder()
      .delete()
      .where('jti IN (SELECT jti FROM issued_tokens WHERE expires_at < :cutoff ORDER BY expires_at LIMIT :limit FOR UPDATE SKIP LOCKED)', { cutoff, limit })
      .execute();
    return result.affected ?? 0;
  }
}
