import { Logger, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { AppConfig } from '../../../libs/config/src/index.js';
import { CacheCoherence } from '../../../libs/core/src/status/cache-coherence.js';
import { serializeBody } from '../../../libs/core/src/tokens/pre-serialized.js';
import { AppModule } from './app.module.js';
import { ExceptionsFilter } from './http/exception.filter.js';

const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug'];

export function nestLogLevels(level: AppConfig['logLevel']): LogLevel[] {
  const upTo = { fatal: 0, error: 1, warn: 2, info: 3, debug: 4 }[level];
  return LEVELS.slice(0, upTo + 1);
}

/** Builds the API (not yet listening): used by main.ts and by the end-to-end tests alike. */
export async function createApp(config: AppConfig): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    bodyLimit: config.bodyLimitBytes,
    // X-Forwarded-For is honoured only from the configured proxies, so agents cannot spoof their address.
    trustProxy: config.trustedProxies.length ? config.trustedProxies : false,
  });
  adapter.getInstance().setReplySerializer(serializeBody);
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config), adapter, {
    logger: nestLogLevels(config.logLevel),
    bufferLogs: false,
  });
  app.useGlobalFilters(new ExceptionsFilter());
  // The API answers status and held grants from memory under a cache lease (docs/scaling.md).
  app.get(CacheCoherence).join();
  app.enableShutdownHooks();

  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Procura')
      .setDescription('Capability grants for AI agents. OAuth endpoints are described by /.well-known/oauth-authorization-server.')
      .setVersion('0.1.0')
      .addBearerAuth()
      .addBasicAuth() // agents, as OAuth clients (delegations, revoking what they delegated)
      .build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs/openapi.json' });
  new Logger('Procura').debug(`issuer ${config.issuer}`);
  return app;
}
