import { AgentEntity, GrantEntity, IssuedTokenEntity, Page, ResourceServerEntity } from '../../../../libs/persistence/src/index.js';

export const iso = (d: Date | null) => (d ? d.toISOString() : null);

export const presentPage = <T, R>(page: Page<T>, present: (t: T) => R) => ({ data: page.data.map(present), next_cursor: page.nextCursor });

export const presentAgent = (a: AgentEntity) => ({
  id: a.id,
  client_id: a.id,
  name: a.name,
  status: a.status,
  workload_identity: a.workloadIssuer ? { issuer: a.workloadIssuer, subject: a.workloadSubject } : null,
  jwks: a.jwks,
  created_at: iso(a.createdAt),
  disabled_at: iso(a.disabledAt),
});

export const presentResourceServer = (rs: ResourceServerEntity) => ({
  id: rs.id,
  client_id: rs.id,
  name: rs.name,
  audience: rs.audience,
  webhook_url: rs.webhookUrl,
  created_at: iso(rs.createdAt),
});

export const presentGrant = (g: GrantEntity) => ({
  id: g.id,
  principal: { iss: g.principalIss, sub: g.principalSub },
  autonomous: g.autonomous,
  agent_id: g.agentId,
  resource: g.resource,
  action: g.action,
  constraints: g.constraints,
  rate_limit: g.rateLimit,
  max_uses: g.maxUses,
  expires_at: iso(g.expiresAt),
  max_delegation_depth: g.maxDelegationDepth,
  parent_id: g.parentId,
  purpose: g.purpose,
  status: g.status,
  created_at: iso(g.createdAt),
  updated_at: iso(g.updatedAt),
  revoked_at: iso(g.revokedAt),
  revoked_by: g.revokedBy,
  revocation_reason: g.revocationReason,
});

export const presentIssuedToken = (t: IssuedTokenEntity) => ({
  jti: t.jti,
  agent_id: t.agentId,
  audience: t.audience,
  grant_ids: t.grantIds,
  actor_chain: t.actorChain,
  scope: t.scope,
  issued_at: iso(t.issuedAt),
  expires_at: iso(t.expiresAt),
  revoked_at: iso(t.revokedAt),
});
