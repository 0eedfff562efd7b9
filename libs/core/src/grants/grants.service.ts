import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '../../../config/src/index.js';
import { isValidAction } from '../../../domain/src/actions.js';
import { validateConstraints } from '../../../domain/src/constraints.js';
import { uuidv7 } from '../../../domain/src/ids.js';
import { AgentRepository, GrantEntity, GrantFilters, GrantRepository, IssuedTokenEntity, IssuedTokenRepository, Page, ResourceServerRepository } from '../../../persistence/src/index.js';
import { FieldError, ForbiddenProblem, NotFoundProblem, UnavailableProblem, ValidationProblem } from '../errors/problem.js';
import { Principal, principalLabel } from '../identity/principal.js';
import { StatusCache, StatusUnavailableError } from '../status/status-cache.js';

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
    return this.grants.insert({
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
    });
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
    await this.get(principal, id);
    let revokedIds: string[];
    try {
      revokedIds = await this.grants.revokeSubtree(id, { by: principalLabel(principal), reason, at: new Date() }, (ids) => this.status.publishGrantsRevoked(ids));
    } catch (err) {
      if (err instanceof StatusUnavailableError) throw new UnavailableProblem('the status store is unreachable; nothing was revoked, try again');
      throw err;
    }
    return { grant: (await this.grants.findById(id))!, revokedIds };
  }

  /** Admins see every grant; everyone else only grants where they are the principal. */
  private scopeOf(principal: Principal) {
    return principal.isAdmin ? null : { iss: principal.iss, sub: principal.sub };
  }
}
