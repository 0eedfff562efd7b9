import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '../../../config/src/index.js';
import { ResourceServerEntity } from '../../../persistence/src/index.js';
import { actors } from '../audit/audit-events.js';
import { AuditService } from '../audit/audit.service.js';
import { ClientAuthenticator } from '../clients/client-authenticator.js';
import { InvalidClientError, OAuthError, TemporarilyUnavailableError } from '../errors/oauth-errors.js';
import { Problem, UnauthorizedProblem, UnavailableProblem } from '../errors/problem.js';
import { ActiveToken, IntrospectionService } from '../tokens/introspection.service.js';
import { CapabilityDetail } from '../tokens/token-types.js';
import { isLimited, remainingUses } from './budget.js';
import { decideCapability, REASON } from './decision.js';
import { chainLimits, LimiterUnavailableError, RateLimiter } from './rate-limiter.js';

export const AUTHORIZE_PATH = '/v1/authorize';

export interface AuthorizeRequest {
  /** The Authorization header (client_secret_basic), if any. */
  authorization: string | undefined;
  /** Client credentials sent in the JSON body instead (client_secret_post, private_key_jwt). */
  credentials: Record<string, string | undefined>;
  token: string;
  action: string;
  resource?: string;
  context?: Record<string, unknown>;
}

export interface AuthorizeDecision {
  allowed: boolean;
  reason: string;
  grant_id: string | null;
  /** Uses left before a refusal along the capability's chain (window or lifetime); null when unlimited or unknown. */
  remaining: number | null;
}

/**
 * Action-level decisions for resource servers: may this token do this action, on this resource, with
 * these arguments, now? Allowed only when the token is active and addressed to the caller, the action
 * is one of its still-valid capabilities, every constraint of the chain holds for `context`, and the
 * chain's rate limits and budgets have room. The first allowed call of each capability with a token was
 * paid for when the token was issued; every further allowed call is one more use.
 */
@Injectable()
export class AuthorizeService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly clients: ClientAuthenticator,
    private readonly introspection: IntrospectionService,
    private readonly limiter: RateLimiter,
    private readonly audit: AuditService,
  ) {}

  async authorize(req: AuthorizeRequest): Promise<AuthorizeDecision> {
    const rs = await this.authenticate(req);
    const active = await this.introspection.activeFor(req.token, rs, { keepWithoutLiveCapabilities: true });
    const decision = await this.decide(active, req);
    const payload = active?.payload;
    this.audit.recordAsync({
      type: 'authorize.decision',
      by: actors.resourceServer(rs.id),
      outcome: decision.allowed ? 'allowed' : 'denied',
      reason: decision.reason,
      principal: payload?.sub ? { iss: '', sub: payload.sub } : null,
      agentId: (payload?.client_id as string | undefined) ?? null,
      actorChain: active?.actorChain ?? [],
      grantIds: decision.grant_id ? [decision.grant_id] : [],
      resource: req.resource ?? rs.audience,
      actions: [req.action],
      // Argument names only: their values may be personal data.
      data: { jti: (payload?.jti as string | undefined) ?? null, context_keys: Object.keys(req.context ?? {}), remaining: decision.remaining },
    });
    return decision;
  }

  private async decide(active: ActiveToken | null, req: AuthorizeRequest): Promise<AuthorizeDecision> {
    // Wrong audience, bad signature, expired, revoked token or agent: all the same to the caller, who
    // learns nothing about tokens meant for other resource servers.
    if (!active) return deny(REASON.tokenInactive, null);
    const issued = Array.isArray(active.payload.authorization_details) ? (active.payload.authorization_details as CapabilityDetail[]) : [];
    const now = new Date();
    const verdict = decideCapability({ live: active.details, issued, action: req.action, resource: req.resource, context: req.context, now });
    if (!verdict.ok) return deny(verdict.reason, verdict.grantId);

    const detail = verdict.detail;
    let outcome;
    let chain;
    try {
      chain = chainLimits(detail.grant_chain, await this.limiter.limitsOf(detail.grant_chain));
      if (!chain.some(isLimited)) return { allowed: true, reason: REASON.allowed, grant_id: detail.grant_id, remaining: null };
      const ttlMs = ((active.payload.exp as number) + this.config.clockLeewaySeconds) * 1000 - now.getTime();
      outcome = await this.limiter.consume(
        chain.map((grant) => ({ grant, cost: 1 })),
        { parts: [String(active.payload.jti), detail.grant_id, detail.actions.join(' ')], ttlMs },
      );
    } catch (err) {
      if (err instanceof LimiterUnavailableError) throw new UnavailableProblem('the rate-limit store is unreachable; no decision was made, try again');
      throw err;
    }
    if (outcome.kind === 'rate_limited') return { allowed: false, reason: REASON.rateLimited, grant_id: detail.grant_id, remaining: 0 };
    if (outcome.kind === 'budget_exhausted') return { allowed: false, reason: REASON.budgetExhausted, grant_id: detail.grant_id, remaining: 0 };
    return { allowed: true, reason: REASON.allowed, grant_id: detail.grant_id, remaining: remainingUses(chain, outcome.usage, Date.now()) };
  }

  /** Resource-server client authentication; its OAuth errors become problems on this REST endpoint. */
  private async authenticate(req: AuthorizeRequest): Promise<ResourceServerEntity> {
    try {
      return await this.clients.authenticateResourceServer({ authorization: req.authorization, params: req.credentials, endpoint: `${this.config.issuer}${AUTHORIZE_PATH}` });
    } catch (err) {
      if (err instanceof InvalidClientError) throw new UnauthorizedProblem(`resource server authentication failed: ${err.description}`);
      if (err instanceof TemporarilyUnavailableError) throw new UnavailableProblem(err.description);
      if (err instanceof OAuthError) throw new Problem(400, 'invalid_client_authentication', 'Bad Request', err.description);
      throw err;
    }
  }
}

const deny = (reason: string, grantId: string | null): AuthorizeDecision => ({ allowed: false, reason, grant_id: grantId, remaining: null });
