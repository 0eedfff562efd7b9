import { Inject, Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import { APP_CONFIG, AppConfig } from '../../../config/src/index.js';
import { isUuid } from '../../../domain/src/ids.js';
import { AgentEntity, AgentRepository, ResourceServerEntity, ResourceServerRepository } from '../../../persistence/src/index.js';
import { InvalidClientError, InvalidRequestError, TemporarilyUnavailableError } from '../errors/oauth-errors.js';
import { ASYMMETRIC_ALGS, describeJoseError } from '../identity/trusted-issuers.service.js';
import { REDIS, RedisKeys } from '../redis/redis.module.js';
import { StatusCache } from '../status/status-cache.js';
import { ClientRecordCache } from './client-record-cache.js';
import { secretMatches } from './secrets.js';

export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
export const CLIENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'];

/** The credential-bearing parts of a request to an OAuth endpoint. */
export interface ClientCredentialsInput {
  authorization?: string;
  params: Record<string, string | undefined>;
  /** Absolute URL of the endpoint being called: a valid `aud` for client assertions. */
  endpoint: string;
}

type Credentials =
  | { method: 'client_secret_basic' | 'client_secret_post'; clientId: string; secret: string }
  | { method: 'private_key_jwt'; clientId: string; assertion: string };

const MAX_ASSERTION_LIFETIME_S = 600;

/**
 * RFC 6749 §2.3 and RFC 7523 client authentication for agents and resource servers.
 * Returns null when the request carries no client credentials at all.
 */
@Injectable()
export class ClientAuthenticator {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly agents: AgentRepository,
    private readonly resourceServers: ResourceServerRepository,
    private readonly cache: ClientRecordCache,
    private readonly status: StatusCache,
  ) {}

  async authenticateAgent(input: ClientCredentialsInput): Promise<AgentEntity | null> {
    const creds = this.extract(input);
    if (!creds) return null;
    const agent = isUuid(creds.clientId) ? await this.cache.get('agent', creds.clientId, () => this.agents.findById(creds.clientId)) : null;
    const viaHeader = creds.method === 'client_secret_basic';
    if (!agent) throw new InvalidClientError('client authentication failed', viaHeader);
    await this.check(creds, agent, input.endpoint);
    // The record may come from the cache: whether the agent is still enabled is read where disabling is published.
    if (agent.status !== 'active' || !(await this.status.lookup([], [agent.id], null)).agents.get(agent.id)) throw new InvalidClientError('client is disabled', viaHeader);
    return agent;
  }

  async authenticateResourceServer(input: ClientCredentialsInput): Promise<ResourceServerEntity> {
    const creds = this.extract(input);
    if (!creds) throw new InvalidClientError('resource server authentication is required', Boolean(input.authorization));
    const rs = isUuid(creds.clientId) ? await this.cache.get('rs', creds.clientId, () => this.resourceServers.findById(creds.clientId)) : null;
    if (!rs) throw new InvalidClientError('client authentication failed', creds.method === 'client_secret_basic');
    await this.check(creds, rs, input.endpoint);
    return rs;
  }

  /**
   * RFC 8693 `resource`/`audience` values to resource servers (for the exchange's target). Cached like the
   * client records when they name exactly one server; lookups that find nothing are never cached.
   */
  async resourceServersNamed(values: string[]): Promise<ResourceServerEntity[]> {
    const only = (rows: ResourceServerEntity[]) => rows.length === 1 && values.every((v) => rows[0].audience === v || rows[0].id === v);
    return (await this.cache.get('target', JSON.stringify(values), () => this.resourceServers.findByAudiencesOrIds(values), only)) ?? [];
  }

  private extract({ authorization, params }: ClientCredentialsInput): Credentials | null {
    const found: Credentials[] = [];
    if (authorization !== undefined) {
      const m = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(authorization.trim());
      const decoded = m ? Buffer.from(m[1], 'base64').toString('utf8') : '';
      const sep = decoded.indexOf(':');
      if (!m || sep < 0) throw new InvalidClientError('malformed Basic credentials', true);
      try {
        // RFC 6749 §2.3.1: id and secret are form-urlencoded before Base64.
        found.push({ method: 'client_secret_basic', clientId: formDecode(decoded.slice(0, sep)), secret: formDecode(decoded.slice(sep + 1)) });
      } catch {
        throw new InvalidClientError('malformed Basic credentials', true);
      }
    }
    if (params.client_secret !== undefined) {
      if (!params.client_id) throw new InvalidRequestError('client_secret requires client_id');
      found.push({ method: 'client_secret_post', clientId: params.client_id, secret: params.client_secret });
    }
    if (params.client_assertion !== undefined || params.client_assertion_type !== undefined) {
      if (params.client_assertion_type !== JWT_BEARER_ASSERTION) throw new InvalidRequestError('unsupported client_assertion_type');
      if (!params.client_assertion) throw new InvalidRequestError('client_assertion is required');
      let sub: unknown;
      try {
        sub = decodeJwt(params.client_assertion).sub;
      } catch {
        throw new InvalidClientError('client assertion is not a well-formed JWT');
      }
      if (typeof sub !== 'string') throw new InvalidClientError('client assertion has no sub');
      found.push({ method: 'private_key_jwt', clientId: sub, assertion: params.client_assertion });
    }
    if (found.length > 1) throw new InvalidRequestError('use exactly one client authentication method');
    const creds = found[0];
    if (creds && params.client_id !== undefined && params.client_id !== creds.clientId) {
      throw new InvalidClientError('client_id does not match the authenticated client', creds.method === 'client_secret_basic');
    }
    return creds ?? null;
  }

  private async check(creds: Credentials, client: { id: string; clientSecretHash: string | null; jwks: { keys: Record<string, unknown>[] } | null }, endpoint: string): Promise<void> {
    if (creds.method !== 'private_key_jwt') {
      if (!secretMatches(creds.secret, client.clientSecretHash)) throw new InvalidClientError('client authentication failed', creds.method === 'client_secret_basic');
      return;
    }
    if (!client.jwks?.keys.length) throw new InvalidClientError('client has no registered keys for private_key_jwt');
    let payload;
    try {
      ({ payload } = await jwtVerify(creds.assertion, createLocalJWKSet(client.jwks as never), {
        issuer: client.id,
        subject: client.id,
        audience: [this.config.issuer, endpoint, `${this.config.issuer}/oauth/token`],
        algorithms: ASYMMETRIC_ALGS,
        clockTolerance: this.config.clockLeewaySeconds,
        requiredClaims: ['exp', 'jti'],
      }));
    } catch (err) {
      throw new InvalidClientError(`client assertion rejected: ${describeJoseError(err)}`);
    }
    const now = Math.floor(Date.now() / 1000);
    if (payload.exp! - now > MAX_ASSERTION_LIFETIME_S) throw new InvalidClientError('client assertion lifetime is too long');
    // Single use: remember the jti until the assertion could no longer be accepted anyway.
    const ttl = Math.max(1, payload.exp! - now + this.config.clockLeewaySeconds);
    let fresh: string | null;
    try {
      fresh = await this.redis.set(this.keys.key('jti', client.id, String(payload.jti)), '1', 'EX', ttl, 'NX');
    } catch {
      throw new TemporarilyUnavailableError('client assertion replay check unavailable');
    }
    if (fresh !== 'OK') throw new InvalidClientError('client assertion has already been used');
  }
}

const formDecode = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
