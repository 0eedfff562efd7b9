import { Controller, Get, Header, Inject } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { APP_CONFIG, AppConfig } from '../../../../libs/config/src/index.js';
import { CLIENT_AUTH_METHODS, KeysService, TOKEN_EXCHANGE_GRANT, TOKEN_TYPE } from '../../../../libs/core/src/index.js';
import { ASYMMETRIC_ALGS } from '../../../../libs/core/src/identity/trusted-issuers.service.js';
import { OAUTH_PATHS } from './oauth.controller.js';

@ApiTags('discovery')
@Controller('.well-known')
export class WellKnownController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly keys: KeysService,
  ) {}

  @Get('jwks.json')
  @Header('cache-control', 'public, max-age=60')
  @ApiOperation({ summary: 'Public signing keys (active and recently retired)' })
  jwks() {
    return this.keys.jwks();
  }

  @Get('oauth-authorization-server')
  @Header('cache-control', 'public, max-age=300')
  @ApiOperation({ summary: 'RFC 8414 authorization server metadata' })
  metadata() {
    const base = this.config.issuer;
    return {
      issuer: base,
      token_endpoint: base + OAUTH_PATHS.token,
      introspection_endpoint: base + OAUTH_PATHS.introspection,
      revocation_endpoint: base + OAUTH_PATHS.revocation,
      jwks_uri: `${base}/.well-known/jwks.json`,
      grant_types_supported: [TOKEN_EXCHANGE_GRANT],
      response_types_supported: [],
      token_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
      token_endpoint_auth_signing_alg_values_supported: ASYMMETRIC_ALGS,
      introspection_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
      introspection_endpoint_auth_signing_alg_values_supported: ASYMMETRIC_ALGS,
      revocation_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
      revocation_endpoint_auth_signing_alg_values_supported: ASYMMETRIC_ALGS,
      authorization_details_types_supported: ['capability'],
      token_types_supported: [TOKEN_TYPE.accessToken, TOKEN_TYPE.jwt, TOKEN_TYPE.idToken],
      service_documentation: `${base}/docs`,
    };
  }
}
