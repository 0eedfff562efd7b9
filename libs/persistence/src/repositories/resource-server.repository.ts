import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, LessThan, Repository } from 'typeorm';
import { ResourceServerEntity } from '../entities/resource-server.entity.js';
import { Page, toPage } from '../page.js';

@Injectable()
export class ResourceServerRepository {
  private readonly repo: Repository<ResourceServerEntity>;
  constructor(@InjectDataSource() ds: DataSource) {
    this.repo = ds.getRepository(ResourceServerEntity);
  }

  /** Null when the audience is already registered. */
  async insertUnlessAudienceTaken(rs: Omit<ResourceServerEntity, 'createdAt'>): Promise<ResourceServerEntity | null> {
    const result = await this.repo.createQueryBuilder().insert().values(rs as never).orIgnore().returning('*').execute();
    return result.raw.length ? this.repo.findOneBy({ id: rs.id }) : null;
  }

  findById(id: string): Promise<ResourceServerEntity | null> {
    return this.repo.findOneBy({ id });
  }

  findByAudience(audience: string): Promise<ResourceServerEntity | null> {
    return this.repo.findOneBy({ audience });
  }

  /** Resolves RFC 8693 `resource` / `audience` values: each may name the audience URI or the server's id. */
  findByAudiencesOrIds(values: string[]): Promise<ResourceServerEntity[]> {
    const ids = values.filter((v) => /^[0-9a-f-]{36}$/i.test(v));
    return this.repo
      .createQueryBuilder('rs')
      .where('rs.audience = ANY(:values)', { values })
      .orWhere('rs.id = ANY(:ids::uuid[])', { ids })
      .getMany();
  }

  async listPage(limit: number, afterId: string | null): Promise<Page<ResourceServerEntity>> {
    const rows = await this.repo.find({ where: afterId ? { id: LessThan(afterId) } : {}, order: { id: 'DESC' }, take: limit + 1 });
    return toPage(rows, limit);
  }
}
