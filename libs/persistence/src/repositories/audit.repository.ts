import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Brackets, DataSource, EntityManager, Repository, SelectQueryBuilder } from 'typeorm';
import { AuditEventEntity } from '../entities/audit-event.entity.js';
import { Page, toPage } from '../page.js';
import { plainInsert, PlainInsert } from '../plain-insert.js';
import { PrincipalRef } from './grant.repository.js';

/** Everything but the chain fields, which only the sealer writes. */
export type AuditEventRow = Omit<AuditEventEntity, 'seq' | 'prevHash' | 'hash'>;

export interface AuditFilters {
  grantId?: string;
  /** Matches the acting agent or any agent of the actor chain. */
  agentId?: string;
  /** `iss` omitted: any issuer. */
  principal?: { iss?: string; sub: string };
  types?: string[];
  since?: Date;
  until?: Date;
}

export interface ChainHead {
  seq: number;
  hash: string;
}

export interface SealResult {
  /** False when another process held the sealing lock: it seals these rows instead. */
  acquired: boolean;
  sealed: number;
}

// Shared by every Procura process: one sealer at a time, whatever the number of workers.
const SEAL_LOCK_KEY = 7_301_946_230;
// 16 columns a row: 1,000 rows stay far below Postgres' 65,535 parameters per statement.
const INSERT_CHUNK = 1000;

@Injectable()
export class AuditRepository {
  private readonly repo: Repository<AuditEventEntity>;
  constructor(@InjectDataSource() private readonly ds: DataSource) {
    this.repo = ds.getRepository(AuditEventEntity);
  }

  /** Inserts unsealed events; pass the EntityManager of the transaction whose change they record. */
  async insert(rows: AuditEventRow | AuditEventRow[], em?: EntityManager | null): Promise<void> {
    const list = Array.isArray(rows) ? rows : [rows];
    for (let i = 0; i < list.length; i += INSERT_CHUNK) {
      const { sql, values } = this.insertStatement(list.slice(i, i + INSERT_CHUNK));
      await (em ?? this.ds).query(sql, values);
    }
  }

  /** Batch insert for events that travelled through the queue; ids make a redelivered batch a no-op. */
  async insertManyIgnoringDuplicates(rows: AuditEventRow[]): Promise<number> {
    let inserted = 0;
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      const { sql, values } = this.insertStatement(rows.slice(i, i + INSERT_CHUNK));
      inserted += ((await this.ds.query(`${sql} ON CONFLICT (id) DO NOTHING RETURNING id`, values)) as unknown[]).length;
    }
    return inserted;
  }

  /**
   * The INSERT of unsealed events as plain SQL (see plainInsert), starting at parameter `firstParam`:
   * callers may prepend a statement, e.g. the issued token the event records, in one atomic CTE.
   */
  insertStatement(rows: AuditEventRow[], firstParam = 1): PlainInsert {
    return plainInsert(this.repo.metadata, rows as unknown as Record<string, unknown>[], firstParam);
  }

  /**
   * Seals up to `limit` unsealed events in id order: assigns the next `seq`, links each to the previous
   * hash and stores its own. Runs under a transaction-scoped advisory lock, so however many workers call
   * it, one writer extends the chain at a time; the head row is updated in the same transaction.
   */
  async sealBatch(limit: number, hashOf: (prevHash: string, row: AuditEventEntity) => string, genesis: string): Promise<SealResult> {
    return this.ds.transaction(async (em) => {
      const [{ locked }] = (await em.query('SELECT pg_try_advisory_xact_lock($1) AS locked', [SEAL_LOCK_KEY])) as { locked: boolean }[];
      if (!locked) return { acquired: false, sealed: 0 };
      const head = await this.readHead(em);
      const rows = await em.getRepository(AuditEventEntity).createQueryBuilder('e').where('e.seq IS NULL').orderBy('e.id', 'ASC').take(limit).getMany();
      if (!rows.length) return { acquired: true, sealed: 0 };
      let seq = head?.seq ?? 0;
      let prev = head?.hash ?? genesis;
      const ids: string[] = [];
      const seqs: string[] = [];
      const prevs: string[] = [];
      const hashes: string[] = [];
      for (const row of rows) {
        seq += 1;
        row.seq = String(seq);
        const hash = hashOf(prev, row);
        ids.push(row.id);
        seqs.push(String(seq));
        prevs.push(prev);
        hashes.push(hash);
        prev = hash;
      }
      await em.query(
        `UPDATE audit_events AS e SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash
           FROM (SELECT unnest($1::uuid[]) AS id, unnest($2::bigint[]) AS seq, unnest($3::text[]) AS prev_hash, unnest($4::text[]) AS hash) AS v
          WHERE e.id = v.id AND e.seq IS NULL`,
        [ids, seqs, prevs, hashes],
      );
      await em.query(
        `INSERT INTO audit_chain_head (id, last_seq, last_hash, updated_at) VALUES (1, $1, $2, now())
         ON CONFLICT (id) DO UPDATE SET last_seq = EXCLUDED.last_seq, last_hash = EXCLUDED.last_hash, updated_at = now()`,
        [String(seq), prev],
      );
      return { acquired: true, sealed: rows.length };
    });
  }

  /** Sealed events in chain order, after `afterSeq`. */
  sealedAfter(afterSeq: number, limit: number): Promise<AuditEventEntity[]> {
    return this.repo.createQueryBuilder('e').where('e.seq > :afterSeq', { afterSeq: String(afterSeq) }).orderBy('e.seq', 'ASC').take(limit).getMany();
  }

  head(): Promise<ChainHead | null> {
    return this.readHead(this.repo.manager);
  }

  async countUnsealed(): Promise<number> {
    return this.repo.createQueryBuilder('e').where('e.seq IS NULL').getCount();
  }

  findById(id: string): Promise<AuditEventEntity | null> {
    return this.repo.findOneBy({ id });
  }

  /** `scope` null lists every event (admins). Newest first. */
  async listPage(scope: PrincipalRef | null, filters: AuditFilters, limit: number, beforeId: string | null): Promise<Page<AuditEventEntity>> {
    const qb = this.filtered(scope, filters);
    if (beforeId) qb.andWhere('e.id < :beforeId', { beforeId });
    const rows = await qb.orderBy('e.id', 'DESC').take(limit + 1).getMany();
    return toPage(rows, limit);
  }

  /** For exports: oldest first, keyset-paged by id so a long export never holds a cursor open. */
  exportBatch(scope: PrincipalRef | null, filters: AuditFilters, afterId: string | null, limit: number): Promise<AuditEventEntity[]> {
    const qb = this.filtered(scope, filters);
    if (afterId) qb.andWhere('e.id > :afterId', { afterId });
    return qb.orderBy('e.id', 'ASC').take(limit).getMany();
  }

  private filtered(scope: PrincipalRef | null, f: AuditFilters): SelectQueryBuilder<AuditEventEntity> {
    const qb = this.repo.createQueryBuilder('e');
    if (scope) {
      // A person sees the events about their own grants: those naming them as principal, and those
      // touching a grant they gave (introspections and refusals may not know the principal's issuer).
      qb.andWhere(
        new Brackets((w) =>
          w
            .where('e.principal_iss = :scopeIss AND e.principal_sub = :scopeSub')
            .orWhere('EXISTS (SELECT 1 FROM grants sg WHERE sg.id = ANY(e.grant_ids) AND sg.principal_iss = :scopeIss AND sg.principal_sub = :scopeSub)'),
        ),
        { scopeIss: scope.iss, scopeSub: scope.sub },
      );
    }
    if (f.grantId) qb.andWhere('e.grant_ids @> ARRAY[:grantId]::uuid[]', { grantId: f.grantId });
    if (f.agentId) qb.andWhere('(e.agent_id = :agentId OR e.actor_chain @> jsonb_build_array(:agentIdText::text))', { agentId: f.agentId, agentIdText: f.agentId });
    if (f.principal) {
      qb.andWhere('e.principal_sub = :pSub', { pSub: f.principal.sub });
      if (f.principal.iss) qb.andWhere('e.principal_iss = :pIss', { pIss: f.principal.iss });
    }
    if (f.types?.length) qb.andWhere('e.type = ANY(:types)', { types: f.types });
    if (f.since) qb.andWhere('e.occurred_at >= :since', { since: f.since });
    if (f.until) qb.andWhere('e.occurred_at < :until', { until: f.until });
    return qb;
  }

  private async readHead(em: EntityManager): Promise<ChainHead | null> {
    const rows = (await em.query('SELECT last_seq, last_hash FROM audit_chain_head WHERE id = 1')) as { last_seq: string; last_hash: string }[];
    return rows.length ? { seq: Number(rows[0].last_seq), hash: rows[0].last_hash } : null;
  }
}
