import { Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { APP_CONFIG, AppConfig } from '../../config/src/index.js';
import { dataSourceOptions } from './data-source.js';
import { AgentRepository } from './repositories/agent.repository.js';
import { ApprovalRepository } from './repositories/approval.repository.js';
import { AuditRepository } from './repositories/audit.repository.js';
import { GrantRepository } from './repositories/grant.repository.js';
import { IssuedTokenRepository } from './repositories/issued-token.repository.js';
import { ResourceServerRepository } from './repositories/resource-server.repository.js';
import { SigningKeyRepository } from './repositories/signing-key.repository.js';
import { WebhookDeliveryRepository } from './repositories/webhook-delivery.repository.js';

const REPOSITORIES = [AgentRepository, ResourceServerRepository, GrantRepository, IssuedTokenRepository, SigningKeyRepository, AuditRepository, WebhookDeliveryRepository, ApprovalRepository];

@Global()
@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => ({ ...dataSourceOptions(config.databaseUrl), retryAttempts: 3, retryDelay: 500 }),
    }),
  ],
  providers: REPOSITORIES,
  exports: REPOSITORIES,
})
export class PersistenceModule {}
