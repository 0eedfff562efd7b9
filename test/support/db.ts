import pg from 'pg';

export const ADMIN_DB_URL = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/** Per test run, so concurrent runs never rebuild a template another run is cloning. */
export const templateDb = () => `procura_tpl_${process.env.PROCURA_TEST_RUN ?? 'adhoc'}`;

export function dbUrl(name: string): string {
  const u = new URL(ADMIN_DB_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function adminQuery(sql: string, params: unknown[] = [], database?: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: database ? dbUrl(database) : ADMIN_DB_URL });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

export async function dropDatabase(name: string): Promise<void> {
  await adminQuery(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
}
