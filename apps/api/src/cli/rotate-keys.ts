import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppConfig, loadConfigOrExit } from '../../../../libs/config/src/index.js';
import { KeysService } from '../../../../libs/core/src/index.js';
import { AppModule } from '../app.module.js';

/**
 * Rotates the signing key from the command line with the same services as the API. Running API
 * processes sign with the new key after their next key reload (at most 30 s) and verify it at once.
 */
export async function rotateKeys(config: AppConfig): Promise<{ kid: string; retiredKid: string | null }> {
  const app = await NestFactory.createApplicationContext(AppModule.forRoot(config), { logger: ['error'] });
  try {
    return await app.get(KeysService).rotate();
  } finally {
    await app.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  rotateKeys(loadConfigOrExit())
    .then(({ kid, retiredKid }) => console.log(JSON.stringify({ kid, retired_kid: retiredKid })))
    .catch((err: Error) => {
      console.error(`keys:rotate failed: ${err.message}`);
      process.exitCode = 1;
    });
}
