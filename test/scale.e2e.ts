import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { ClientRecordCache } from '../libs/core/src/clients/client-record-cache.js';
import { REDIS } from '../libs/core/src/redis/redis.module.js';
import { CacheCoherence } from '../libs/core/src/status/cache-coherence.js';
import { startApp, startReplica, TestApp } from './support/app.js';
import { adminQuery } from './support/db.js';
import { Client, Fixtures } from './support/fixtures.js';
import { Guardrails } from './support/guardrails.js';
import { call } from './support/http.js';
import { TestIdp } from './support/idp.js';
import { until } from './support/poll.js';
import { TcpProxy } from './support/tcp-proxy.js';

// Two API processes on one Postgres and one Redis (same database, same key prefix), as behind a load balancer.
let idp: TestIdp;
let a: TestApp;
let b: TestApp;
let fx: Fixtures;
let g: Guardrails;

beforeAll(async () => {
  idp = await TestIdp.start();
  // Replicas share one public issuer URL (the load balancer's), one database and one Redis prefix.
  const env = { ISSUER: 'https://procura.example' };
  a = await startApp({ idp, env });
  b = await startApp({ idp, env, database: a.database, redisPrefix: a.config.redisPrefix });
  fx = new Fixtures(a, idp);
  g = new Guardrails(a, idp, fx);
});
afterAll(async () => {
  await b?.close();
  await a?.close();
  await idp?.close();
});

// Raw calls on a chosen process (the guardrails helpers answer as is, errors included).
const exchangeOn = (app: TestApp, agent: Client, audience: string, scope: string) => g.exchange(agent, audience, scope, { app });

const introspectOn = (app: TestApp, rs: Client, token: string) => g.introspect(rs, token, app);

const revokeOn = async (app: TestApp, grantId: string) => call(app.url, 'POST', `/v1/grants/${grantId}/revoke`, { token: await idp.token('alice'), json: {} });

const grantOn = async (app: TestApp, body: Record<string, unknown>) => call(app.url, 'POST', '/v1/grants', { token: await idp.token('alice'), json: body });

async function setup() {
  const rs = await fx.resourceServer();
  const agent = await fx.agent();
  return { rs, agent };
}

describe('stateless API processes', () => {
  it('a grant revoked on A introspects inactive on B at once, every time', async () => {
    const { rs, agent } = await setup();
    for (let i = 0; i < 25; i++) {
      const action = `files:op${i}`;
      const grant = await grantOn(a, { agent_id: agent.id, resource: rs.audience, action });
      expect(grant.status).toBe(201);
      const exchanged = await exchangeOn(i % 2 ? b : a, agent, rs.audience, action);
      expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
      const token = exchanged.body.access_token;
      // B has seen the token active (its caches are warm) before the revoke.
      expect((await introspectOn(b, rs, token)).body.active).toBe(true);

      expect((await revokeOn(a, grant.body.id)).status).toBe(200);
      expect((await introspectOn(b, rs, token)).body, `round ${i}`).toEqual({ active: false });
      expect((await introspectOn(a, rs, token)).body).toEqual({ active: false });
      // And no process issues a new token on it.
      const after = await exchangeOn(i % 2 ? a : b, agent, rs.audience, action);
      expect(after.status).toBe(400);
      expect(after.body.error).toBe('invalid_scope');
    }
  });

  it('an exchange racing a revoke never yields a token that is active once the revoke has returned', async () => {
    const { rs, agent } = await setup();
    for (let i = 0; i < 30; i++) {
      const action = `race:op${i}`;
      const grant = (await grantOn(a, { agent_id: agent.id, resource: rs.audience, action })).body;
      // Both processes exchange while A revokes. Whoever wins (most rounds, the exchanges), once the revoke
      // has answered no token on the grant is active anywhere, and a refused exchange is a refusal, not an error.
      const [onA, onB, revoked] = await Promise.all([exchangeOn(a, agent, rs.audience, action), exchangeOn(b, agent, rs.audience, action), revokeOn(a, grant.id)]);
      expect(revoked.status).toBe(200);
      for (const res of [onA, onB]) {
        if (res.status !== 200) {
          expect(res.body.error).toBe('invalid_scope'); // the revoke committed first: refused, not failed
          continue;
        }
        for (const app of [a, b]) expect((await introspectOn(app, rs, res.body.access_token)).body, `round ${i}`).toEqual({ active: false });
      }
    }
  });

  it('an agent disabled on A can no longer exchange on B, and its tokens introspect inactive there', async () => {
    const { rs, agent } = await setup();
    await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'mail:send' });
    // B authenticates the agent (and caches its record) before the disable.
    const token = (await exchangeOn(b, agent, rs.audience, 'mail:send')).body.access_token;
    expect((await introspectOn(b, rs, token)).body.active).toBe(true);

    const disabled = await call(a.url, 'POST', `/v1/agents/${agent.id}/disable`, { token: await fx.admin() });
    expect(disabled.status).toBe(200);

    const refused = await exchangeOn(b, agent, rs.audience, 'mail:send');
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('invalid_client');
    expect((await introspectOn(b, rs, token)).body).toEqual({ active: false });
  });

  it('a token revoked (RFC 7009) on A introspects inactive on B at once', async () => {
    const { rs, agent } = await setup();
    await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'cal:read' });
    for (let i = 0; i < 10; i++) {
      const token = (await exchangeOn(b, agent, rs.audience, 'cal:read')).body.access_token;
      expect((await introspectOn(b, rs, token)).body.active).toBe(true);
      const revoked = await call(a.url, 'POST', '/oauth/revoke', { basic: [agent.id, agent.secret], form: { token } });
      expect(revoked.status).toBe(200);
      expect((await introspectOn(b, rs, token)).body).toEqual({ active: false });
    }
  });

  it('a grant past its expiry is not served from any cache', async () => {
    const { rs, agent } = await setup();
    const grant = await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'tmp:read', expires_at: new Date(Date.now() + 3_000).toISOString() });
    const exchanged = await exchangeOn(a, agent, rs.audience, 'tmp:read');
    expect(exchanged.status).toBe(200);
    expect(exchanged.body.expires_in).toBeLessThanOrEqual(3);
    expect((await introspectOn(b, rs, exchanged.body.access_token)).body.active).toBe(true);
    // Observe, not sleep: poll until the grant's expiry has passed, then both processes must agree it is gone.
    await until(() => Date.now() > new Date(grant.expires_at).getTime(), 'the grant to expire', 10_000);
    for (const app of [a, b]) expect((await introspectOn(app, rs, exchanged.body.access_token)).body).toEqual({ active: false });
    expect((await exchangeOn(b, agent, rs.audience, 'tmp:read')).body.error).toBe('invalid_scope');
  });

  it('a client record changed behind the cache is dropped by every process once invalidated', async () => {
    const { rs, agent } = await setup();
    await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'kv:get' });
    const token = (await exchangeOn(a, agent, rs.audience, 'kv:get')).body.access_token;
    // Both processes authenticate the resource server, so both hold its record.
    for (const app of [a, b]) expect((await introspectOn(app, rs, token)).status).toBe(200);

    // Rotate its secret the way a future rotation endpoint would: change the row, then invalidate.
    const rotated = { id: rs.id, secret: 'rotated-secret-0123456789abcdef0123456789abcdef' };
    await adminQuery(`UPDATE resource_servers SET client_secret_hash = encode(sha256(convert_to($2, 'UTF8')), 'hex') WHERE id = $1`, [rs.id, rotated.secret], a.database);
    await a.app.get(ClientRecordCache).invalidate('rs', rs.id);

    expect((await introspectOn(a, rotated, token)).body.active).toBe(true);
    expect((await introspectOn(a, rs, token)).status).toBe(401);
    // B learns it through Redis pub/sub: observe it (bounded), it is not synchronous with A's call.
    await until(async () => (await introspectOn(b, rs, token)).status === 401, 'B to drop the old secret');
    expect((await introspectOn(b, rotated, token)).body.active).toBe(true);
  });
});

describe('in-memory caches across processes', () => {
  it('a grant created on A can be used on B at once, though B holds the agent\'s grants in memory', async () => {
    const { rs, agent } = await setup();
    await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'docs:read' });
    for (let i = 0; i < 10; i++) {
      // B has just read (and kept) what the agent holds; then A adds a grant.
      expect((await exchangeOn(b, agent, rs.audience, 'docs:read')).status).toBe(200);
      expect((await grantOn(a, { agent_id: agent.id, resource: rs.audience, action: `docs:write${i}` })).status).toBe(201);
      const exchanged = await exchangeOn(b, agent, rs.audience, `docs:write${i}`);
      expect(exchanged.status, `round ${i}: ${JSON.stringify(exchanged.body)}`).toBe(200);
    }
  });

  it('introspection answers repeat from memory: Redis is not asked again for a token it has seen', async () => {
    const { rs, agent } = await setup();
    await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'memo:read' });
    const token = (await exchangeOn(a, agent, rs.audience, 'memo:read')).body.access_token;
    expect((await introspectOn(b, rs, token)).body.active).toBe(true);
    const mgets = async () => Number(/cmdstat_mget:calls=(\d+)/.exec(String(await b.app.get<Redis>(REDIS).info('commandstats')))?.[1] ?? 0);
    const before = await mgets();
    for (let i = 0; i < 20; i++) expect((await introspectOn(b, rs, token)).body.active).toBe(true);
    // Other test files share this Redis: allow a few MGETs of theirs, but not one per introspection.
    expect((await mgets()) - before).toBeLessThan(10);
  });

  it('a process that stops hearing from Redis stops answering from memory before a revoke on another returns', async () => {
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: 6379 });
    const c = await startReplica(a, idp, { REDIS_URL: proxy.url('redis://127.0.0.1:6379') });
    try {
      const { rs, agent } = await setup();
      const grant = await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'vault:open' });
      const token = (await exchangeOn(a, agent, rs.audience, 'vault:open')).body.access_token;
      // C answers from memory once it holds its lease (renewed through Redis), and has read the token's status once.
      await until(() => c.app.get(CacheCoherence).live(), 'C to hold its cache lease');
      expect((await introspectOn(c, rs, token)).body.active).toBe(true);

      // The path between C and Redis goes silent: no error, no closed connection, no invalidations.
      proxy.stall();
      expect((await revokeOn(a, grant.id)).status).toBe(200);
      expect((await introspectOn(c, rs, token)).body).toEqual({ active: false });
    } finally {
      proxy.resume();
      await c.close();
      await proxy.close();
    }
  });
});

describe('with the in-memory caches turned off (CACHE_LEASE_MS=0)', () => {
  it('every process still agrees at once: revoked on one, inactive and refused on the other', async () => {
    const c = await startReplica(a, idp, { CACHE_LEASE_MS: '0' });
    const d = await startReplica(a, idp, { CACHE_LEASE_MS: '0' });
    try {
      expect(c.app.get(CacheCoherence).live()).toBe(false);
      const { rs, agent } = await setup();
      for (let i = 0; i < 5; i++) {
        const action = `off:op${i}`;
        const grant = await grantOn(c, { agent_id: agent.id, resource: rs.audience, action });
        const token = (await exchangeOn(d, agent, rs.audience, action)).body.access_token;
        expect((await introspectOn(d, rs, token)).body.active).toBe(true);
        expect((await revokeOn(c, grant.body.id)).status).toBe(200);
        expect((await introspectOn(d, rs, token)).body).toEqual({ active: false });
        expect((await exchangeOn(d, agent, rs.audience, action)).body.error).toBe('invalid_scope');
      }
    } finally {
      await d.close();
      await c.close();
    }
  });
});
