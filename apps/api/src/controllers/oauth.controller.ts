import { Controller, HttpCode, Post, Req, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { FastifyReply, FastifyRequest } from 'fastify';
import { Inject } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '../../../../libs/config/src/index.js';
import { IntrospectionService, OAuthRequest, TokenExchangeService, TokenRevocationService } from '../../../../libs/core/src/index.js';

export const OAUTH_PATHS = { token: '/oauth/token', introspection: '/oauth/introspect', revocation: '/oauth/revoke' } as const;

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

/** OAuth endpoints (form-encoded in, JSON out); documented in the RFC 8414 metadata, not in OpenAPI. */
@ApiExcludeController()
@Controller('oauth')
export class OAuthController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly exchange: TokenExchangeService,
    private readonly introspection: IntrospectionService,
    private readonly revocation: TokenRevocationService,
  ) {}

  @Post('token')
  @HttpCode(200)
  async token(@Req() req: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply) {
    void reply.headers(NO_STORE);
    return this.exchange.exchange({ ...this.oauthRequest(req, OAUTH_PATHS.token), sourceIp: req.ip });
  }

  @Post('introspect')
  @HttpCode(200)
  async introspect(@Req() req: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply) {
    void reply.headers(NO_STORE);
    return this.introspection.introspect(this.oauthRequest(req, OAUTH_PATHS.introspection));
  }

  @Post('revoke')
  @HttpCode(200)
  async revoke(@Req() req: FastifyRequest): Promise<void> {
    await this.revocation.revoke(this.oauthRequest(req, OAUTH_PATHS.revocation));
  }

  private oauthRequest(req: FastifyRequest, path: string): OAuthRequest {
    return { body: req.body, contentType: req.headers['content-type'], authorization: req.headers.authorization, endpoint: `${this.config.issuer}${path}` };
  }
}
