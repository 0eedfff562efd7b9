import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { uuidv7 } from '../../../domain/src/ids.js';
import { AgentEntity, AgentRepository, Page } from '../../../persistence/src/index.js';
import { actors } from '../audit/audit-events.js';
import { AuditService } from '../audit/audit.service.js';
import { generateSecret, hashSecret } from '../clients/secrets.js';
import { ConflictProblem, NotFoundProblem, UnavailableProblem } from '../errors/problem.js';
import { Principal, principalLabel } from '../identity/principal.js';
import { StatusCache, StatusUnavailableError } from '../status/status-cache.js';

export interface RegisterAgentInput {
  name: string;
  jwks?: { keys: Record<string, unknown>[] };
  workloadIdentity?: { issuer: string; subject: string };
}

@Injectable()
export class AgentsService {
  constructor(
    private readonly agents: AgentRepository,
    private readonly status: StatusCache,
    @InjectDataSource() private readonly ds: DataSource,
    private readonly audit: AuditService,
  ) {}

  /** The secret is returned once and only its hash is kept. */
  async register(by: Principal, input: RegisterAgentInput): Promise<{ agent: AgentEntity; clientSecret: string }> {
    if (input.workloadIdentity && (await this.agents.findByWorkloadIdentity(input.workloadIdentity.issuer, input.workloadIdentity.subject))) {
      throw new ConflictProblem('workload_identity_taken', 'another agent already has this workload identity');
    }
    const clientSecret = generateSecret();
    const agent = await this.ds.transaction(async (em) => {
      const created = await this.agents.insert(
        {
          id: uuidv7(),
          name: input.name,
          clientSecretHash: hashSecret(clientSecret),
          jwks: input.jwks ?? null,
          workloadIssuer: input.workloadIdentity?.issuer ?? null,
          workloadSubject: input.workloadIdentity?.subject ?? null,
          createdBy: principalLabel(by),
        },
        em,
      );
      // Never the secret, nor its hash.
      const data = { name: created.name, workload_identity: input.workloadIdentity ?? null, has_jwks: Boolean(input.jwks) };
      await this.audit.record(em, { type: 'agent.registered', by: actors.person(by), outcome: 'registered', agentId: created.id, data });
      return created;
    });
    return { agent, clientSecret };
  }

  list(limit: number, cursor: string | null): Promise<Page<AgentEntity>> {
    return this.agents.listPage(limit, cursor);
  }

  async get(id: string): Promise<AgentEntity> {
    const agent = await this.agents.findById(id);
    if (!agent) throw new NotFoundProblem('agent');
    return agent;
  }

  /** Disabling is published before it is stored, so every token of the agent introspects inactive once this returns. */
  async disable(id: string, by?: Principal): Promise<AgentEntity> {
    const before = await this.get(id);
    try {
      await this.status.publishAgentDisabled(id);
    } catch (err) {
      if (err instanceof StatusUnavailableError) throw new UnavailableProblem('the status store is unreachable; the agent was not disabled, try again');
      throw err;
    }
    return this.ds.transaction(async (em) => {
      const agent = (await this.agents.disable(id, new Date(), em))!;
      if (before.status === 'active') {
        await this.audit.record(em, { type: 'agent.disabled', by: by ? actors.person(by) : actors.system, outcome: 'disabled', agentId: id, data: { name: agent.name } });
      }
      return agent;
    });
  }
}
