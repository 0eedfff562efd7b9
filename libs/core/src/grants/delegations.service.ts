import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { APP_CONFIG, AppConfig } from '../../../config/src/index.js';
import { attenuate, AttenuationRule, RateLimit } from '../../../domain/src/attenuation.js';
import { Constraints, validateConstraints } from '../../../domain/src/constraints.js';
import { uuidv7 } from '../../../domain/src/ids.js';
import { AgentEntity, AgentRepository, GrantEntity, GrantRepository, IssuedTokenRepository } from '../../../persistence/src/index.js';
import { actors, grantDelegatedEvent } from '../audit/audit-events.js';
import { AuditService } from '../audit/audit.service.js';
import { NotFoundProblem, Problem, UnavailableProblem } from '../errors/problem.js';
import { RateLimiter } from '../guardrails/rate-limiter.js';
import { Principal } from '../identity/principal.js';
import { GrantsService } from './grants.service.js';
import { HeldGrantsCache } from './held-grants-cache.js';

/** What an agent asks for when it hands part of its grant on. Omitted fields inherit the parent's. */
export interface DelegationInput {
  agentId: string;
  action?: string;
  constraints?: Record<string, unknown>;
  /** null asks for no limit: refused (rate_limit_widened) when the parent has one. */
  rateLimit?: { max: number; window_seconds: number } | null;
  maxUses?: number;
  expiresAt?: Date;
  maxDelegationDepth?: number;
  purpose?: string;
}

/** The attenuation rules (libs/domain/src/attenuation.ts), plus the parent (or a grant above it) no longer being active. */
export type DelegationRule = AttenuationRule | 'parent_not_active';

export interface DelegationError {
  /** The request field at fault (snake_case, as sent), or `grant` for the parent grant itself. */
  field: string;
  rule: DelegationRule;
  message: string;
}

/** 422 `attenuation_violation`: the sub-grant would widen its parent, or cannot be made. Nothing is adjusted silently. */
export class AttenuationProblem extends Problem {
  constructor(errors: DelegationError[]) {
    super(422, 'attenuation_violation', 'Unprocessable Content', errors.map((e) => `${e.field}: ${e.message} (${e.rule})`).join('; '), { errors });
  }
}

type GrantStatus = GrantEntity['status'];

export interface DelegationTreeNode {
  grant: GrantEntity;
  /** `expired` also for a grant whose expiry has passed before the sweeper recorded it. */
  status: GrantStatus;
  /**
   * Live tokens resting on this grant: issued on it or, further down, through it (what revoking it would
   * end). Unrevoked, unexpired, and with no dead grant below this one in their chain; 0 unless active.
   */
  liveTokens: number;
  children: DelegationTreeNode[];
}

const API_FIELDS: Record<string, string> = {
  agentId: 'agent_id',
  expiresAt: 'expires_at',
  maxDelegationDepth: 'max_delegation_depth',
  rateLimit: 'rate_limit',
  maxUses: 'max_uses',
};

const toDomainRate = (r: { max: number; window_seconds: number } | null): RateLimit | null => r && { max: r.max, windowSeconds: r.window_seconds };
const fromDomainRate = (r: RateLimit | null) => r && { max: r.max, window_seconds: r.windowSeconds };

/** Status as a reader should see it at `now`: an active grant past its expiry is expired. */
export function effectiveStatus(g: Pick<GrantEntity, 'status' | 'expiresAt'>, now: Date): GrantStatus {
  return g.status === 'active' && g.expiresAt !== null && g.expiresAt.getTime() <= now.getTime() ? 'expired' : g.status;
}

/**
 * Sub-delegation (docs/delegation.md): an agent hands a narrower part of a grant it holds to another
 * agent. The sub-grant keeps the principal and resource, records who created it, and extends the
 * materialized path (`ancestor_ids`) that cascades, trees and chained exchanges rely on.
 */
@Injectable()
export class DelegationsService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly grants: GrantRepository,
    private readonly agents: AgentRepository,
    private readonly tokens: IssuedTokenRepository,
    private readonly grantsService: GrantsService,
    @InjectDataSource() private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly limiter: RateLimiter,
    private readonly heldGrants: HeldGrantsCache,
  ) {}

  async delegate(agent: AgentEntity, parentId: string, input: DelegationInput): Promise<GrantEntity> {
    // Only the grant's own agent may delegate it; to anyone else it does not exist (404, like a missing one).
    const held = await this.grants.findById(parentId);
    if (!held || held.agentId !== agent.id) throw new NotFoundProblem('grant');

    const errors: DelegationError[] = [];
    const constraints = validateConstraints(input.constraints ?? {});
    if (!constraints.ok) errors.push(...constraints.errors.map((e) => ({ field: e.path, rule: 'invalid_value' as const, message: e.message })));
    const receiver = await this.agents.findById(input.agentId);
    if (!receiver) errors.push({ field: 'agent_id', rule: 'invalid_value', message: 'unknown agent' });
    else if (receiver.status !== 'active') errors.push({ field: 'agent_id', rule: 'invalid_value', message: 'agent is disabled' });

    const delegated = await this.ds.transaction(async (em) => {
      const path = await this.grants.lockPathForDelegation(parentId, em);
      if (!path) throw new NotFoundProblem('grant');
      const { parent, ancestors } = path;
      const now = new Date();
      // Every grant up the chain must still be live, not only the parent (belt and braces: a cascade ends them together).
      const dead = [...ancestors, parent].find((g) => effectiveStatus(g, now) !== 'active');
      if (dead) {
        const which = dead === parent ? 'the grant' : `grant ${dead.id} up its delegation chain`;
        throw new AttenuationProblem([{ field: 'grant', rule: 'parent_not_active', message: `${which} is ${effectiveStatus(dead, now)}` }]);
      }

      const result = attenuate(
        {
          action: parent.action,
          resource: parent.resource,
          constraints: parent.constraints as Constraints,
          rateLimit: toDomainRate(parent.rateLimit),
          maxUses: parent.maxUses,
          // A child's budget is carved out of what the parent has left, not out of its original budget.
          usesConsumed: parent.maxUses === null ? 0 : await this.usesConsumed(parent.id),
          expiresAt: parent.expiresAt,
          maxDelegationDepth: parent.maxDelegationDepth,
          depth: parent.ancestorIds.length,
          chainAgentIds: [...ancestors.map((g) => g.agentId), parent.agentId],
          childCount: await this.grants.countChildren(parent.id, now, em),
        },
        {
          agentId: input.agentId,
          action: input.action,
          constraints: constraints.ok ? constraints.value : undefined,
          rateLimit: input.rateLimit === undefined ? undefined : toDomainRate(input.rateLimit),
          maxUses: input.maxUses,
          expiresAt: input.expiresAt,
          maxDelegationDepth: input.maxDelegationDepth,
        },
        { maxChainDepth: this.config.maxChainDepth, maxChildrenPerGrant: this.config.maxChildrenPerGrant, now },
      );
      if (!result.ok) errors.push(...result.violations.map((v) => ({ field: API_FIELDS[v.field] ?? v.field, rule: v.rule, message: v.message })));
      if (errors.length || !result.ok) throw new AttenuationProblem(errors);

      const c = result.child;
      const grant = await this.grants.insertChild(
        parent,
        {
          id: uuidv7(),
          agentId: receiver!.id,
          action: c.action,
          // Only the child's own constraints are stored: the chain's are ANDed at every exchange and use.
          constraints: c.constraints as Record<string, unknown>,
          rateLimit: fromDomainRate(c.rateLimit),
          maxUses: c.maxUses,
          expiresAt: c.expiresAt,
          maxDelegationDepth: c.maxDelegationDepth,
          purpose: input.purpose ?? parent.purpose,
          createdBy: agent.id,
        },
        em,
      );
      await this.audit.record(
        em,
        grantDelegatedEvent(grant, actors.agent(agent.id), {
          action: grant.action,
          rate_limit: grant.rateLimit,
          max_uses: grant.maxUses,
          max_delegation_depth: grant.maxDelegationDepth,
        }),
      );
      return grant;
    });
    await this.heldGrants.changed([delegated.agentId]);
    return delegated;
  }

  private async usesConsumed(grantId: string): Promise<number> {
    try {
      return await this.limiter.usesConsumed(grantId);
    } catch {
      throw new UnavailableProblem('the usage store is unreachable; nothing was delegated, try again');
    }
  }

  /** The delegation tree under a grant the caller may see (the principal, or an admin), from one indexed subtree query. */
  async tree(principal: Principal, id: string): Promise<DelegationTreeNode> {
    await this.grantsService.get(principal, id);
    const now = new Date();
    const rows = await this.grants.findSubtree(id);
    // Unrevoked, unexpired token records per grant: a record still counts while a grant of its chain is dead.
    const records = await this.tokens.countLiveByGrant(
      rows.map((g) => g.id),
      now,
    );
    const nodes = new Map<string, DelegationTreeNode>();
    // Shallowest first, so every parent is placed before its children.
    for (const g of rows) {
      const node: DelegationTreeNode = { grant: g, status: effectiveStatus(g, now), liveTokens: 0, children: [] };
      nodes.set(g.id, node);
      if (g.id !== id && g.parentId) nodes.get(g.parentId)?.children.push(node);
    }
    // Dead grants form whole subtrees (a cascade ends every descendant; a child never outlives its parent),
    // so the dead tokens counted on a live grant are exactly those counted on the topmost dead grants below it.
    const deadBelow = new Map<string, number>();
    for (let i = rows.length - 1; i >= 0; i--) {
      const node = nodes.get(rows[i].id)!;
      let dead = 0;
      for (const c of node.children) dead += c.status === 'active' ? deadBelow.get(c.grant.id)! : (records.get(c.grant.id) ?? 0);
      deadBelow.set(node.grant.id, dead);
      node.liveTokens = node.status === 'active' ? (records.get(node.grant.id) ?? 0) - dead : 0;
    }
    return nodes.get(id)!;
  }
}
