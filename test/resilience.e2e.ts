import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, startApp, TestApp } from './support/app.js';
import { ADMIN_DB_URL, adminQuery, dbUrl, dropDatabase } from './support/db.js';
import { Client, Fixtures } from './support/fixtures.js';
import { call } from './support/http.js';
import { TestIdp } from './support/idp.js';
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE } from './support/oauth.js';
import { until } from './support/poll.js';
import { TcpProxy } from './support/tcp-proxy.js';

// The app reaches Redis and Postgres only through proxies the test controls: cut() is the outage.
let idp: TestIdp;
let app: TestApp;
let fx: Fixtures;
let redis: TcpProxy;
let postgres: TcpProxy;
let database: string;

beforeAll(async () => {
  idp = await TestIdp.start();
  const pg = new URL(ADMIN_DB_URL);
  redis = await TcpProxy.start({ host: '127.0.0.1', port: 6379 });
  postgres = await TcpProxy.start({ host: pg.hostname, port: Number(pg.port || 5432) });
  database = await createTestDatabase();
  app = await startApp({ idp, database, env: { DATABASE_URL: postgres.url(dbUrl(database)), REDIS_URL: redis.url('redis://127.0.0.1:6379') } });
  fx = new Fixtures(app, idp);
});
afterAll(async () => {
  redis?.restore();
  postgres?.restore();
  await app?.close();
  await redis?.close();
  await postgres?.close();
  if (database) await dropDatabase(database);
  await idp?.close();
});
afterEach(async () => {
  // Whatever a test did, the next one starts with both services back and the app ready again.
  redis.restore();
  postgres.restore();
  await untilReady();
});

const readyz = () => call(app.url, 'GET', '/readyz');
const untilReady = () => until(async () => (await readyz()).status === 200, '/readyz to answer 200 again', 20_000);

const exchangeCall = async (agent: Client, audience: string, scope: string, principal = 'alice') =>
  call(app.url, 'POST', '/oauth/token', {
    basic: [agent.id, agent.secret],
    form: { grant_type: TOKEN_EXCHANGE, subject_token: await idp.token(principal), subject_token_type: ACCESS_TOKEN_TYPE, resource: audience, scope },
  });

async function tokenFor(agent: Client, audience: string, scope: string): Promise<string> {
  const res = await exchangeCall(agent, audience, scope);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.access_token;
}

const introspectCall = (rs: Client, token: string) => call(app.url, 'POST', '/oauth/introspect', { basic: [rs.id, rs.secret], form: { token } });

const revokeCall = async (grantId: string) => call(app.url, 'POST', `/v1/grants/${grantId}/revoke`, { token: await idp.token('alice'), json: {} });

async function setup(actions: string[]) {
  const rs = await fx.resourceServer();
  const agent = await fx.agent();
  const grants: Record<string, { id: string }> = {};
  for (const action of actions) grants[action] = await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action });
  return { rs, agent, grants };
}

describe('Redis unreachable', () => {
  it('fails closed: exchange, revoke and rate-limited decisions answer 503, a revoked grant is never active, /readyz names redis', async () => {
    const { rs, agent, grants } = await setup(['docs:read', 'docs:write']);
    await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'docs:share', rate_limit: { max: 100, window_seconds: 60 } });
    const revokedToken = await tokenFor(agent, rs.audience, 'docs:read');
    const liveToken = await tokenFor(agent, rs.audience, 'docs:write');
    const limitedToken = await tokenFor(agent, rs.audience, 'docs:share');
    expect((await revokeCall(grants['docs:read'].id)).status).toBe(200);

    redis.cut();

    // Introspection falls back to Postgres: still answers, and checks revocation there.
    const revoked = await introspectCall(rs, revokedToken);
    expect(revoked.status).toBe(200);
    expect(revoked.body).toEqual({ active: false });
    const live = await introspectCall(rs, liveToken);
    expect(live.status).toBe(200);
    expect(live.body).toMatchObject({ active: true, scope: 'docs:write' });

    // No token can be issued whose revocation could not be enforced, and none is recorded as issued.
    const recorded = async () => (await call(app.url, 'GET', `/v1/grants/${grants['docs:write'].id}/tokens`, { token: await idp.token('alice') })).body.data.length;
    const recordedBefore = await recorded();
    const exchanged = await exchangeCall(agent, rs.audience, 'docs:write');
    expect(exchanged.status).toBe(503);
    expect(exchanged.body.error).toBe('temporarily_unavailable');
    expect(exchanged.headers.get('cache-control')).toBe('no-store');
    expect(await recorded()).toBe(recordedBefore);

    // Nor can a revoke be half-done: it is refused, and the grant stays as it was.
    const refused = await revokeCall(grants['docs:write'].id);
    expect(refused.status).toBe(503);
    expect(refused.body.code).toBe('service_unavailable');
    const grant = await call(app.url, 'GET', `/v1/grants/${grants['docs:write'].id}`, { token: await idp.token('alice') });
    expect(grant.body.status).toBe('active');

    // Authorization decisions: a rate limit cannot be counted, so no decision; a revoked grant is never allowed.
    const authorize = (token: string, action: string) => call(app.url, 'POST', '/v1/authorize', { basic: [rs.id, rs.secret], json: { token, action } });
    const limited = await authorize(limitedToken, 'docs:share');
    expect(limited.status).toBe(503);
    expect(limited.body.code).toBe('service_unavailable');
    const onRevoked = await authorize(revokedToken, 'docs:read');
    expect(onRevoked.body.allowed).not.toBe(true);
    expect([200, 503]).toContain(onRevoked.status);

    const ready = await readyz();
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ status: 'not_ready', checks: { redis: 'unreachable', postgres: 'ok' } });
  });

  it('recovers by itself once Redis is back', async () => {
    const { rs, agent, grants } = await setup(['mail:send']);
    const before = await tokenFor(agent, rs.audience, 'mail:send');

    redis.cut();
    expect((await exchangeCall(agent, rs.audience, 'mail:send')).status).toBe(503);
    redis.restore();
    await untilReady();

    const after = await tokenFor(agent, rs.audience, 'mail:send');
    expect((await introspectCall(rs, after)).body.active).toBe(true);
    expect((await revokeCall(grants['mail:send'].id)).status).toBe(200);
    for (const token of [before, after]) expect((await introspectCall(rs, token)).body).toEqual({ active: false });
  });
});

describe('Postgres unreachable', () => {
  it('answers 503, never 500, and recovers without a restart', async () => {
    const { rs, agent, grants } = await setup(['files:read']);
    const token = await tokenFor(agent, rs.audience, 'files:read');
    expect((await introspectCall(rs, token)).body.active).toBe(true);

    postgres.cut();

    const list = await call(app.url, 'GET', '/v1/grants', { token: await idp.token('alice') });
    expect(list.status).toBe(503);
    expect(list.body.code).toBe('service_unavailable');
    const created = await call(app.url, 'POST', '/v1/grants', { token: await idp.token('alice'), json: { agent_id: agent.id, resource: rs.audience, action: 'files:write' } });
    expect(created.status).toBe(503);
    const exchanged = await exchangeCall(agent, rs.audience, 'files:read');
    expect(exchanged.status).toBe(503);
    expect(exchanged.body.error).toBe('temporarily_unavailable');
    // Statuses are in Redis: introspection keeps answering, and answers right.
    const introspected = await introspectCall(rs, token);
    expect(introspected.status).toBe(200);
    expect(introspected.body.active).toBe(true);

    const ready = await readyz();
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ status: 'not_ready', checks: { postgres: 'unreachable', redis: 'ok' } });

    postgres.restore();
    await untilReady();

    expect((await call(app.url, 'GET', `/v1/grants/${grants['files:read'].id}`, { token: await idp.token('alice') })).status).toBe(200);
    const again = await tokenFor(agent, rs.audience, 'files:read');
    expect((await introspectCall(rs, again)).body.active).toBe(true);
  });

  it('a cascade revocation cut off by the outage either fully happened or not at all', async () => {
    const { rs, agent, grants } = await setup(['db:admin']);
    const root = grants['db:admin'].id;
    const size = await seedSubtree(root, 40, 25); // 1 + 40 + 1,000 grants
    const token = await tokenFor(agent, rs.audience, 'db:admin');

    // The connection drops exactly when the revoke's transaction is about to commit.
    const cutting = postgres.cutWhen('COMMIT\u0000');
    const res = await revokeCall(root);
    await cutting;
    expect(res.status).toBe(503);
    expect(res.body.code).toBe('service_unavailable');
    postgres.restore();
    await untilReady();

    const counts = await subtreeCounts(root);
    expect(counts.total).toBe(size);
    expect([0, size]).toContain(counts.active); // all or nothing
    // Whatever Postgres kept, the capability is not served as live: the tombstones went out first.
    expect((await introspectCall(rs, token)).body).toEqual({ active: false });

    // The revoke can simply be retried, and completes.
    const retried = await revokeCall(root);
    expect(retried.status).toBe(200);
    expect(retried.body.status).toBe('revoked');
    expect((await subtreeCounts(root)).active).toBe(0);
  });
});

/** Sub-grants below `rootId` (same principal, agent and resource), written directly: `fanout` children with `perChild` children each. */
async function seedSubtree(rootId: string, fanout: number, perChild: number): Promise<number> {
  const copy = `principal_iss, principal_sub, autonomous, agent_id, resource_server_id, resource, action, created_by`;
  await adminQuery(
    `INSERT INTO grants (id, parent_id, ancestor_ids, ${copy})
     SELECT md5($1 || '-' || c)::uuid, r.id, ARRAY[r.id], ${copy.split(', ').map((c) => `r.${c}`).join(', ')}
       FROM grants r, generate_series(1, $2::int) c WHERE r.id = $1::uuid`,
    [rootId, fanout],
    database,
  );
  await adminQuery(
    `INSERT INTO grants (id, parent_id, ancestor_ids, ${copy})
     SELECT md5($1 || '-' || c || '-' || g)::uuid, md5($1 || '-' || c)::uuid, ARRAY[r.id, md5($1 || '-' || c)::uuid], ${copy.split(', ').map((c) => `r.${c}`).join(', ')}
       FROM grants r, generate_series(1, $2::int) c, generate_series(1, $3::int) g WHERE r.id = $1::uuid`,
    [rootId, fanout, perChild],
    database,
  );
  return 1 + fanout + fanout * perChild;
}

async function subtreeCounts(rootId: string): Promise<{ total: number; active: number }> {
  const { rows } = await adminQuery(
    `SELECT count(*)::int AS total, count(*) FILTER (WHERE status = 'active')::int AS active FROM grants WHERE id = $1 OR ancestor_ids @> ARRAY[$1]::uuid[]`,
    [rootId],
    database,
  );
  return rows[0] as { total: number; active: number };
}
