import { DynamicModule, Module } from '@nestjs/common';
import { AppConfig, ConfigModule } from '../../../libs/config/src/index.js';
import { CoreModule, QueuesModule, RedisModule } from '../../../libs/core/src/index.js';
import { PersistenceModule } from '../../../libs/persistence/src/index.js';
import { PersonAuthGuard } from './auth/person-auth.guard.js';
import { AgentsController } from './controllers/agents.controller.js';
import { ApprovalsController } from './controllers/approvals.controller.js';
import { AuditController } from './controllers/audit.controller.js';
import { AuthorizeController } from './controllers/authorize.controller.js';
import { DeliveriesController } from './controllers/deliveries.controller.js';
import { DelegationsController } from './controllers/delegations.controller.js';
import { GrantsController } from './controllers/grants.controller.js';
import { HealthController } from './controllers/health.controller.js';
import { KeysController } from './controllers/keys.controller.js';
import { OAuthController } from './controllers/oauth.controller.js';
import { ResourceServersController } from './controllers/resource-servers.controller.js';
import { WellKnownController } from './controllers/well-known.controller.js';

@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [ConfigModule.forRoot(config), PersistenceModule, RedisModule, QueuesModule.forRoot('api'), CoreModule],
      controllers: [HealthController, WellKnownController, OAuthController, AgentsController, ResourceServersController, GrantsController, DelegationsController, KeysController, AuditController, DeliveriesController, ApprovalsController, AuthorizeController],
      providers: [PersonAuthGuard],
    };
  }
}
