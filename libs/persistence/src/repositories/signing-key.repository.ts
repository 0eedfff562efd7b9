import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { SigningKeyEntity } from '../entities/signing-key.entity.js';

const KEY_LOCK = 7_301_946_222;

@Injectable()
export class SigningKeyRepository {
  private readonly repo: Repository<SigningKeyEntity>;
  constructor(@InjectDataSource() private readonly ds: DataSource) {
    this.repo = ds.getRepository(SigningKeyEntity);
  }

  /** The active key plus retired keys whose tokens may still be alive. */
  findPublishable(now: Date): Promise<SigningKeyEntity[]> {
    return this.repo
      .createQueryBuilder('k')
      .where("k.status = 'active' OR k.publish_until > :now", { now })
      .orderBy('k.created_at', 'DESC')
      .getMany();
  }

  /**
   * Creates the first key when none is active, under a lock so processes starting together agree on one.
   * `make` runs only when a key is needed.
   */
  async ensureActive(make: () => Promise<Omit<SigningKeyEntity, 'createdAt'>>): Promise<void> {
    await this.ds.transaction(async (em) => {
      await em.query('SELECT pg_advisory_xact_lock($1)', [KEY_LOCK]);
      const active = await em.getRepository(SigningKeyEntity).findOneBy({ status: 'active' });
      if (!active) await em.getRepository(SigningKeyEntity).save(em.getRepository(SigningKeyEntity).create(await make()));
    });
  }

  /** Retires the active key (published until `publishUntil`) and installs `next` in one transaction. */
  async rotate(next: Omit<SigningKeyEntity, 'createdAt'>, now: Date, publishUntil: Date): Promise<string | null> {
    return this.ds.transaction(async (em) => {
      await em.query('SELECT pg_advisory_xact_lock($1)', [KEY_LOCK]);
      const previous = await em.getRepository(SigningKeyEntity).findOneBy({ status: 'active' });
      if (previous) await em.getRepository(SigningKeyEntity).update({ kid: previous.kid }, { status: 'retired', retiredAt: now, publishUntil });
      await em.getRepository(SigningKeyEntity).save(em.getRepository(SigningKeyEntity).create(next));
      return previous?.kid ?? null;
    });
  }
}
