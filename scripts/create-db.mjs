#!/usr/bin/env node
// Creates the database named in DATABASE_URL when it does not exist yet.
// Used by scripts/ensure-services.sh; quiet when the database already exists.
//
// Exit codes: 0 ok, 1 other error, 2 bad DATABASE_URL, 3 authentication failed,
// 4 the `pg` package is not installed.

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/procura';
const AUTH_FAILED = new Set(['28P01', '28000']); // invalid_password, invalid_authorization_specification

function fail(code, message) {
  process.stderr.write(`ensure-services: ${message}\n`);
  process.exit(code);
}

const raw = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
let url;
try {
  url = new URL(raw);
} catch {
  fail(2, 'DATABASE_URL is not a valid URL');
}
if (!['postgres:', 'postgresql:'].includes(url.protocol)) {
  fail(2, `DATABASE_URL must start with postgres:// (got ${url.protocol}//)`);
}
const dbName = decodeURIComponent(url.pathname.replace(/^\//, ''));
if (!/^[a-zA-Z0-9_]+$/.test(dbName)) {
  fail(2, `database name in DATABASE_URL must match /^[a-zA-Z0-9_]+$/ (got ${JSON.stringify(dbName)})`);
}

let pg;
try {
  pg = (await import('pg')).default;
} catch {
  fail(4, "the 'pg' package is not installed; run `npm ci` first");
}

const where = `${url.hostname}:${url.port || 5432}`;

async function connect(adminDb) {
  const adminUrl = new URL(url.href);
  adminUrl.pathname = `/${adminDb}`;
  const client = new pg.Client({ connectionString: adminUrl.href, connectionTimeoutMillis: 5000 });
  client.on('error', () => {}); // errors after connect surface through queries
  await client.connect();
  return client;
}

let client;
try {
  try {
    client = await connect('postgres');
  } catch (err) {
    if (err?.code !== '3D000') throw err; // invalid_catalog_name: no "postgres" database
    client = await connect('template1');
  }
  const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [dbName]);
  if (rowCount === 0) {
    try {
      await client.query(`CREATE DATABASE "${dbName}"`);
      process.stdout.write(`ensure-services: created database "${dbName}" on ${where}\n`);
    } catch (err) {
      if (err?.code !== '42P04') throw err; // duplicate_database: created concurrently, fine
    }
  }
} catch (err) {
  const user = decodeURIComponent(url.username) || 'postgres';
  // pg throws code-less errors when the server wants a password the URL lacks.
  if (AUTH_FAILED.has(err?.code) || (!err?.code && /password|SASL/i.test(String(err?.message)))) {
    fail(3, `Postgres at ${where} rejected user "${user}": ${err.message}`);
  }
  fail(1, `could not ensure database "${dbName}" on ${where} as "${user}": ${err?.message ?? err}`);
} finally {
  await client?.end().catch(() => {});
}
