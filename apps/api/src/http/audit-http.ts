import { z } from 'zod';
import { AuditFilters, AuditEventEntity, WebhookDeliveryAttemptEntity, WebhookDeliveryEntity } from '../../../../libs/persistence/src/index.js';
import { paginationQuery } from './schemas.js';
import { iso } from './presenters.js';

/** Filters shared by GET /v1/audit and /v1/audit/export. */
export const auditFiltersQuery = z.object({
  grant_id: z.string().uuid().optional(),
  agent_id: z.string().uuid().optional(),
  /** `sub@iss` (the actor label format), or a bare `sub` for any issuer. */
  principal: z.string().min(1).max(2048).optional(),
  /** One type or several, comma-separated. */
  type: z
    .string()
    .max(1000)
    .regex(/^[a-z_]+\.[a-z_.]+(,[a-z_]+\.[a-z_.]+)*$/, 'event types like grant.revoked, comma-separated')
    .optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
});

export const listAuditQuery = paginationQuery.extend(auditFiltersQuery.shape);

export function toAuditFilters(q: z.infer<typeof auditFiltersQuery>): AuditFilters {
  return {
    grantId: q.grant_id?.toLowerCase(),
    agentId: q.agent_id?.toLowerCase(),
    principal: q.principal ? parsePrincipal(q.principal) : undefined,
    types: q.type?.split(','),
    since: q.since ? new Date(q.since) : undefined,
    until: q.until ? new Date(q.until) : undefined,
  };
}

/** `alice@https://idp.example` -> iss + sub; a subject may itself contain '@', so split before the issuer URL. */
function parsePrincipal(v: string): { iss?: string; sub: string } {
  const m = /^(.*)@(https?:\/\/[^@]+)$/.exec(v);
  return m ? { sub: m[1], iss: m[2] } : { sub: v };
}

export const presentAuditEvent = (e: AuditEventEntity) => ({
  id: e.id,
  seq: e.seal ? Number(e.seal.seq) : null,
  type: e.type,
  occurred_at: iso(e.occurredAt),
  actor: e.actor,
  actor_type: e.actorType,
  principal: e.principalSub ? { iss: e.principalIss, sub: e.principalSub } : null,
  agent_id: e.agentId,
  actor_chain: e.actorChain,
  grant_ids: e.grantIds,
  resource: e.resource,
  actions: e.actions,
  purpose: e.purpose,
  outcome: e.outcome,
  reason: e.reason,
  data: e.data,
  prev_hash: e.seal?.prevHash ?? null,
  hash: e.seal?.hash ?? null,
});

export const presentDelivery = (d: WebhookDeliveryEntity & { attemptLog: WebhookDeliveryAttemptEntity[] }) => ({
  id: d.id,
  event_id: d.eventId,
  kind: d.kind,
  url: d.url,
  status: d.status,
  attempts: d.attempts,
  grant_ids: (d.payload.grant_ids as string[] | undefined) ?? [],
  jtis: (d.payload.jtis as string[] | undefined) ?? null,
  last_status_code: d.lastStatusCode,
  last_error: d.lastError,
  created_at: iso(d.createdAt),
  delivered_at: iso(d.deliveredAt),
  attempt_log: d.attemptLog.map((a) => ({
    attempt: a.attempt,
    attempted_at: iso(a.attemptedAt),
    duration_ms: a.durationMs,
    status_code: a.statusCode,
    error: a.error,
    outcome: a.outcome,
  })),
});
