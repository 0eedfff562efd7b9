import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager, Repository } from 'typeorm';
import { IssuedTokenEntity } from '../entities/issued-token.entity.js';
import { Page, toPage } from '../page.js';
import { plainInsert } from '../plain-insert.js';
import { preparedQuery } from '../prepared.js';
import { AuditEventRow, AuditRepository } from './audit.repository.js';

interface PendingRecord {
  token: Omit<IssuedTokenEntity, 'revokedAt'>;
  event: AuditEventRow;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Records per statement, and statements in flight at once (each holds a pooled connection). */
const MAX_BATCH = 64;
const MAX_CONCURRENT_WRITES = 4;

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
   * Every exchange records its token and the event that audits it, and waits until both committed.
   * Group commit: records arriving while earlier ones are being written go out together as ONE
   * statement (`WITH t AS (INSERT INTO issued_tokens ...) INSERT INTO audit_events ...`), which is
   * atomic on its own, so each token's row and event commit together or not at all. Under load this
   * turns a statement, a socket write and a commit per exchange into one per batch (the exchange
   * profile was dominated by those writes); alone, a record is written at once.
   */
  recordWithEvent(token: Omit<IssuedTokenEntity, 'revokedAt'>, event: AuditEventRow): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ token, event, resolve, reject });
      this.drain();
    });
  }

  private readonly pending: PendingRecord[] = [];
  private writing = 0;
  private scheduled = false;

  private drain(): void {
    if (this.scheduled || !this.pending.length || this.writing >= MAX_CONCURRENT_WRITES) return;
    this.scheduled = true;
    // Let the records of this event-loop turn join before writing.
    setImmediate(() => {
      this.scheduled = false;
      if (this.writing >= MAX_CONCURRENT_WRITES) return;
      const batch = this.pending.splice(0, MAX_BATCH);
      this.writing++;
      this.writeBatch(batch).finally(() => {
        this.writing--;
        this.drain();
      });
      this.drain();
    });
  }

  private async writeBatch(batch: PendingRecord[]): Promise<void> {
    // One statement per column layout (rows of one statement must share their columns).
    const groups = new Map<string, PendingRecord[]>();
    for (const r of batch) {
      const key = `${Object.keys(r.token).join()};${Object.keys(r.event).join()}`;
      const group = groups.get(key);
      if (group) group.push(r);
      else groups.set(key, [r]);
    }
    await Promise.all(
      [...groups].map(async ([key, records]) => {
        try {
          await this.insertRecords(key, records);
          for (const r of records) r.resolve();
        } catch (err) {
          if (records.length === 1) return records[0].reject(err);
          // One bad record must not fail the others: write each on its own.
          await Promise.all(records.map((r) => this.insertRecords(key, [r]).then(r.resolve, r.reject)));
        }
      }),
    );
  }

  private async insertRecords(layout: string, records: PendingRecord[]): Promise<void> {
    const t = plainInsert(this.repo.metadata, records.map((r) => r.token));
    const e = this.audit.insertStatement(records.map((r) => r.event), t.values.length + 1);
    const text = `WITH t AS (${t.sql}) ${e.sql}`;
    // The same layout and size always give the same text: prepared once per connection.
    const stmtKey = `${layout}|${records.length}`;
    let name = this.statementNames.get(stmtKey);
    if (!name) this.statementNames.set(stmtKey, (name = `procura_token_with_event_${this.statementNames.size}`));
    await preparedQuery(this.ds, name, text, [...t.values, ...e.values]);
  }
  private readonly statementNames = new Map<string, string>();

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
