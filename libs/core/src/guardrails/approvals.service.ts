import { Inject, Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { APP_CONFIG, AppConfig } from '../../../config/src/index.js';
import { uuidv7 } from '../../../domain/src/ids.js';
import { AgentRepository, ApprovalEntity, ApprovalRepository, ApprovalStatus, GrantEntity, Page, WebhookDeliveryEntity } from '../../../persistence/src/index.js';
import { actors } from '../audit/audit-events.js';
import { AuditService } from '../audit/audit.service.js';
import { AccessDeniedError, AuthorizationPendingError, ExpiredTokenError, TemporarilyUnavailableError } from '../errors/oauth-errors.js';
import { ConflictProblem, ForbiddenProblem, NotFoundProblem } from '../errors/problem.js';
import { Principal, principalLabel } from '../identity/principal.js';
import { NotificationsService } from '../webhooks/notifications.service.js';

/** How long an agent should wait between two polls of a pending approval (RFC 8628 §3.5 style). */
export const APPROVAL_POLL_INTERVAL_SECONDS = 5;

/** A capability the token exchange is about to issue: an action, its grant and the chain root first. */
export interface GuardedCapability {
  action: string;
  grant: GrantEntity;
  chain: GrantEntity[];
}

export interface ApprovalRequest {
  agentId: string;
  /** From the requesting agent inwards; empty for an autonomous agent. */
  actorChain: string[];
  resourceServer: { id: string; audience: string };
  purpose: string | null;
  /** Everything the token will carry. */
  capabilities: GuardedCapability[];
  /** The capabilities whose chain requires approval (non-empty). */
  gated: GuardedCapability[];
}

/** Pending or approved past its expiry reads as expired, before anything marks it. */
export function effectiveApprovalStatus(a: Pick<ApprovalEntity, 'status' | 'expiresAt'>, now: Date): ApprovalStatus {
  return (a.status === 'pending' || a.status === 'approved') && a.expiresAt.getTime() <= now.getTime() ? 'expired' : a.status;
}

/**
 * Human approval: a checkpoint before a token for a high-impact capability exists.
 *
 * An exchange that needs approval finds (or creates) the approval for its request key and answers
 * `authorization_pending` until the principal decides. Once approved, the next retry claims the approval
 * (exactly once: a conditional UPDATE, with SKIP LOCKED so concurrent retries never queue on the row)
 * and the token is issued inside that claim; if issuance fails the claim rolls back. After consumption a
 * further retry asks again. A denial answers `access_denied` to retries until the approval would have
 * expired; an unused approval answers `expired_token` once, then the next retry asks again.
 */
@Injectable()
export class ApprovalsService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly approvals: ApprovalRepository,
    private readonly agents: AgentRepository,
    private readonly audit: AuditService,
    private readonly notifications: NotificationsService,
  ) {}

  /** Token endpoint: issues through an approved approval, or throws pending / denied / expired. */
  async throughApproval<T extends { access_token: string }>(req: ApprovalRequest, issue: () => Promise<T>): Promise<T> {
    const root = req.gated[0].chain[0];
    const principal = { iss: root.principalIss, sub: root.principalSub };
    const matchKey = requestKey(req, principal);
    // A few rounds at most: each one only repeats after losing a race that changed the approval's state.
    for (let round = 0; round < 3; round++) {
      const now = new Date();
      const open = await this.approvals.findOpen(matchKey);
      if (open) {
        if (open.expiresAt.getTime() <= now.getTime()) {
          await this.approvals.expire(open.id, now);
          throw new ExpiredTokenError(`approval ${open.id} expired before it was used; repeat the request to ask again`);
        }
        if (open.status === 'pending') throw pending(open, 'waiting for the principal to approve');
        const claimed = await this.approvals.consume(open.id, now, async (em, row) => {
          const res = await issue();
          const jti = jtiOf(res.access_token);
          await this.approvals.setTokenJti(em, row.id, jti);
          await this.audit.record(em, {
            type: 'approval.consumed',
            by: actors.agent(row.agentId),
            outcome: 'consumed',
            ...about(row),
            data: { approval_id: row.id, jti },
          });
          return res;
        });
        if (claimed === 'busy') throw pending(open, 'the approved token is being issued to a concurrent request');
        if (claimed) return claimed.result;
        continue; // consumed (or expired) between the read and the claim: look again
      }
      const denial = await this.approvals.findStandingDenial(matchKey, now);
      if (denial) throw new AccessDeniedError(`the principal denied this request (approval ${denial.id})`);
      let deliveries: WebhookDeliveryEntity[] = [];
      const created = await this.approvals.insertPending(this.newApproval(req, principal, matchKey, now), async (em, row) => {
        await this.audit.record(em, { type: 'approval.requested', by: actors.agent(row.agentId), outcome: 'pending', ...about(row), data: { approval_id: row.id, scope: row.scope, expires_at: row.expiresAt.toISOString() } });
        deliveries = await this.notifications.approvalRequested(notice(row), em);
      });
      if (created) {
        void this.notifications.dispatch(deliveries);
        throw pending(created, 'the principal has been asked to approve this request');
      }
      // A concurrent request created it first: answer with that one.
    }
    throw new TemporarilyUnavailableError('the approval changed state during this request; repeat it');
  }

  list(principal: Principal, status: ApprovalStatus | undefined, limit: number, cursor: string | null): Promise<Page<ApprovalEntity>> {
    return this.approvals.listPage(principal.isAdmin ? null : { iss: principal.iss, sub: principal.sub }, status, new Date(), limit, cursor);
  }

  async get(principal: Principal, id: string): Promise<ApprovalEntity> {
    const row = await this.approvals.findById(id);
    if (!row || !(mayDecide(principal, row) || principal.isAdmin)) throw new NotFoundProblem('approval');
    return row;
  }

  /**
   * Only the grant's principal decides (an admin for an autonomous agent's grant), never an agent.
   * Repeating the decision already taken is idempotent; a conflicting one is 409.
   */
  async decide(principal: Principal, id: string, decision: 'approve' | 'deny', reason: string | null): Promise<ApprovalEntity> {
    // A registered agent's workload identity is not a person, whatever issuer vouches for it.
    if (await this.agents.findByWorkloadIdentity(principal.iss, principal.sub)) {
      throw new ForbiddenProblem('agents cannot decide approvals; the principal must', 'agent_cannot_decide');
    }
    const row = await this.approvals.findById(id);
    if (!row || !mayDecide(principal, row)) throw new NotFoundProblem('approval');
    const target = decision === 'approve' ? 'approved' : 'denied';
    const now = new Date();
    const decided = await this.approvals.decide(id, target, principalLabel(principal), target === 'denied' ? reason : null, now, (em, r) =>
      this.audit.record(em, { type: `approval.${target}`, by: actors.person(principal), outcome: target, reason: r.decisionReason, ...about(r), data: { approval_id: r.id } }).then(() => undefined),
    );
    if (decided) return decided;
    const current = (await this.approvals.findById(id))!;
    // Denied rows stay denied; an approved row is approved, consumed, or (uncollected) expired with decided_at set.
    const previous = current.status === 'denied' ? 'denied' : current.decidedAt ? 'approved' : null;
    if (previous === target) return current;
    if (previous === null) throw new ConflictProblem('approval_expired', `approval ${id} expired before it was decided`);
    throw new ConflictProblem('approval_already_decided', `approval ${id} was already ${previous}`);
  }

  private newApproval(req: ApprovalRequest, principal: { iss: string; sub: string }, matchKey: string, now: Date) {
    const gatedGrantIds = [...new Set(req.gated.flatMap((c) => c.chain.map((g) => g.id)))];
    return {
      id: uuidv7(now.getTime()),
      matchKey,
      principalIss: principal.iss,
      principalSub: principal.sub,
      autonomous: req.gated[0].chain[0].autonomous,
      agentId: req.agentId,
      actorChain: req.actorChain,
      resourceServerId: req.resourceServer.id,
      resource: req.resourceServer.audience,
      actions: [...new Set(req.gated.map((c) => c.action))].sort(),
      grantIds: gatedGrantIds,
      scope: [...new Set(req.capabilities.map((c) => c.action))].join(' '),
      purpose: req.purpose,
      createdAt: now,
      expiresAt: new Date(now.getTime() + this.config.approvalTtlSeconds * 1000),
    };
  }
}

function mayDecide(p: Principal, a: ApprovalEntity): boolean {
  return (a.principalIss === p.iss && a.principalSub === p.sub) || (a.autonomous && p.isAdmin);
}

/**
 * What makes a retry "the same request": agent and actor chain, principal, resource server, and the
 * sorted (action, grant) pairs that need approval. Actions that need no approval do not matter.
 */
function requestKey(req: ApprovalRequest, principal: { iss: string; sub: string }): string {
  const pairs = [...new Set(req.gated.map((c) => `${c.action} ${c.grant.id}`))].sort();
  return createHash('sha256').update(JSON.stringify([req.agentId, req.actorChain, principal.iss, principal.sub, req.resourceServer.id, pairs])).digest('base64url');
}

function pending(a: ApprovalEntity, why: string): AuthorizationPendingError {
  return new AuthorizationPendingError(`${why}; repeat this request every ${APPROVAL_POLL_INTERVAL_SECONDS}s until approval ${a.id} is decided`, a.id, APPROVAL_POLL_INTERVAL_SECONDS);
}

function about(a: ApprovalEntity) {
  return {
    principal: { iss: a.principalIss, sub: a.principalSub },
    agentId: a.agentId,
    actorChain: a.actorChain,
    grantIds: a.grantIds,
    resource: a.resource,
    actions: a.actions,
    purpose: a.purpose,
  };
}

/** What the approval webhook carries: enough for a person to decide, no secrets. */
function notice(a: ApprovalEntity) {
  return {
    id: a.id,
    principal: { iss: a.principalIss, sub: a.principalSub },
    agent_id: a.agentId,
    actor_chain: a.actorChain,
    resource: a.resource,
    actions: a.actions,
    scope: a.scope,
    purpose: a.purpose,
    created_at: a.createdAt.toISOString(),
    expires_at: a.expiresAt.toISOString(),
  };
}

function jtiOf(token: string): string {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')).jti as string;
}
