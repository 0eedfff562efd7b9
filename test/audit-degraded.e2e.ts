import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startApp, TestApp } from './support/app.js';
import { Fixtures } from './support/fixtures.js';
import { call } from './support/http.js';
import { TestIdp } from './support/idp.js';
import { until } from './support/poll.js';

// Redis is "down": nothing listens on this port. The API must still boot and keep its audit trail.
let idp: TestIdp;
let app: TestApp;
let fx: Fixtures;

beforeAll(async () => {
  idp = await TestIdp.start();
  app = await startApp({ idp, env: { REDIS_URL: `redis://127.0.0.1:${await freePort()}`, AUDIT_FLUSH_MS: '20' } });
  fx = new Fixtures(app, idp);
});
afterAll(async () => {
  await app?.close();
  await idp?.close();
});

describe('audit trail without Redis', () => {
  it('boots, records transactional events, and writes introspection events to Postgres when the queue is unreachable', async () => {
    expect((await call(app.url, 'GET', '/readyz')).body.checks).toEqual({ postgres: 'ok', redis: 'unreachable' });
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    const grant = await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'docs:read' });
    expect((await call(app.url, 'GET', `/v1/audit?grant_id=${grant.id}`, { token: await idp.token('alice') })).body.data).toHaveLength(1);

    const started = Date.now();
    const res = await call(app.url, 'POST', '/oauth/introspect', { form: { token: 'not-a-token' }, basic: [rs.id, rs.secret] });
    expect(res.body).toEqual({ active: false });
    expect(Date.now() - started).toBeLessThan(1000); // the audit never holds introspection up

    const event = await until(async () => {
      const page = (await call(app.url, 'GET', '/v1/audit?type=token.introspected', { token: await fx.admin() })).body;
      return page.data.find((e: any) => e.actor === rs.id);
    }, 'the introspection event to reach Postgres');
    expect(event).toMatchObject({ outcome: 'inactive', reason: 'invalid_or_expired', seq: null });
  });
});
