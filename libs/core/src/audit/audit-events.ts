import { AuditActorType, GrantEntity } from '../../../persistence/src/index.js';
import { Principal, principalLabel } from '../identity/principal.js';

/** Every event type Procura records (docs/audit.md describes each one's fields). */
export const AUDIT_EVENT_TYPES = [
  'grant.created',
  'grant.delegated',
  'grant.revoked',
  'grant.expired',
  'agent.registered',
  'agent.disabled',
  'token.issued',
  'token.revoked',
  'exchange.refused',
  'token.introspected',
  'authorize.decision',
  'approval.requested',
  'approval.approved',
  'approval.denied',
  'approval.consumed',
  'key.rotated',
  'retention.purged',
] as const;

/** The known types, and room for `area.verb` types added by other features before they are listed here. */
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number] | `${string}.${string}`;

export interface AuditActor {
  actor: string;
  actorType: AuditActorType;
}

/** Who did it. */
export const actors = {
  person: (p: Pick<Principal, 'iss' | 'sub'>): AuditActor => ({ actor: principalLabel(p), actorType: 'person' }),
  agent: (agentId: string): AuditActor => ({ actor: agentId, actorType: 'agent' }),
  resourceServer: (id: string): AuditActor => ({ actor: id, actorType: 'resource_server' }),
  system: { actor: 'system', actorType: 'system' } as AuditActor,
};

/**
 * What callers describe. Answers who authorized (principal), which agent and chain acted, which
 * capability (actions) on which resource, why (purpose), when (occurredAt) and with what outcome.
 * `data` is free-form detail: it must never carry a token or a secret (tokens are named by `jti`);
 * AuditService strips anything that looks like one anyway.
 */
export interface AuditEventInput {
  type: AuditEventType;
  by: AuditActor;
  outcome: string;
  id?: string;
  occurredAt?: Date;
  principal?: { iss: string; sub: string } | null;
  agentId?: string | null;
  actorChain?: string[];
  grantIds?: string[];
  resource?: string | null;
  actions?: string[];
  purpose?: string | null;
  reason?: string | null;
  data?: Record<string, unknown>;
}

/** The fields every event about one grant shares. */
export function aboutGrant(g: GrantEntity): Pick<AuditEventInput, 'principal' | 'agentId' | 'grantIds' | 'resource' | 'actions' | 'purpose'> {
  return {
    principal: { iss: g.principalIss, sub: g.principalSub },
    agentId: g.agentId,
    grantIds: [...g.ancestorIds, g.id],
    resource: g.resource,
    actions: [g.action],
    purpose: g.purpose,
  };
}

/** `grant.delegated`, for the delegation feature: the sub-grant `child` was carved out of its parent by `by`. */
export function grantDelegatedEvent(child: GrantEntity, by: AuditActor, data: Record<string, unknown> = {}): AuditEventInput {
  return {
    type: 'grant.delegated',
    by,
    outcome: 'created',
    ...aboutGrant(child),
    data: { grant_id: child.id, parent_id: child.parentId, depth: child.ancestorIds.length, expires_at: child.expiresAt?.toISOString() ?? null, constraints: child.constraints, ...data },
  };
}
