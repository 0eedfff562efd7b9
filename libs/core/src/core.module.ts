import { Global, Module } from '@nestjs/common';
import { AuditService } from './audit/audit.service.js';
import { ClientAuthenticator } from './clients/client-authenticator.js';
import { ClientRecordCache } from './clients/client-record-cache.js';
import { DelegationsService } from './grants/delegations.service.js';
import { GrantsService } from './grants/grants.service.js';
import { GUARDRAIL_SERVICES } from './guardrails/index.js';
import { TrustedIssuers } from './identity/trusted-issuers.service.js';
import { KeysService } from './keys/keys.service.js';
import { ExpiryService } from './maintenance/expiry.service.js';
import { RetentionService } from './maintenance/retention.service.js';
import { AgentsService } from './registry/agents.service.js';
import { ResourceServersService } from './registry/resource-servers.service.js';
import { CacheCoherence } from './status/cache-coherence.js';
import { StatusCache } from './status/status-cache.js';
import { HeldGrantsCache } from './grants/held-grants-cache.js';
import { IntrospectionService } from './tokens/introspection.service.js';
import { TokenExchangeService } from './tokens/token-exchange.service.js';
import { TokenRevocationService } from './tokens/token-revocation.service.js';
import { NotificationsService } from './webhooks/notifications.service.js';
import { WebhooksService } from './webhooks/webhooks.service.js';

const SERVICES = [
  TrustedIssuers,
  KeysService,
  ClientAuthenticator,
  ClientRecordCache,
  CacheCoherence,
  StatusCache,
  HeldGrantsCache,
  AgentsService,
  ResourceServersService,
  GrantsService,
  DelegationsService,
  TokenExchangeService,
  IntrospectionService,
  TokenRevocationService,
  AuditService,
  WebhooksService,
  NotificationsService,
  ExpiryService,
  RetentionService,
  ...GUARDRAIL_SERVICES,
];

/** Use cases shared by the API and the worker. */
@Global()
@Module({ providers: SERVICES, exports: SERVICES })
export class CoreModule {}
