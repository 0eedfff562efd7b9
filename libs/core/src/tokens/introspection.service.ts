import { Inject, Injectable } from '@nestjs/common';
import { JWTPayload } from 'jose';
import { APP_CONFIG, AppConfig } from '../../../config/src/index.js';
import { formatScope } from '../../../domain/src/actions.js';
import { ResourceServerEntity } from '../../../persistence/src/index.js';
import { actors } from '../audit/audit-events.js';
import { AuditService } from '../audit/audit.service.js';
import { ClientAuthenticator } from '../clients/client-authenticator.js';
import { InvalidRequestError } from '../errors/oauth-errors.js';
import { KeysService } from '../keys/keys.service.js';
import { grantIsLive, StatusCache } from '../status/status-cache.js';
import { OAuthRequest, readForm } from './form-params.js';
import { ActClaim, actorChainOf, CapabilityDetail } from './token-types.js';
import { rememberSerialized } from './pre-serialized.js';
import { VerifiedTokenCache } from './verified-token-cache.js';
import { RateLimiter } from '../guardrails/rate-limiter.js';

export type IntrospectionResponse = { active: false } | ({ active: true } & Record<string, unknown>);

export interface ActiveToken {
  payload: JWTPayload;
  /** Capabilities still valid: every grant along their chain is live. */
  details: CapabilityDetail[];
  actorChain: string[];
  /** Derived once per token (see VerifiedAccessToken). */
  token: VerifiedAccessToken;
}

/** What introspection needs from a token whose signature this process verified, derived once per token. */
interface VerifiedAccessToken {
  payload: JWTPayload;
  details: CapabilityDetail[];
  grantIds: string[];
  actorChain: string[];
  /** Agents whose status decides the token: the actor chain, or the client of an autonomous token. */
  agents: string[];
  /** The active answer while every capability is live, budgets aside; built on first use. */
  answer?: { active: true } & Record<string, unknown>;
  /** Whether any grant it rests on has a rate limit or budget (limits never change); unknown until asked. */
  limited?: boolean;
}

const INACTIVE: IntrospectionResponse = { active: false };

/** RFC 7662 introspection, narrowed to the capabilities still valid. */
@Injectable()
export class IntrospectionService {
  private readonly verified = new VerifiedTokenCache<VerifiedAccessToken>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly clients: ClientAuthenticator,
    private readonly keys: KeysService,
    private readonly status: StatusCache,
    private readonly audit: AuditService,
    private readonly limiter: RateLimiter,
  ) {}

  async introspect(input: OAuthRequest): Promise<IntrospectionResponse> {
    const { single: p } = readForm(input);
    const rs = await this.clients.authenticateResourceServer({ ...input, params: p });
    if (!p.token) throw new InvalidRequestError('token is required');
    // Verified once: the audit event below describes the same verification (a forged token costs one check, not two).
    const verified = await this.verify(p.token);
    const active = await this.evaluate(verified, rs);
    this.auditDecision(rs, verified, active);
    if (!active) return INACTIVE;
    const { token, details } = active;
    const allLive = details === token.details;
    const answer = allLive ? (token.answer ??= rememberSerialized(answerFor(token.payload, details))) : answerFor(token.payload, details);
    token.limited ??= await this.limiter.anyLimited(token.grantIds).catch(() => undefined);
    if (token.limited === false) return answer;
    // Each limited capability shows its binding budget {used, max, resets_at}; omitted if Redis is away.
    const withBudgets = await this.limiter.withBudgets(details);
    return withBudgets === details ? answer : { ...answer, authorization_details: withBudgets };
  }

  /**
   * The token's still-valid view for this resource server, or null. Shared with action-level decisions.
   * Fails closed: anything that cannot be established makes the token inactive.
   * `keepWithoutLiveCapabilities`: an otherwise active token whose capabilities were all revoked comes
   * back with no details instead of null, so /v1/authorize can say `capability_revoked`.
   */
  async activeFor(raw: string, rs: ResourceServerEntity, opts: { keepWithoutLiveCapabilities?: boolean } = {}): Promise<ActiveToken | null> {
    return this.evaluate(await this.verify(raw), rs, opts);
  }

  private async evaluate(token: VerifiedAccessToken | null, rs: ResourceServerEntity, opts: { keepWithoutLiveCapabilities?: boolean } = {}): Promise<ActiveToken | null> {
    if (!token || token.payload.aud !== rs.audience) return null;
    const { payload, details, actorChain } = token;
    const snapshot = await this.status.lookup(token.grantIds, token.agents, payload.jti as string);
    if (snapshot.tokenRevoked || !token.agents.every((a) => snapshot.agents.get(a))) return null;
    const now = Date.now();
    const allLive = token.grantIds.every((id) => grantIsLive(snapshot.grants.get(id), now));
    // The same array when nothing was revoked: the cached answer for the token applies.
    const live = allLive ? details : details.filter((d) => d.grant_chain.every((id) => grantIsLive(snapshot.grants.get(id), now)));
    return live.length || opts.keepWithoutLiveCapabilities ? { payload, details: live, actorChain, token } : null;
  }

  /**
   * `token.introspected`, through the asynchronous audit path: introspection is the hot path and must not
   * wait on (or fail because of) the trail. Never blocks; see AuditService.recordAsync for the loss window.
   */
  private auditDecision(rs: ResourceServerEntity, token: VerifiedAccessToken | null, active: ActiveToken | null): void {
    // An inactive token is described only if its signature holds (`token` is null otherwise): unverified claims are attacker-controlled.
    const payload = token?.payload;
    const outcome = active ? 'active' : 'inactive';
    const reason = active ? null : !payload ? 'invalid_or_expired' : payload.aud !== rs.audience ? 'audience_mismatch' : 'revoked_or_expired';
    const coalesceKey = payload?.jti ? `introspect:${rs.id}:${String(payload.jti)}:${outcome}:${reason}` : undefined;
    // Most introspections repeat one already in the current window: count it without building the event.
    if (coalesceKey && this.config.auditCoalesceMs > 0 && this.audit.countRepeat(coalesceKey)) return;
    const details = active?.details ?? token?.details ?? [];
    this.audit.recordAsync({
      type: 'token.introspected',
      by: actors.resourceServer(rs.id),
      outcome,
      reason,
      principal: payload?.sub ? { iss: '', sub: payload.sub } : null,
      agentId: (payload?.client_id as string | undefined) ?? null,
      actorChain: token?.actorChain ?? [],
      grantIds: [...new Set(details.flatMap((d) => d.grant_chain))],
      resource: rs.audience,
      actions: details.flatMap((d) => d.actions),
      data: { jti: (payload?.jti as string | undefined) ?? null },
    }, coalesceKey);
  }

  private async verify(raw: string): Promise<VerifiedAccessToken | null> {
    const now = Math.floor(Date.now() / 1000);
    const cached = this.verified.get(raw, now);
    if (cached) return cached;
    try {
      const payload = await this.keys.verifyOwn(raw, 'at+jwt');
      const details = Array.isArray(payload.authorization_details) ? (payload.authorization_details as CapabilityDetail[]) : [];
      const actorChain = actorChainOf(payload.act as ActClaim | undefined);
      const token: VerifiedAccessToken = {
        payload,
        details,
        grantIds: [...new Set(details.flatMap((d) => d.grant_chain))],
        actorChain,
        agents: actorChain.length ? actorChain : [payload.client_id as string],
      };
      this.verified.set(raw, token, payload.exp as number, now);
      return token;
    } catch {
      return null;
    }
  }
}

function answerFor(payload: JWTPayload, details: CapabilityDetail[]): { active: true } & Record<string, unknown> {
  return {
    active: true,
    iss: payload.iss,
    sub: payload.sub,
    aud: payload.aud,
    client_id: payload.client_id,
    ...(payload.act ? { act: payload.act } : {}),
    scope: formatScope(details.flatMap((d) => d.actions)),
    token_type: 'Bearer',
    exp: payload.exp,
    iat: payload.iat,
    jti: payload.jti,
    authorization_details: details,
  };
}
