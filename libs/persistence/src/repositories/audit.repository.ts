import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Brackets, DataSource, EntityManager, Repository, SelectQueryBuilder } from 'typeorm';
import { AuditEventEntity } from '../entities/audit-event.entity.js';
import { AuditSealEntity } from '../entities/audit-seal.entity.js';
import { Page, toPage } from '../page.js';
import { plainInsert, PlainInsert, selectColumns } from '../plain-insert.js';
import { PrincipalRef } from './grant.repository.js';

/** An event as inserted; its link in the chain is written later, by the sealer alone. */
export type AuditEventRow = Omit<AuditEventEntity, 'seal'>;

/** An event with its link in the hash chain. */
export type SealedAuditEvent = AuditEventRow & { seal: AuditSealEntity };

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
   * Seals up to `limit` unsealed events in id order: gives each the next `seq`, links it to the previous
   * hash and stores its own, as a row of `audit_seals`. Runs under a transaction-scoped advisory lock, so
   * however many workers call it, one writer extends the chain at a time; the head row is updated in the
   * same transaction. Reads raw rows: hydrating entities was most of the worker's CPU per event.
   */
  async sealBatch(limit: number, hashOf: (prevHash: string, row: AuditEventRow, seq: number) => string, genesis: string): Promise<SealResult> {
    return this.ds.transaction(async (em) => {
      const [{ locked }] = (await em.query('SELECT pg_try_advisory_xact_lock($1) AS locked', [SEAL_LOCK_KEY])) as { locked: boolean }[];
      if (!locked) return { acquired: false, sealed: 0 };
      const head = await this.readHead(em);
      const unsealed = (await em.query(
        `SELECT ${selectColumns(this.repo.metadata, 'e')} FROM audit_unsealed u JOIN audit_events e ON e.id = u.id ORDER BY u.id LIMIT $1`,
        [limit],
      )) as AuditEventRow[];
      if (!unsealed.length) return { acquired: true, sealed: 0 };
      let seq = head?.seq ?? 0;
      let prev = head?.hash ?? genesis;
      const ids: string[] = [];
      const seqs: string[] = [];
      const prevs: string[] = [];
      const hashes: string[] = [];
      for (const e of unsealed) {
        seq += 1;
        const hash = hashOf(prev, e, seq);
        ids.push(e.id);
        seqs.push(String(seq));
        prevs.push(prev);
        hashes.push(hash);
        prev = hash;
      }
      // The links, the queue's cleanup and the head, in one statement.
      await em.query(
        `WITH sealed AS (
           INSERT INTO audit_seals (seq, event_id, prev_hash, hash) SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[])
         ), dequeued AS (
           DELETE FROM audit_unsealed WHERE id = ANY($2::uuid[])
         )
         INSERT INTO audit_chain_head (id, last_seq, last_hash, updated_at) VALUES (1, $5, $6, now())
         ON CONFLICT (id) DO UPDATE SET last_seq = EXCLUDED.last_seq, last_hash = EXCLUDED.last_hash, updated_at = now()`,
        [seqs, ids, prevs, hashes, String(seq), prev],
      );
      return { acquired: true, sealed: unsealed.length };
    });
  }

  /** Sealed events in chain order, after `afterSeq`. An event missing from `audit_events` leaves a gap. */
  sealedAfter(afterSeq: number, limit: number): Promise<SealedAuditEvent[]> {
    return this.repo
      .createQueryBuilder('e')
      .innerJoinAndMapOne('e.seal', AuditSealEntity, 's', 's.event_id = e.id')
      .where('s.seq > :afterSeq', { afterSeq: String(afterSeq) })
      .orderBy('s.seq', 'ASC')
      .limit(limit)
      .getMany() as Promise<SealedAuditEvent[]>;
  }

  head(): Promise<ChainHead | null> {
    return this.readHead(this.repo.manager);
  }

  /** Events without a link: waiting for the sealer, or inserted behind its back (no trigger fired). */
  async countUnsealed(): Promise<number> {
    const [{ n }] = (await this.ds.query('SELECT count(*)::int AS n FROM audit_events e WHERE NOT EXISTS (SELECT 1 FROM audit_seals s WHERE s.event_id = e.id)')) as { n: number }[];
    return n;
  }

  findById(id: string): Promise<AuditEventEntity | null> {
    return this.withSeals().where('e.id = :id', { id }).getOne();
  }

  /** `scope` null lists every event (admins). Newest first. */
  async listPage(scope: PrincipalRef | null, filters: AuditFilters, limit: number, beforeId: string | null): Promise<Page<AuditEventEntity>> {
    const qb = this.filtered(scope, filters);
    if (beforeId) qb.andWhere('e.id < :beforeId', { beforeId });
    const rows = await qb.orderBy('e.id', 'DESC').limit(limit + 1).getMany();
    return toPage(rows, limit);
  }

  /** For exports: oldest first, keyset-paged by id so a long export never holds a cursor open. */
  exportBatch(scope: PrincipalRef | null, filters: AuditFilters, afterId: string | null, limit: number): Promise<AuditEventEntity[]> {
    const qb = this.filtered(scope, filters);
    if (afterId) qb.andWhere('e.id > :afterId', { afterId });
    return qb.orderBy('e.id', 'ASC').limit(limit).getMany();
  }

  /** Events with their link in the chain (null until sealed). One seal per event, so `limit` pages correctly. */
  private withSeals(): SelectQueryBuilder<AuditEventEntity> {
    return this.repo.createQueryBuilder('e').leftJoinAndMapOne('e.seal', AuditSealEntity, 's', 's.event_id = e.id');
  }

  private filtered(scope: PrincipalRef | null, f: AuditFilters): SelectQueryBuilder<AuditEventEntity> {
    const qb = this.withSeals();
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

