import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager, LessThan, Repository } from 'typeorm';
import { AgentEntity } from '../entities/agent.entity.js';
import { Page, toPage } from '../page.js';

@Injectable()
export class AgentRepository {
  private readonly repo: Repository<AgentEntity>;
  constructor(@InjectDataSource() ds: DataSource) {
    this.repo = ds.getRepository(AgentEntity);
  }

  insert(agent: Omit<AgentEntity, 'createdAt' | 'disabledAt' | 'status'>, em?: EntityManager): Promise<AgentEntity> {
    const repo = em ? em.getRepository(AgentEntity) : this.repo;
    return repo.save(repo.create({ ...agent, status: 'active', disabledAt: null }));
  }

  findById(id: string): Promise<AgentEntity | null> {
    return this.repo.findOneBy({ id });
  }

  findByIds(ids: string[]): Promise<AgentEntity[]> {
    return ids.length ? this.repo.createQueryBuilder('a').where('a.id = ANY(:ids)', { ids }).getMany() : Promise.resolve([]);
  }

  findByWorkloadIdentity(issuer: string, subject: string): Promise<AgentEntity | null> {
    return this.repo.findOneBy({ workloadIssuer: issuer, workloadSubject: subject });
  }

  async listPage(limit: number, afterId: string | null): Promise<Page<AgentEntity>> {
    const rows = await this.repo.find({ where: afterId ? { id: LessThan(afterId) } : {}, order: { id: 'DESC' }, take: limit + 1 });
    return toPage(rows, limit);
  }

  /** Returns the agent after the change, or null if it does not exist. Idempotent. */
  async disable(id: string, at: Date, em?: EntityManager): Promise<AgentEntity | null> {
    const repo = em ? em.getRepository(AgentEntity) : this.repo;
    await repo.createQueryBuilder().update().set({ status: 'disabled', disabledAt: at }).where('id = :id AND status = :s', { id, s: 'active' }).execute();
    return repo.findOneBy({ id });
  }
}
