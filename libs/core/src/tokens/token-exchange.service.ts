import { Inject, Injectable } from '@nestjs/common';

import { APP_CONFIG, AppConfig } from '../../../config/src/index.js';
import { actionCovers, formatScope, parseScope } from '../../../domain/src/actions.js';
import { Constraints, effectiveMaxTokenTtl, evaluateConstraints } from '../../../domain/src/constraints.js';
import { uuidv7 } from '../../../domain/src/ids.js';
import { AgentEntity, AgentRepository, GrantEntity, GrantRepository, IssuedTokenRepository, ResourceServerEntity } from '../../../persistence/src/index.js';
import { actors } from '../audit/audit-events.js';
import { AuditService } from '../audit/audit.service.js';
import { ClientAuthenticator } from '../clients/client-authenticator.js';
import {
  AccessDeniedError,
  InvalidClientError,
  InvalidRequestError,
  InvalidScopeError,
  InvalidTargetError,
  OAuthError,
  TemporarilyUnavailableError,
  UnsupportedGrantTypeError,
} from '../errors/oauth-errors.js';
import { describeJoseError, ExpectedTokenKind, TrustedIssuers } from '../identity/trusted-issuers.service.js';
import { KeysService } from '../keys/keys.service.js';
import { grantIsLive, StatusCache } from '../status/status-cache.js';
import { IssuanceGuard } from '../guardrails/issuance-guard.js';
import { HeldGrantsCache } from '../grants/held-grants-cache.js';
import { OAuthRequest, readForm } from './form-params.js';
import { ActClaim, actClaimOf, actorChainOf, CapabilityDetail, TOKEN_EXCHANGE_GRANT, TOKEN_TYPE } from './token-types.js';

export interface TokenRequest extends OAuthRequest {
  sourceIp: string;
}

export interface TokenResponse {
  access_token: string;
  issued_token_type: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
}

/** Who the new token is for, and what the subject token already carried (chaining). */
interface Subject {
  principal: { iss: string; sub: string };
  autonomous: boolean;
  /** Set when the subject token is one this server issued: the agent chain and grants it rests on. */
  upstream?: { actorChain: string[]; grantIds: string[] };
}

interface Capability {
  action: string;
  grant: GrantEntity;
  /** Root first, ending with `grant`. */
  chain: GrantEntity[];
}

const SUBJECT_KINDS: Record<string, ExpectedTokenKind> = {
  [TOKEN_TYPE.accessToken]: 'access_token',
  [TOKEN_TYPE.jwt]: 'jwt',
  [TOKEN_TYPE.idToken]: 'id_token',
};

/** RFC 8693 token exchange: the policy enforcement point. No grant, no token. */
@Injectable()
export class TokenExchangeService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly clients: ClientAuthenticator,
    private readonly identities: TrustedIssuers,
    private readonly keys: KeysService,
    private readonly agents: AgentRepository,
    private readonly grants: GrantRepository,
    private readonly tokens: IssuedTokenRepository,
    private readonly status: StatusCache,
    private readonly audit: AuditService,
    private readonly guardrails: IssuanceGuard,
    private readonly heldGrants: HeldGrantsCache,
  ) {}

  /** Every refusal is audited (`exchange.refused`, with its error code), asynchronously: refusals can come in floods. */
  async exchange(req: TokenRequest): Promise<TokenResponse> {
    const seen: ExchangeSeen = {};
    try {
      return await this.exchangeOrRefuse(req, seen);
    } catch (err) {
      if (err instanceof OAuthError) {
        this.audit.recordAsync({
          type: 'exchange.refused',
          by: seen.agentId ? actors.agent(seen.agentId) : { actor: 'anonymous', actorType: 'agent' },
          outcome: 'refused',
          reason: err.error,
          principal: seen.principal ?? null,
          agentId: seen.agentId ?? null,
          grantIds: seen.grantIds,
          resource: seen.resource ?? null,
          actions: seen.actions,
          // Never the subject or actor token: only what the server concluded from them.
          data: { error: err.error, error_description: err.description, source_ip: req.sourceIp },
        });
      }
      throw err;
    }
  }

  private async exchangeOrRefuse(req: TokenRequest, seen: ExchangeSeen): Promise<TokenResponse> {
    const { single: p, multi } = readForm(req);
    if (!p.grant_type) throw new InvalidRequestError('grant_type is required');
    if (p.grant_type !== TOKEN_EXCHANGE_GRANT) throw new UnsupportedGrantTypeError(`grant_type ${p.grant_type} is not supported`);

    const client = await this.clients.authenticateAgent({ authorization: req.authorization, params: p, endpoint: req.endpoint });
    if (!p.subject_token) throw new InvalidRequestError('subject_token is required');
    if (!p.subject_token_type) throw new InvalidRequestError('subject_token_type is required');
    const subjectKind = SUBJECT_KINDS[p.subject_token_type];
    if (!subjectKind) throw new InvalidRequestError('unsupported subject_token_type');
    if (Boolean(p.actor_token) !== Boolean(p.actor_token_type)) throw new InvalidRequestError('actor_token and actor_token_type must be sent together');
    if (p.actor_token_type && !SUBJECT_KINDS[p.actor_token_type]) throw new InvalidRequestError('unsupported actor_token_type');
    const requestedType = p.requested_token_type ?? TOKEN_TYPE.accessToken;
    if (requestedType !== TOKEN_TYPE.accessToken && requestedType !== TOKEN_TYPE.jwt) throw new InvalidRequestError('requested_token_type must be the access_token or jwt token type');

    const agent = await this.resolveAgent(client, p.actor_token, p.actor_token_type, Boolean(req.authorization));
    seen.agentId = agent.id;
    const target = await this.resolveTarget(multi.resource ?? [], multi.audience ?? []);
    seen.resource = target.audience;
    const subject = await this.resolveSubject(p.subject_token, subjectKind, agent);
    seen.principal = { iss: subject.principal.iss, sub: subject.principal.sub };
    seen.grantIds = subject.upstream?.grantIds;

    const requested = parseScope(p.scope);
    seen.actions = requested;
    if (!requested.length) throw new InvalidScopeError('scope is required: name the actions the token should carry');

    const now = new Date();
    const candidates = subject.upstream
      ? await this.delegatedCapabilities(subject, agent, target, requested, now)
      : await this.directCapabilities(subject, agent, target, requested, now);
    if (!candidates.length) throw new InvalidScopeError('no active grant covers the requested scope for this agent and resource');
    const verdicts = candidates.map((c) => evaluateConstraints(chainConstraints(c), { now, sourceIp: req.sourceIp, phase: 'exchange' }));
    // Per action, the first covering grant whose constraints hold (another grant may pass where one fails).
    const capabilities = candidates.filter((c, i) => verdicts[i].ok && candidates.findIndex((o, j) => o.action === c.action && verdicts[j].ok) === i);
    // Granted, but constraints refuse every capability: say why (access_denied, the reason code first).
    const refusal = verdicts.find((v) => !v.ok);
    if (!capabilities.length && refusal && !refusal.ok) throw new AccessDeniedError(`${refusal.reason}: ${refusal.detail}`);

    // Guardrails (docs/constraints.md): human approval, then rate limits and budgets, then the token.
    const actorChain = subject.autonomous ? [] : [agent.id, ...(subject.upstream?.actorChain ?? [])];
    return this.guardrails.issue({ agentId: agent.id, actorChain, resourceServer: target, purpose: p.purpose }, capabilities, () =>
      this.issue(subject, agent, actorChain, target, capabilities, requestedType, now),
    );
  }

  private async resolveAgent(client: AgentEntity | null, actorToken: string | undefined, actorType: string | undefined, usedHeader: boolean): Promise<AgentEntity> {
    if (actorToken) {
      let actor;
      try {
        actor = await this.identities.verify(actorToken, SUBJECT_KINDS[actorType!]);
      } catch (err) {
        throw new InvalidRequestError(`actor_token is invalid: ${describeJoseError(err)}`);
      }
      const agent = await this.agents.findByWorkloadIdentity(actor.iss, actor.sub);
      if (!agent) throw new InvalidRequestError('actor_token does not identify a registered agent');
      if (client && client.id !== agent.id) throw new InvalidRequestError('actor_token names a different agent than the authenticated client');
      if (agent.status !== 'active') throw new InvalidClientError('agent is disabled', usedHeader);
      return agent;
    }
    if (!client) throw new InvalidClientError('client authentication (or an actor_token) is required', usedHeader);
    return client;
  }

  /** RFC 8693 §2.1: `resource` and `audience` together must name exactly one registered resource server. */
  private async resolveTarget(resources: string[], audiences: string[]): Promise<ResourceServerEntity> {
    const values = [...new Set([...resources, ...audiences])];
    if (!values.length) throw new InvalidTargetError('name the target with resource or audience');
    const found = await this.clients.resourceServersNamed(values);
    const matched = new Set(values.filter((v) => found.some((rs) => rs.audience === v || rs.id === v)));
    if (matched.size !== values.length) throw new InvalidTargetError('unknown resource or audience');
    if (found.length !== 1) throw new InvalidTargetError('resource and audience must name exactly one resource server');
    return found[0];
  }

  private async resolveSubject(token: string, kind: ExpectedTokenKind, agent: AgentEntity): Promise<Subject> {
    // A person's token this process verified before is not one of ours: skip decoding it to find out.
    if (!this.identities.isKnownExternal(token) && isOwnToken(token, this.config.issuer)) return this.resolveUpstreamToken(token, kind);
    let identity;
    try {
      identity = await this.identities.verify(token, kind);
    } catch (err) {
      throw new InvalidRequestError(`subject_token is invalid: ${describeJoseError(err)}`);
    }
    // The agent's own workload token as subject: an autonomous agent acting for itself.
    if (agent.workloadIssuer === identity.iss && agent.workloadSubject === identity.sub) {
      return { principal: { iss: this.config.issuer, sub: agent.id }, autonomous: true };
    }
    return { principal: { iss: identity.iss, sub: identity.sub }, autonomous: false };
  }

  /** A token this server issued, presented by the next agent in a chain. It must still be active. */
  private async resolveUpstreamToken(token: string, kind: ExpectedTokenKind): Promise<Subject> {
    if (kind === 'id_token') throw new InvalidRequestError('subject_token is an access token, not an ID token');
    let payload;
    try {
      payload = await this.keys.verifyOwn(token, 'at+jwt');
    } catch (err) {
      throw new InvalidRequestError(`subject_token is invalid: ${describeJoseError(err)}`);
    }
    const details = (payload.authorization_details ?? []) as CapabilityDetail[];
    const actorChain = actorChainOf(payload.act as ActClaim | undefined);
    const grantIds = [...new Set(details.flatMap((d) => d.grant_chain))];
    const snapshot = await this.status.lookup(grantIds, actorChain, payload.jti as string);
    const now = Date.now();
    const live = details.filter((d) => d.grant_chain.every((id) => grantIsLive(snapshot.grants.get(id), now)));
    if (snapshot.tokenRevoked || !actorChain.every((a) => snapshot.agents.get(a)) || !live.length) {
      throw new InvalidRequestError('subject_token has been revoked');
    }
    const principalSub = payload.sub as string;
    return { principal: { iss: '', sub: principalSub }, autonomous: false, upstream: { actorChain, grantIds: live.map((d) => d.grant_id) } };
  }

  /**
   * The grants the agent holds for this person and resource server come from HeldGrantsCache (Postgres
   * on a miss); whether each is still live comes from the StatusCache, like at introspection, so a
   * revocation that has returned is never missed.
   */
  private async directCapabilities(subject: Subject, agent: AgentEntity, target: ResourceServerEntity, requested: string[], now: Date): Promise<Capability[]> {
    const { iss, sub } = subject.principal;
    const held = await this.heldGrants.get(agent.id, `direct|${target.id}|${subject.autonomous}|${iss}|${sub}`, () =>
      this.grants.findActiveForExchange(subject.principal, agent.id, target.id, subject.autonomous, now),
    );
    const live = await this.liveChains(held.map((g) => [g]), now);
    return matchActions(requested, live.map((chain) => chain[0]), (g) => [g]);
  }

  /** Chained exchange: only sub-grants held by this agent whose parent the subject token rests on. */
  private async delegatedCapabilities(subject: Subject, agent: AgentEntity, target: ResourceServerEntity, requested: string[], now: Date): Promise<Capability[]> {
    const upstream = subject.upstream!;
    if (upstream.actorChain.includes(agent.id)) throw new InvalidRequestError('an agent cannot exchange a token it already acts in');
    const parents = [...upstream.grantIds].sort();
    const chains = await this.heldGrants.get(agent.id, `delegated|${target.id}|${parents.join(',')}`, async () => {
      const children = await this.grants.findActiveChildrenForExchange(parents, agent.id, target.id, now);
      const byId = new Map((await this.grants.findByIds([...new Set(children.flatMap((c) => c.ancestorIds))])).map((g) => [g.id, g]));
      return children.map((c) => [...c.ancestorIds.map((id) => byId.get(id)!), c]);
    });
    const usable = (await this.liveChains(chains, now)).filter((chain) => chain[chain.length - 1].principalSub === subject.principal.sub);
    const chainOf = new Map(usable.map((chain) => [chain[chain.length - 1], chain]));
    return matchActions(requested, [...chainOf.keys()], (g) => chainOf.get(g)!);
  }

  /** The chains (root first) whose every grant is live at `now`. */
  private async liveChains(chains: GrantEntity[][], now: Date): Promise<GrantEntity[][]> {
    const at = now.getTime();
    const unexpired = chains.filter((chain) => chain.every((g) => !g.expiresAt || g.expiresAt.getTime() > at));
    if (!unexpired.length) return [];
    const snapshot = await this.status.lookup([...new Set(unexpired.flat().map((g) => g.id))], [], null);
    return unexpired.filter((chain) => chain.every((g) => grantIsLive(snapshot.grants.get(g.id), at)));
  }

  private async issue(subject: Subject, agent: AgentEntity, actorChain: string[], target: ResourceServerEntity, caps: Capability[], tokenType: string, now: Date): Promise<TokenResponse> {
    const iat = Math.floor(now.getTime() / 1000);
    const allGrants = caps.flatMap((c) => c.chain);
    const ttl = Math.floor(
      Math.min(
        this.config.tokenTtlSeconds,
        this.config.maxTokenTtlSeconds,
        ...allGrants.filter((g) => g.expiresAt).map((g) => (g.expiresAt!.getTime() - now.getTime()) / 1000),
        ...caps.map((c) => effectiveMaxTokenTtl(chainConstraints(c)) ?? Infinity),
      ),
    );
    if (ttl < 1) throw new InvalidScopeError('the grants expire too soon to issue a token');
    const jti = uuidv7(now.getTime());
    const scope = formatScope(caps.map((c) => c.action));
    const details: CapabilityDetail[] = caps.map((c) => ({
      type: 'capability',
      grant_id: c.grant.id,
      actions: [c.action],
      locations: [target.audience],
      constraints: c.chain.map((g) => g.constraints),
      grant_chain: c.chain.map((g) => g.id),
    }));
    const act = actClaimOf(actorChain);
    const exp = iat + ttl;
    const accessToken = await this.keys.sign(
      { iss: this.config.issuer, sub: subject.principal.sub, aud: target.audience, client_id: agent.id, ...(act ? { act } : {}), scope, iat, exp, jti, authorization_details: details },
      'at+jwt',
    );
    const grantIds = [...new Set(allGrants.map((g) => g.id))];
    const expiresAt = new Date(exp * 1000);
    const record = {
      jti,
      agentId: agent.id,
      principalIss: caps[0].chain[0].principalIss, // the root grant's principal, also for chains
      principalSub: subject.principal.sub,
      audience: target.audience,
      grantIds,
      actorChain,
      scope,
      issuedAt: now,
      expiresAt,
    };
    try {
      await this.status.warm([...new Map(allGrants.map((g) => [g.id, g])).values()], actorChain.length ? actorChain : [agent.id], jti, expiresAt);
    } catch {
      // Fail closed: without the shared status store a token's revocation could not be enforced. Seeded
      // before the record, so the trail never shows a token as issued that was then withheld.
      throw new TemporarilyUnavailableError('the status store is unreachable; no token was issued');
    }
    // The token record and its `token.issued` event commit together, in one statement (the jti, never the token).
    await this.tokens.recordWithEvent(
      record,
      this.audit.prepare({
        type: 'token.issued',
        by: actors.agent(agent.id),
        outcome: 'issued',
        occurredAt: now,
        principal: { iss: record.principalIss, sub: record.principalSub },
        agentId: agent.id,
        actorChain,
        grantIds,
        resource: target.audience,
        actions: caps.map((c) => c.action),
        purpose: [...new Set(caps.map((c) => c.grant.purpose).filter((x): x is string => Boolean(x)))].join('; ') || null,
        data: {
          jti,
          scope,
          lifetime_seconds: ttl,
          issued_at: now.toISOString(),
          expires_at: expiresAt.toISOString(),
          issued_token_type: tokenType,
          autonomous: subject.autonomous,
          capabilities: details.map((d) => ({ grant_id: d.grant_id, actions: d.actions, grant_chain: d.grant_chain })),
        },
      }),
    );
    return { access_token: accessToken, issued_token_type: tokenType, token_type: 'Bearer', expires_in: ttl, scope };
  }
}

/** What an exchange had established when it was refused, for the `exchange.refused` event. */
interface ExchangeSeen {
  agentId?: string;
  resource?: string;
  principal?: { iss: string; sub: string };
  grantIds?: string[];
  actions?: string[];
}

/** Every (action, grant) pair where the grant covers a requested action, in request order. */
function matchActions(requested: string[], grants: GrantEntity[], chainOf: (g: GrantEntity) => GrantEntity[]): Capability[] {
  return requested.flatMap((action) => grants.filter((g) => actionCovers(g.action, action)).map((grant) => ({ action, grant, chain: chainOf(grant) })));
}

const chainConstraints = (c: Capability) => c.chain.map((g) => g.constraints as Constraints);

function isOwnToken(token: string, issuer: string): boolean {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { iss?: unknown };
    return payload.iss === issuer;
  } catch {
    return false;
  }
}

