import { Injectable } from '@nestjs/common';
import { IssuedTokenRepository } from '../../../persistence/src/index.js';
import { actors } from '../audit/audit-events.js';
import { AuditService } from '../audit/audit.service.js';
import { ClientAuthenticator } from '../clients/client-authenticator.js';
import { InvalidClientError, InvalidRequestError, TemporarilyUnavailableError } from '../errors/oauth-errors.js';
import { KeysService } from '../keys/keys.service.js';
import { StatusCache, StatusUnavailableError } from '../status/status-cache.js';
import { OAuthRequest, readForm } from './form-params.js';

/** RFC 7009: an agent revokes its own tokens. Unknown, malformed or foreign tokens answer 200 and change nothing. */
@Injectable()
export class TokenRevocationService {
  constructor(
    private readonly clients: ClientAuthenticator,
    private readonly keys: KeysService,
    private readonly tokens: IssuedTokenRepository,
    private readonly status: StatusCache,
    private readonly audit: AuditService,
  ) {}

  async revoke(input: OAuthRequest): Promise<void> {
    const { single: p } = readForm(input);
    const agent = await this.clients.authenticateAgent({ ...input, params: p });
    if (!agent) throw new InvalidClientError('client authentication is required', Boolean(input.authorization));
    if (!p.token) throw new InvalidRequestError('token is required');
    let payload;
    try {
      // Expired tokens need no revocation; verifying (not just decoding) keeps forged jtis out.
      payload = await this.keys.verifyOwn(p.token, 'at+jwt');
    } catch {
      return;
    }
    const jti = payload.jti as string;
    const expiresAt = new Date((payload.exp as number) * 1000);
    try {
      await this.tokens.revokeOwnedBy(jti, agent.id, new Date(), async (em, token) => {
        await this.status.publishTokenRevoked(jti, expiresAt);
        if (token.revokedAt) return; // already revoked: nothing new to record
        await this.audit.record(em, {
          type: 'token.revoked',
          by: actors.agent(agent.id),
          outcome: 'revoked',
          principal: { iss: token.principalIss, sub: token.principalSub },
          agentId: token.agentId,
          actorChain: token.actorChain,
          grantIds: token.grantIds,
          resource: token.audience,
          actions: token.scope.split(' ').filter(Boolean),
          data: { jti, expires_at: token.expiresAt.toISOString() },
        });
      });
    } catch (err) {
      if (err instanceof StatusUnavailableError) throw new TemporarilyUnavailableError('the status store is unreachable; the token was not revoked, try again');
      throw err;
    }
  }
}
