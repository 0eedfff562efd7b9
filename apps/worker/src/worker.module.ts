import { DynamicModule, Module } from '@nestjs/common';
import { AppConfig, ConfigModule } from '../../../libs/config/src/index.js';
import { CoreModule, QueuesModule, RedisModule } from '../../../libs/core/src/index.js';
import { PersistenceModule } from '../../../libs/persistence/src/index.js';
import { HeartbeatService } from './heartbeat.service.js';
import { WorkerHealthServer } from './health.server.js';
import { AuditProcessor, MaintenanceProcessor, WebhooksProcessor } from './processors.js';
import { SchedulesService } from './schedules.service.js';
import { WorkerStatus } from './worker-status.service.js';

/** The worker shares the API's providers (CoreModule) and adds queue processors. */
@Module({})
export class WorkerModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: WorkerModule,
      imports: [
        ConfigModule.forRoot(config),
        PersistenceModule,
        RedisModule,
        // The same queues (and `<REDIS_PREFIX>:bull` prefix) as the API, which enqueues into them.
        QueuesModule.forRoot('worker'),
        CoreModule,
      ],
      providers: [HeartbeatService, WorkerStatus, WorkerHealthServer, SchedulesService, AuditProcessor, WebhooksProcessor, MaintenanceProcessor],
    };
  }
}
