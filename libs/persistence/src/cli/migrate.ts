import { loadConfigOrExit } from '../../../config/src/index.js';
import { runMigrations } from '../migrate.js';

const config = loadConfigOrExit();
runMigrations(config.databaseUrl, (m) => console.log(m))
  .then((applied) => console.log(applied.length ? `migrated (${applied.length} applied)` : 'database is up to date'))
  .catch((err: unknown) => {
    console.error(`migration failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
