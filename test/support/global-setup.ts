import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { runMigrations } from '../../libs/persistence/src/migrate.js';
import { adminQuery, dbUrl, dropDatabase, templateDb } from './db.js';

/** Once per run: make sure Postgres and Redis answer, then build a migrated template database to clone per test file. */
export default async function setup(): Promise<() => Promise<void>> {
  // Test databases carry this run's id, so concurrent runs never drop each other's databases.
  process.env.PROCURA_TEST_RUN ??= randomBytes(3).toString('hex');
  const run = process.env.PROCURA_TEST_RUN;
  execFileSync('bash', ['scripts/ensure-services.sh'], { stdio: 'inherit', env: { ...process.env, DATABASE_URL: dbUrl('postgres') } });
  await dropDatabase(templateDb());
  await adminQuery(`CREATE DATABASE "${templateDb()}"`);
  await runMigrations(dbUrl(templateDb()));
  return async () => {
    const { rows } = await adminQuery('SELECT datname FROM pg_database WHERE datname LIKE $1', [`procura_t_${run}_%`]);
    for (const r of rows as { datname: string }[]) await dropDatabase(r.datname);
    await dropDatabase(templateDb());
  };
}
