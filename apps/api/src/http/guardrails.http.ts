import { z } from 'zod';
import { ApprovalEntity } from '../../../../libs/persistence/src/index.js';
import { effectiveApprovalStatus } from '../../../../libs/core/src/index.js';
import { paginationQuery } from './schemas.js';
import { iso } from './presenters.js';

/** Request schemas and presenters of the guardrails endpoints (approvals, action-level decisions). */

export const listApprovalsQuery = paginationQuery.extend({
  status: z.enum(['pending', 'approved', 'denied', 'expired', 'consumed']).optional(),
});

export const approveBody = z.object({}).strict();

export const denyBody = z.object({ reason: z.string().max(1000).optional() }).strict();

export const authorizeBody = z
  .object({
    token: z.string().min(1).max(16_384),
    action: z.string().min(1).max(128),
    resource: z.string().min(1).max(2048).optional(),
    /** The call's arguments, checked against the `args` constraints of every grant of the chain. */
    context: z.record(z.string().max(64), z.unknown()).optional(),
    // Client authentication in the body, as an alternative to HTTP Basic.
    client_id: z.string().max(200).optional(),
    client_secret: z.string().max(1000).optional(),
    client_assertion: z.string().max(16_384).optional(),
    client_assertion_type: z.string().max(200).optional(),
  })
  .strict();


export const presentApproval = (a: ApprovalEntity, now = new Date()) => ({
  id: a.id,
  status: effectiveApprovalStatus(a, now),
  principal: { iss: a.principalIss, sub: a.principalSub },
  agent_id: a.agentId,
  actor_chain: a.actorChain,
  resource: a.resource,
  actions: a.actions,
  grant_ids: a.grantIds,
  scope: a.scope,
  purpose: a.purpose,
  created_at: iso(a.createdAt),
  expires_at: iso(a.expiresAt),
  decided_at: iso(a.decidedAt),
  decided_by: a.decidedBy,
  decision_reason: a.decisionReason,
  consumed_at: iso(a.consumedAt),
  token_jti: a.tokenJti,
});
