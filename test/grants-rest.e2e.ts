import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, TestApp } from './support/app.js';
import { Fixtures } from './support/fixtures.js';
import { call } from './support/http.js';
import { TestIdp } from './support/idp.js';

let idp: TestIdp;
let app: TestApp;
let fx: Fixtures;

beforeAll(async () => {
  idp = await TestIdp.start();
  app = await startApp({ idp });
  fx = new Fixtures(app, idp);
});
afterAll(async () => {
  await app?.close();
  await idp?.close();
});

describe('health', () => {
  it('reports liveness and readiness of Postgres and Redis', async () => {
    expect((await call(app.url, 'GET', '/healthz')).status).toBe(200);
    const ready = await call(app.url, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.checks).toEqual({ postgres: 'ok', redis: 'ok' });
  });

  it('serves the OpenAPI document at /docs', async () => {
    expect((await call(app.url, 'GET', '/docs')).status).toBe(200);
    const doc = await call(app.url, 'GET', '/docs/openapi.json');
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/v1/grants', '/v1/grants/{id}/revoke', '/v1/agents', '/v1/resource-servers']));
    expect(JSON.stringify(doc.body.paths['/v1/grants'].post)).toContain('agent_id');
  });
});

describe('agents and resource servers (admin only)', () => {
  it('registers an agent, shows the secret once and stores only a hash', async () => {
    const admin = await fx.admin();
    const res = await call(app.url, 'POST', '/v1/agents', { token: admin, json: { name: 'mailer' } });
    expect(res.status).toBe(201);
    expect(res.body.client_id).toBe(res.body.id);
    expect(res.body.client_secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const got = await call(app.url, 'GET', `/v1/agents/${res.body.id}`, { token: admin });
    expect(got.status).toBe(200);
    expect(got.body.client_secret).toBeUndefined();
    const { adminQuery } = await import('./support/db.js');
    const row = (await adminQuery('SELECT client_secret_hash FROM agents WHERE id = $1', [res.body.id], app.database)).rows[0];
    expect(row.client_secret_hash).not.toContain(res.body.client_secret);
    expect(row.client_secret_hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses non-admins with 403 and anonymous callers with 401', async () => {
    const alice = await idp.token('alice');
    for (const [method, path] of [['POST', '/v1/agents'], ['GET', '/v1/agents'], ['POST', '/v1/resource-servers'], ['GET', '/v1/resource-servers']]) {
      const res = await call(app.url, method, path, { token: alice, json: method === 'POST' ? { name: 'x', audience: 'https://x' } : undefined });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(res.body.code).toBe('admin_required');
      expect((await call(app.url, method, path)).status).toBe(401);
    }
  });

  it('pins an administrator to one issuer with <issuer>#<sub>', async () => {
    const other = await TestIdp.start();
    const pinned = await startApp({ idp, env: { ADMIN_SUBJECTS: `${idp.issuer}#root`, TRUSTED_ISSUERS: JSON.stringify([idp.trustedIssuerConfig(), other.trustedIssuerConfig()]) } });
    try {
      expect((await call(pinned.url, 'GET', '/v1/agents', { token: await idp.token('root') })).status).toBe(200);
      const impostor = await call(pinned.url, 'GET', '/v1/agents', { token: await other.token('root') });
      expect(impostor.status).toBe(403);
      expect(impostor.body.code).toBe('admin_required');
    } finally {
      await pinned.close();
      await other.close();
    }
  });

  it('lists agents with cursor pagination and disables one', async () => {
    const admin = await fx.admin();
    const created = [await fx.agent(), await fx.agent(), await fx.agent()];
    const first = await call(app.url, 'GET', '/v1/agents?limit=2', { token: admin });
    expect(first.body.data).toHaveLength(2);
    expect(first.body.next_cursor).toEqual(expect.any(String));
    const second = await call(app.url, 'GET', `/v1/agents?limit=2&cursor=${first.body.next_cursor}`, { token: admin });
    const seen = [...first.body.data, ...second.body.data].map((a: { id: string }) => a.id);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(expect.arrayContaining(created.map((c) => c.id)));

    const disabled = await call(app.url, 'POST', `/v1/agents/${created[0].id}/disable`, { token: admin });
    expect(disabled.status).toBe(200);
    expect(disabled.body.status).toBe('disabled');
    expect((await call(app.url, 'POST', `/v1/agents/${created[0].id}/disable`, { token: admin })).status).toBe(200);
    expect((await call(app.url, 'GET', '/v1/agents/0193a7f0-0000-7000-8000-000000000000', { token: admin })).status).toBe(404);
  });

  it('registers resource servers with unique audiences', async () => {
    const rs = await fx.resourceServer('https://calendar.example');
    expect(rs.secret).toBeTruthy();
    const dup = await call(app.url, 'POST', '/v1/resource-servers', { token: await fx.admin(), json: { name: 'again', audience: 'https://calendar.example' } });
    expect(dup.status).toBe(409);
    expect(dup.body.code).toBe('audience_taken');
    const list = await call(app.url, 'GET', '/v1/resource-servers', { token: await fx.admin() });
    expect(list.body.data.map((r: { audience: string }) => r.audience)).toContain('https://calendar.example');
  });
});

describe('grants', () => {
  it('creates, reads, lists, filters and revokes a grant, recording who, when and why', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    const grant = await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'email:read', purpose: 'triage my inbox', rate_limit: { max: 10, window_seconds: 3600 } });
    expect(grant).toMatchObject({ agent_id: agent.id, resource: rs.audience, action: 'email:read', status: 'active', max_delegation_depth: 0, parent_id: null, purpose: 'triage my inbox', principal: { sub: 'alice', iss: idp.issuer } });
    const alice = await idp.token('alice');
    expect((await call(app.url, 'GET', `/v1/grants/${grant.id}`, { token: alice })).body.id).toBe(grant.id);
    await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'email:send' });

    const filtered = await call(app.url, 'GET', `/v1/grants?action=email:send&agent_id=${agent.id}`, { token: alice });
    expect(filtered.body.data.map((g: { action: string }) => g.action)).toEqual(['email:send']);

    const revoked = await call(app.url, 'POST', `/v1/grants/${grant.id}/revoke`, { token: alice, json: { reason: 'done with it' } });
    expect(revoked.status).toBe(200);
    expect(revoked.body).toMatchObject({ status: 'revoked', revocation_reason: 'done with it', revoked_by: `alice@${idp.issuer}` });
    expect(revoked.body.revoked_at).toEqual(expect.any(String));
    // The answer is built without reading the row again: it must be what is stored.
    expect((await call(app.url, 'GET', `/v1/grants/${grant.id}`, { token: alice })).body).toEqual(revoked.body);
    const again = await call(app.url, 'POST', `/v1/grants/${grant.id}/revoke`, { token: alice, json: { reason: 'twice' } });
    expect(again.status).toBe(200);
    expect(again.body.revoked_at).toBe(revoked.body.revoked_at);
    expect(again.body.revocation_reason).toBe('done with it');
    const byStatus = await call(app.url, 'GET', '/v1/grants?status=revoked', { token: alice });
    expect(byStatus.body.data.map((g: { id: string }) => g.id)).toEqual([grant.id]);
  });

  it("hides other people's grants exactly like missing ones", async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    const grant = await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'files:read' });
    const mallory = await idp.token('mallory');
    const foreign = await call(app.url, 'GET', `/v1/grants/${grant.id}`, { token: mallory });
    const missing = await call(app.url, 'GET', '/v1/grants/0193a7f0-0000-7000-8000-000000000000', { token: mallory });
    expect(foreign.status).toBe(404);
    expect({ ...foreign.body, instance: null }).toEqual({ ...missing.body, instance: null });
    expect((await call(app.url, 'POST', `/v1/grants/${grant.id}/revoke`, { token: mallory, json: {} })).status).toBe(404);
    const list = await call(app.url, 'GET', '/v1/grants', { token: mallory });
    expect(list.body.data).toEqual([]);
    expect((await call(app.url, 'GET', `/v1/grants/${grant.id}`, { token: await idp.token('alice') })).body.status).toBe('active');
  });

  it('rejects invalid grants with 422 naming the field', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    const alice = await idp.token('alice');
    const cases: [Record<string, unknown>, string][] = [
      [{ agent_id: '0193a7f0-0000-7000-8000-000000000000', resource: rs.audience, action: 'a:b' }, 'agent_id'],
      [{ agent_id: agent.id, resource: 'https://unknown.example', action: 'a:b' }, 'resource'],
      [{ agent_id: agent.id, resource: rs.audience, action: 'a:b', expires_at: '2001-01-01T00:00:00Z' }, 'expires_at'],
      [{ agent_id: agent.id, resource: rs.audience, action: 'a:b', expires_at: 'tomorrow' }, 'expires_at'],
      [{ agent_id: agent.id, resource: rs.audience, action: 'NOT VALID' }, 'action'],
      [{ agent_id: agent.id, resource: rs.audience, action: 'a:b', constraints: [1] }, 'constraints'],
      [{ agent_id: agent.id, resource: rs.audience, action: 'a:b', rate_limit: { max: 0, window_seconds: 1 } }, 'rate_limit.max'],
      [{ agent_id: agent.id, resource: rs.audience, action: 'a:b', max_delegation_depth: -1 }, 'max_delegation_depth'],
      [{ agent_id: 42, resource: rs.audience, action: 'a:b' }, 'agent_id'],
      [{ resource: rs.audience, action: 'a:b' }, 'agent_id'],
      [{ agent_id: agent.id, resource: rs.audience, action: 'a:b', surprise: true }, 'body'],
    ];
    for (const [body, field] of cases) {
      const res = await call(app.url, 'POST', '/v1/grants', { token: alice, json: body });
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.errors.map((e: { field: string }) => e.field).join(','), JSON.stringify(res.body)).toContain(field);
    }
  });

  it('lets only admins create autonomous grants', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    const res = await call(app.url, 'POST', '/v1/grants', { token: await idp.token('alice'), json: { agent_id: agent.id, resource: rs.audience, action: 'a:b', autonomous: true } });
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('autonomous_requires_admin');
    const ok = await fx.grant('admin', { agent_id: agent.id, resource: rs.audience, action: 'a:b', autonomous: true });
    expect(ok.principal).toEqual({ iss: app.config.issuer, sub: agent.id });
    expect(ok.autonomous).toBe(true);
  });
});

describe('bad input never yields a 500', () => {
  it('answers malformed JSON, wrong content types and oversized bodies with problem details', async () => {
    const alice = await idp.token('alice');
    const malformed = await call(app.url, 'POST', '/v1/grants', { token: alice, raw: '{"agent_id":', headers: { 'content-type': 'application/json' } });
    expect(malformed.status).toBe(400);
    expect(malformed.body.code).toBe('malformed_json');
    const wrongType = await call(app.url, 'POST', '/v1/grants', { token: alice, raw: 'hello', headers: { 'content-type': 'text/plain' } });
    expect(wrongType.status).toBe(415);
    const huge = await call(app.url, 'POST', '/v1/grants', { token: alice, json: { purpose: 'x'.repeat(app.config.bodyLimitBytes + 10) } });
    expect(huge.status).toBe(413);
    expect(huge.body.code).toBe('payload_too_large');
    const badQuery = await call(app.url, 'GET', '/v1/grants?limit=abc&cursor=!!', { token: alice });
    expect(badQuery.status).toBe(422);
    expect(badQuery.body.code).toBe('invalid_query');
    const badId = await call(app.url, 'GET', '/v1/grants/not-a-uuid', { token: alice });
    expect(badId.status).toBe(404);
    expect((await call(app.url, 'GET', '/v1/nothing-here')).status).toBe(404);
  });

  it('rejects forged, expired and untrusted bearer tokens with 401', async () => {
    const { forge } = await import('./support/idp.js');
    const other = await TestIdp.start();
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: idp.issuer, sub: 'admin', aud: 'procura', iat: now, exp: now + 600 };
    const tokens = {
      none: forge.algNone(claims),
      hs256: forge.hs256WithPublicKey(claims, idp.jwks().keys[0], idp.jwks().keys[0].kid),
      unknownIssuer: await other.token('admin'),
      expired: await idp.token('admin', {}, { expiresIn: -120 }),
      notYetValid: await idp.token('admin', {}, { notBefore: 600 }),
      tampered: forge.tamper(await idp.token('alice'), { sub: 'admin' }),
      unknownKid: await idp.token('admin', {}, { kid: 'nope' }),
      garbage: 'not.a.jwt',
    };
    for (const [name, token] of Object.entries(tokens)) {
      const res = await call(app.url, 'GET', '/v1/agents', { token });
      expect(res.status, name).toBe(401);
      expect(res.body.code, name).toBe('unauthenticated');
      expect(res.headers.get('www-authenticate'), name).toContain('Bearer');
    }
    await other.close();
  });
});
