import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, TestApp } from './support/app.js';
import { Client, Fixtures } from './support/fixtures.js';
import { Guardrails } from './support/guardrails.js';
import { call } from './support/http.js';
import { TestIdp } from './support/idp.js';
import { until } from './support/poll.js';
import { SentinelTopology } from './support/redis-sentinel.js';

// Redis behind Sentinel (REDIS_SENTINELS): a real primary, replica and sentinel; the app finds the primary through the sentinel.
let topo: SentinelTopology;
let idp: TestIdp;
let app: TestApp;
let fx: Fixtures;
let g: Guardrails;

beforeAll(async () => {
  topo = await SentinelTopology.start();
  idp = await TestIdp.start();
  app = await startApp({ idp, env: { ...topo.env, REDIS_WAIT_TIMEOUT_MS: '300' } });
  fx = new Fixtures(app, idp);
  g = new Guardrails(app, idp, fx);
});
afterAll(async () => {
  await app?.close();
  await idp?.close();
  await topo?.close();
});

const exchange = (agent: Client, audience: string, scope: string) => g.exchange(agent, audience, scope);
const introspect = (rs: Client, token: string) => g.introspect(rs, token);
const revoke = async (grantId: string) => call(app.url, 'POST', `/v1/grants/${grantId}/revoke`, { token: await idp.token('alice'), json: {} });

async function issued(rs: Client & { audience: string }, agent: Client, action: string) {
  const grant = await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action });
  const res = await exchange(agent, rs.audience, action);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return { grant, token: res.body.access_token as string };
}

describe('Redis through Sentinel', () => {
  it('issues and introspects, and a revoke returns only once a replica holds its tombstone', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    const { grant, token } = await issued(rs, agent, 'docs:read');
    expect((await introspect(rs, token)).body.active).toBe(true);

    expect((await revoke(grant.id)).status).toBe(200);
    const replica = topo.client(topo.ports.replica);
    try {
      expect(await replica.get(`${app.config.redisPrefix}:st:g:${grant.id}`)).toMatch(/^r/);
    } finally {
      replica.disconnect();
    }
    expect((await introspect(rs, token)).body).toEqual({ active: false });
  });

  it('fails closed when no replica acknowledges the tombstones: 503, and nothing is revoked', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    const { grant } = await issued(rs, agent, 'docs:write');
    topo.pauseReplica();
    try {
      const refused = await revoke(grant.id);
      expect(refused.status).toBe(503);
      expect(refused.body.code).toBe('service_unavailable');
    } finally {
      topo.resumeReplica();
    }
    const stored = await call(app.url, 'GET', `/v1/grants/${grant.id}`, { token: await idp.token('alice') });
    expect(stored.body.status).toBe('active');
    // Once the replica is back the same revoke goes through.
    await until(async () => (await revoke(grant.id)).status === 200, 'the revoke to succeed with the replica back');
  });

  it('survives a failover: a grant revoked before it stays revoked, other tokens stay active, and issuing resumes', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    const revoked = await issued(rs, agent, 'mail:send');
    const kept = await issued(rs, agent, 'mail:read');
    expect((await revoke(revoked.grant.id)).status).toBe(200);

    topo.killPrimary();
    const answers: unknown[] = [];
    await until(async () => {
      const r = await introspect(rs, revoked.token);
      answers.push(r.status === 200 ? r.body : r.status);
      return (await exchange(agent, rs.audience, 'mail:read')).status === 200;
    }, 'issuance through the promoted replica', 30_000);

    expect(await topo.sentinelMaster()).toEqual({ host: '127.0.0.1', port: topo.ports.replica });
    // Never active while the primary was away (503 or inactive), nor after.
    expect(answers.filter((a) => a !== 503 && JSON.stringify(a) !== JSON.stringify({ active: false }))).toEqual([]);
    expect((await introspect(rs, revoked.token)).body).toEqual({ active: false });
    expect((await introspect(rs, kept.token)).body.active).toBe(true);
  });
});
