import { Injectable } from '@nestjs/common';
import { Constraints, requiresApproval } from '../../../domain/src/constraints.js';
import { AccessDeniedError, InvalidRequestError, RateLimitExceededError, TemporarilyUnavailableError } from '../errors/oauth-errors.js';
import { grantIsLive, StatusCache } from '../status/status-cache.js';
import { ApprovalsService, GuardedCapability } from './approvals.service.js';
import { toLimits, LimiterUnavailableError, RateLimiter, Use } from './rate-limiter.js';

export const MAX_PURPOSE_LENGTH = 1000;

export interface IssuanceContext {
  agentId: string;
  /** From the requesting agent inwards; empty for an autonomous agent. */
  actorChain: string[];
  resourceServer: { id: string; audience: string };
  /** The `purpose` extension parameter of the exchange, shown to the person who approves. */
  purpose: string | undefined;
}

/**
 * The guardrails of the token endpoint that come after constraint filtering:
 * 1. approval: if any capability's chain requires it, no token exists before a person approved;
 * 2. rate limits and budgets: one use per capability, taken from every grant of its chain, all or
 *    nothing. If any capability is over a limit the whole request is refused (429, or access_denied
 *    for a spent lifetime budget, which no waiting fixes): a token quietly missing a capability would
 *    surprise the agent more than an honest refusal.
 * With approval, limits are taken only when the approved token is issued, inside the approval's claim,
 * so a rate-limited retry leaves the approval approved for the next try.
 */
@Injectable()
export class IssuanceGuard {
  constructor(
    private readonly limiter: RateLimiter,
    private readonly approvals: ApprovalsService,
    private readonly status: StatusCache,
  ) {}

  async issue<T extends { access_token: string }>(ctx: IssuanceContext, capabilities: GuardedCapability[], issue: () => Promise<T>): Promise<T> {
    if (ctx.purpose !== undefined && ctx.purpose.length > MAX_PURPOSE_LENGTH) throw new InvalidRequestError(`purpose must be at most ${MAX_PURPOSE_LENGTH} characters`);
    const gated = capabilities.filter((c) => requiresApproval(c.chain.map((g) => g.constraints as Constraints)));
    if (!gated.length) return this.limitThenIssue(capabilities, issue);
    return this.approvals.throughApproval(
      { agentId: ctx.agentId, actorChain: ctx.actorChain, resourceServer: ctx.resourceServer, purpose: ctx.purpose ?? null, capabilities, gated },
      async () => {
        await this.recheck(capabilities);
        return this.limitThenIssue(capabilities, issue);
      },
    );
  }

  private async limitThenIssue<T>(capabilities: GuardedCapability[], issue: () => Promise<T>): Promise<T> {
    const uses: Use[] = capabilities.flatMap((c) => c.chain.map((g) => ({ grant: toLimits(g), cost: 1 })));
    let outcome;
    try {
      outcome = await this.limiter.consume(uses);
    } catch (err) {
      if (err instanceof LimiterUnavailableError) throw new TemporarilyUnavailableError('the rate-limit store is unreachable; no token was issued');
      throw err;
    }
    if (outcome.kind === 'rate_limited') {
      throw new RateLimitExceededError(`rate_limited: grant ${outcome.grantId} has no uses left in its current window; retry after ${outcome.retryAfterSeconds}s`, outcome.retryAfterSeconds);
    }
    if (outcome.kind === 'budget_exhausted') throw new AccessDeniedError(`budget_exhausted: grant ${outcome.grantId} has used all of its max_uses`);
    return issue();
  }

  /** An approval is checked again at issuance: a grant revoked after it was approved issues nothing. */
  private async recheck(capabilities: GuardedCapability[]): Promise<void> {
    const ids = [...new Set(capabilities.flatMap((c) => c.chain.map((g) => g.id)))];
    const snapshot = await this.status.lookup(ids, [], null);
    const now = Date.now();
    const dead = ids.find((id) => !grantIsLive(snapshot.grants.get(id), now));
    if (dead) throw new AccessDeniedError(`capability_revoked: grant ${dead} was revoked or expired after the approval`);
  }
}
