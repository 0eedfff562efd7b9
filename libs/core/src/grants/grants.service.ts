import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { APP_CONFIG, AppConfig } from '../../../config/src/index.js';
import { isValidAction } from '../../../domain/src/actions.js';
import { validateConstraints } from '../../../domain/src/constraints.js';
import { uuidv7 } from '../../../domain/src/ids.js';
import { AgentRepository, GrantEntity, GrantFilters, GrantRepository, IssuedTokenEntity, IssuedTokenRepository, Page, ResourceServerRepository, WebhookDeliveryEntity } from '../../../persistence/src/index.js';
import { aboutGrant, actors, AuditActor } from '../audit/audit-events.js';
import { AuditService } from '../audit/audit.service.js';
import { FieldError, ForbiddenProblem, NotFoundProblem, UnavailableProblem, ValidationProblem } from '../errors/problem.js';
import { Principal, principalLabel } from '../identity/principal.js';
import { StatusCache, StatusUnavailableError } from '../status/status-cache.js';
import { WebhooksService } from '../webhooks/webhooks.service.js';
import { HeldGrantsCache } from './held-grants-cache.js';

export interface CreateGrantInput {
  agentId: string;
  resource: string;
  action: string;
  constraints?: Record<string, unknown>;
  rateLimit?: { max: number; window_seconds: number };
  maxUses?: number;
  expiresAt?: Date;
  maxDelegationDepth?: number;
  purpose?: string;
  autonomous?: boolean;
}

@Injectable()
export class GrantsService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly grants: GrantRepository,
    private readonly agents: AgentRepository,
    private readonly resourceServers: ResourceServerRepository,
    private readonly tokens: IssuedTokenRepository,
    private readonly status: StatusCache,
    @InjectDataSource() private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly webhooks: WebhooksService,
    private readonly heldGrants: HeldGrantsCache,
  ) {}

  async create(principal: Principal, input: CreateGrantInput): Promise<GrantEntity> {
    if (input.autonomous && !principal.isAdmin) throw new ForbiddenProblem('only an admin may grant a capability to an agent acting for itself', 'autonomous_requires_admin');
    const errors: FieldError[] = [];
    const [agent, rs] = await Promise.all([this.agents.findById(input.agentId), this.resourceServers.findByAudience(input.resource)]);
    if (!agent) errors.push({ field: 'agent_id', message: 'unknown agent' });
    else if (agent.status !== 'active') errors.push({ field: 'agent_id', message: 'agent is disabled' });
    if (!rs) errors.push({ field: 'resource', message: 'no registered resource server has this audience' });
    if (!isValidAction(input.action)) errors.push({ field: 'action', message: 'must look like "service:verb" (segments of a-z 0-9 _ . -, optional trailing ":*")' });
    if (input.expiresAt && input.expiresAt.getTime() <= Date.now()) errors.push({ field: 'expires_at', message: 'must be in the future' });
    const constraints = validateConstraints(input.constraints ?? {});
    if (!constraints.ok) errors.push(...constraints.errors.map((e) => ({ field: e.path, message: e.message })));
    if (errors.length) throw new ValidationProblem(errors);
    // Autonomous grants: the agent is its own principal, named by this server as issuer.
    const owner = input.autonomous ? { iss: this.config.issuer, sub: agent!.id } : principal;
    const values: Parameters<GrantRepository['insert']>[0] = {
      id: uuidv7(),
      principalIss: owner.iss,
      principalSub: owner.sub,
      autonomous: Boolean(input.autonomous),
      agentId: agent!.id,
      resourceServerId: rs!.id,
      resource: rs!.audience,
      action: input.action,
      constraints: input.constraints ?? {},
      rateLimit: input.rateLimit ?? null,
      maxUses: input.maxUses ?? null,
      expiresAt: input.expiresAt ?? null,
      maxDelegationDepth: input.maxDelegationDepth ?? 0,
      parentId: null,
      ancestorIds: [],
      purpose: input.purpose ?? null,
      createdBy: principalLabel(principal),
    };
    // The grant and its `grant.created` event commit together, or neither does.
    const created = await this.ds.transaction(async (em) => {
      const grant = await this.grants.insert(values, em);
      await this.audit.record(em, {
        type: 'grant.created',
        by: actors.person(principal),
        outcome: 'created',
        ...aboutGrant(grant),
        data: { grant_id: grant.id, autonomous: grant.autonomous, constraints: grant.constraints, rate_limit: grant.rateLimit, max_uses: grant.maxUses, expires_at: grant.expiresAt?.toISOString() ?? null, max_delegation_depth: grant.maxDelegationDepth },
      });
      return grant;
    });
    await this.heldGrants.changed([created.agentId]);
    return created;
  }

  list(principal: Principal, filters: GrantFilters, limit: number, cursor: string | null): Promise<Page<GrantEntity>> {
    return this.grants.listPage(this.scopeOf(principal), filters, limit, cursor);
  }

  async get(principal: Principal, id: string): Promise<GrantEntity> {
    const grant = await this.grants.findOwnedBy(id, this.scopeOf(principal));
    if (!grant) throw new NotFoundProblem('grant');
    return grant;
  }

  async listTokens(principal: Principal, id: string, limit: number, cursor: string | null): Promise<Page<IssuedTokenEntity & { id: string }>> {
    await this.get(principal, id);
    return this.tokens.listPageByGrant(id, limit, cursor);
  }

  /** Revokes the grant and its subtree; idempotent. */
  async revoke(principal: Principal, id: string, reason: string | null): Promise<{ grant: GrantEntity; revokedIds: string[] }> {
    const scope = this.scopeOf(principal);
    // Ownership is checked on the locked row, in the revoke's transaction: one round trip fewer.
    const owned = (g: GrantEntity) => !scope || (g.principalIss === scope.iss && g.principalSub === scope.sub);
    return this.revokeGrant(id, owned, actors.person(principal), reason);
  }

  /**
   * An agent revokes what it delegated: a sub-grant it created, or any grant below one, with its
   * subtree (docs/delegation.md). Anything else answers 404, like a missing grant.
   */
  async revokeAsAgent(agentId: string, id: string, reason: string | null): Promise<{ grant: GrantEntity; revokedIds: string[] }> {
    const target = await this.grants.findById(id);
    const path = target ? await this.grants.findByIds([target.id, ...target.ancestorIds]) : [];
    if (!target || !path.some((g) => g.createdBy === agentId)) throw new NotFoundProblem('grant');
    // A grant's place in its tree never changes, so the path checked above still holds under the lock.
    return this.revokeGrant(target.id, () => true, actors.agent(agentId), reason);
  }

  private async revokeGrant(id: string, mayRevoke: (g: GrantEntity) => boolean, by: AuditActor, reason: string | null): Promise<{ grant: GrantEntity; revokedIds: string[] }> {
    let result;
    let deliveries: WebhookDeliveryEntity[] = [];
    try {
      result = await this.grants.revokeSubtree(id, { by: by.actor, reason, at: new Date() }, mayRevoke, async (ids, em, root) => {
        await this.status.publishGrantsRevoked(ids);
        deliveries = await this.recordRevocation(em, by, root, ids, reason);
      });
    } catch (err) {
      if (err instanceof StatusUnavailableError) throw new UnavailableProblem('the status store is unreachable; nothing was revoked, try again');
      throw err;
    }
    if (!result) throw new NotFoundProblem('grant');
    await this.webhooks.enqueue(deliveries); // after commit; never throws (the worker redrives what is not enqueued)
    return { grant: result.root, revokedIds: result.revokedIds };
  }

  /** Inside the revoke's transaction: the `grant.revoked` event and the revocation-push outbox rows. */
  private async recordRevocation(em: EntityManager, by: AuditActor, grant: GrantEntity, ids: string[], reason: string | null): Promise<WebhookDeliveryEntity[]> {
    const revoked = [...ids].sort((a, b) => (a === grant.id ? -1 : b === grant.id ? 1 : a < b ? -1 : 1));
    const cascade = revoked.filter((g) => g !== grant.id).length;
    const eventId = await this.audit.record(em, {
      type: 'grant.revoked',
      by,
      outcome: 'revoked',
      ...aboutGrant(grant),
      grantIds: [...grant.ancestorIds, ...revoked],
      reason,
      data: { grant_id: grant.id, revoked_ids: revoked, cascade_count: cascade },
    });
    return this.webhooks.prepareRevocation(em, eventId, revoked, reason);
  }

  /** Admins see every grant; everyone else only grants where they are the principal. */
  private scopeOf(principal: Principal) {
    return principal.isAdmin ? null : { iss: principal.iss, sub: principal.sub };
  }
}
