import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { loadConfigOrExit } from '../../../libs/config/src/index.js';
import { runMigrations } from '../../../libs/persistence/src/index.js';
import { createApp } from './app.factory.js';

const config = loadConfigOrExit();
const log = new Logger('Procura');

if (config.migrateOnStart) await runMigrations(config.databaseUrl, (m) => log.log(m));
const app = await createApp(config);
await app.listen({ port: config.port, host: config.host });
log.log(`API listening on http://${config.host}:${config.port} (issuer ${config.issuer})`);
