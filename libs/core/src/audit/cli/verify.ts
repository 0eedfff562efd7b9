import 'reflect-metadata';
import { loadConfigOrExit } from '../../../../config/src/index.js';
import { verifyChainAt } from '../verify.js';

// `npm run audit:verify`: prints the verification as JSON; exit 0 when the chain holds, 1 when it is
// broken, 2 when it could not be checked (e.g. Postgres unreachable).
const config = loadConfigOrExit();
try {
  const result = await verifyChainAt(config.databaseUrl);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  process.exitCode = result.ok ? 0 : 1;
} catch (err) {
  process.stderr.write(`audit:verify: ${(err as Error).message}\n`);
  process.exitCode = 2;
}
