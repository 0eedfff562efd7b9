import { BullModule } from '@nestjs/bullmq';
import { DynamicModule, Module } from '@nestjs/common';
import { AppConfig, APP_CONFIG, ConfigModule } from '../../../libs/config/src/index.js';
import { CoreModule, RedisModule } from '../../../libs/core/src/index.js';
import { PersistenceModule } from '../../../libs/persistence/src/index.js';
import { HeartbeatService } from './heartbeat.service.js';

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
        CoreModule,
        BullModule.forRootAsync({
          inject: [APP_CONFIG],
          useFactory: (c: AppConfig) => ({ connection: { url: c.redisUrl, maxRetriesPerRequest: null }, prefix: `${c.redisPrefix}:bull` }),
        }),
      ],
      providers: [HeartbeatService],
    };
  }
}
