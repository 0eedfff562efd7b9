import { execFileSync } from 'node:child_process';
import { runMigrations } from '../../libs/persistence/src/migrate.js';
import { adminQuery, dbUrl, dropDatabase, TEMPLATE_DB } from './db.js';

/** Once per run: make sure Postgres and Redis answer, then build a migrated template database to clone per test file. */
export default async function setup(): Promise<() => Promise<void>> {
  execFileSync('bash', ['scripts/ensure-services.sh'], { stdio: 'inherit', env: { ...process.env, DATABASE_URL: dbUrl('postgres') } });
  await dropDatabase(TEMPLATE_DB);
  await adminQuery(`CREATE DATABASE "${TEMPLATE_DB}"`);
  await runMigrations(dbUrl(TEMPLATE_DB));
  return async () => {
    const { rows } = await adminQuery("SELECT datname FROM pg_database WHERE datname LIKE 'procura_t\\_%'");
    for (const r of rows as { datname: string }[]) await dropDatabase(r.datname);
  };
}
