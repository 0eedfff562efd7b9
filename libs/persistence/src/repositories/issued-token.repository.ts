import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager, Repository } from 'typeorm';
import { IssuedTokenEntity } from '../entities/issued-token.entity.js';
import { Page, toPage } from '../page.js';

@Injectable()
export class IssuedTokenRepository {
  private readonly repo: Repository<IssuedTokenEntity>;
  constructor(@InjectDataSource() ds: DataSource) {
    this.repo = ds.getRepository(IssuedTokenEntity);
  }

  async record(token: Omit<IssuedTokenEntity, 'revokedAt'>, em?: EntityManager): Promise<void> {
    await (em ? em.getRepository(IssuedTokenEntity) : this.repo).insert({ ...token, revokedAt: null });
  }

  findByJti(jti: string): Promise<IssuedTokenEntity | null> {
    return this.repo.findOneBy({ jti });
  }

  /** Revokes a token only if `agentId` is the client it was issued to. True when it is now revoked. */
  async revokeOwnedBy(jti: string, agentId: string, at: Date, beforeCommit: () => Promise<void>): Promise<boolean> {
    return this.repo.manager.transaction(async (em) => {
      const rows: unknown[] = await em.query('SELECT 1 FROM issued_tokens WHERE jti = $1 AND agent_id = $2 FOR UPDATE', [jti, agentId]);
      if (!rows.length) return false;
      await beforeCommit();
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
}
