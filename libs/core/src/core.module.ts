import { Global, Module } from '@nestjs/common';
import { ClientAuthenticator } from './clients/client-authenticator.js';
import { GrantsService } from './grants/grants.service.js';
import { TrustedIssuers } from './identity/trusted-issuers.service.js';
import { KeysService } from './keys/keys.service.js';
import { AgentsService } from './registry/agents.service.js';
import { ResourceServersService } from './registry/resource-servers.service.js';
import { StatusCache } from './status/status-cache.js';
import { IntrospectionService } from './tokens/introspection.service.js';
import { TokenExchangeService } from './tokens/token-exchange.service.js';
import { TokenRevocationService } from './tokens/token-revocation.service.js';

const SERVICES = [
  TrustedIssuers,
  KeysService,
  ClientAuthenticator,
  StatusCache,
  AgentsService,
  ResourceServersService,
  GrantsService,
  TokenExchangeService,
  IntrospectionService,
  TokenRevocationService,
];

/** Use cases shared by the API and the worker. */
@Global()
@Module({ providers: SERVICES, exports: SERVICES })
export class CoreModule {}
