import { exportJWK, generateKeyPair, SignJWT, createRemoteJWKSet, jwtVerify } from 'jose';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, TestApp } from './support/app.js';
import { adminQuery } from './support/db.js';
import { Client, Fixtures } from './support/fixtures.js';
import { call } from './support/http.js';
import { decodeHeader, decodePayload, forge, TestIdp } from './support/idp.js';
import { ACCESS_TOKEN_TYPE, discover, exchange, introspect, oauth, revokeToken, TOKEN_EXCHANGE } from './support/oauth.js';

let idp: TestIdp;
let app: TestApp;
let fx: Fixtures;
let as: oauth.AuthorizationServer;

beforeAll(async () => {
  idp = await TestIdp.start();
  app = await startApp({ idp });
  fx = new Fixtures(app, idp);
  as = await discover(app.url);
});
afterAll(async () => {
  await app?.close();
  await idp?.close();
});

async function setup(actions: string[], principal = 'alice') {
  const rs = await fx.resourceServer();
  const agent = await fx.agent();
  const grants: Record<string, any> = {};
  for (const action of actions) grants[action] = await fx.grant(principal, { agent_id: agent.id, resource: rs.audience, action });
  return { rs, agent, grants };
}

const exchangeParams = async (scope: string, resource: string, sub = 'alice') => ({
  subject_token: await idp.token(sub),
  subject_token_type: ACCESS_TOKEN_TYPE,
  resource,
  scope,
});

/** Raw token-endpoint call, for requests a well-behaved client library would not make. */
const tokenCall = (client: Client | null, form: Record<string, string>, headers: Record<string, string> = {}) =>
  call(app.url, 'POST', '/oauth/token', { form, basic: client ? [client.id, client.secret] : undefined, headers });

describe('discovery and keys', () => {
  it('publishes RFC 8414 metadata and a public-only JWKS', async () => {
    expect(as.issuer).toBe(app.config.issuer);
    expect(as.grant_types_supported).toContain(TOKEN_EXCHANGE);
    expect(as.token_endpoint_auth_methods_supported).toEqual(expect.arrayContaining(['client_secret_basic', 'client_secret_post', 'private_key_jwt']));
    for (const k of ['token_endpoint', 'introspection_endpoint', 'revocation_endpoint', 'jwks_uri']) expect(as[k as keyof typeof as]).toMatch(/^http:\/\/127\.0\.0\.1/);
    const jwks = (await call(app.url, 'GET', '/.well-known/jwks.json')).body;
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const key of jwks.keys) {
      expect(key.kid).toBeTruthy();
      expect(key.d).toBeUndefined();
      expect(key.alg).toBe('ES256');
    }
  });

  it('rotates keys: new tokens use the new kid, old tokens stay verifiable', async () => {
    const { rs, agent } = await setup(['docs:read']);
    const before = await exchange(as, agent, await exchangeParams('docs:read', rs.audience));
    const rotated = await call(app.url, 'POST', '/v1/keys/rotate', { token: await fx.admin() });
    expect(rotated.status).toBe(200);
    expect(rotated.body.retired_kid).toBe(decodeHeader(before.access_token).kid);
    const after = await exchange(as, agent, await exchangeParams('docs:read', rs.audience));
    expect(decodeHeader(after.access_token).kid).toBe(rotated.body.kid);
    const kids = (await call(app.url, 'GET', '/.well-known/jwks.json')).body.keys.map((k: { kid: string }) => k.kid);
    expect(kids).toEqual(expect.arrayContaining([rotated.body.kid, rotated.body.retired_kid]));
    expect((await introspect(as, rs, before.access_token)).active).toBe(true);
    expect((await introspect(as, rs, after.access_token)).active).toBe(true);
    expect((await call(app.url, 'POST', '/v1/keys/rotate', { token: await idp.token('alice') })).status).toBe(403);
  });
});

describe('token exchange', () => {
  it('issues an RFC 9068 access token that names the principal, the actor and the grants', async () => {
    const { rs, agent, grants } = await setup(['email:read', 'email:send']);
    const res = await exchange(as, agent, await exchangeParams('email:read email:send', rs.audience));
    expect(res.token_type.toLowerCase()).toBe('bearer');
    expect(res.issued_token_type).toBe(ACCESS_TOKEN_TYPE);
    expect(res.scope).toBe('email:read email:send');
    expect(res.expires_in).toBe(300);

    const jwks = createRemoteJWKSet(new URL(as.jwks_uri!));
    const { payload, protectedHeader } = await jwtVerify(res.access_token, jwks, { issuer: app.config.issuer, audience: rs.audience, typ: 'at+jwt' });
    expect(protectedHeader.kid).toBeTruthy();
    expect(payload).toMatchObject({ sub: 'alice', client_id: agent.id, act: { sub: agent.id }, scope: 'email:read email:send' });
    expect(payload.jti).toEqual(expect.any(String));
    expect(payload.exp! - payload.iat!).toBe(300);
    expect(payload.authorization_details).toEqual([
      { type: 'capability', grant_id: grants['email:read'].id, actions: ['email:read'], locations: [rs.audience], constraints: [{}], grant_chain: [grants['email:read'].id] },
      { type: 'capability', grant_id: grants['email:send'].id, actions: ['email:send'], locations: [rs.audience], constraints: [{}], grant_chain: [grants['email:send'].id] },
    ]);
    const raw = await tokenCall(agent, { grant_type: TOKEN_EXCHANGE, ...(await exchangeParams('email:read', rs.audience)) });
    expect(raw.headers.get('cache-control')).toBe('no-store');

    const recorded = await call(app.url, 'GET', `/v1/grants/${grants['email:read'].id}/tokens`, { token: await idp.token('alice') });
    expect(recorded.body.data.map((t: { jti: string }) => t.jti)).toContain(payload.jti);
    expect(JSON.stringify(recorded.body)).not.toContain(res.access_token);
  });

  it('records every token of a burst of parallel exchanges, each with its own token.issued event', async () => {
    const { rs, agent, grants } = await setup(['burst:read']);
    // Concurrent exchanges are written together (group commit): each must still get its own record and event.
    const results = await Promise.all(Array.from({ length: 40 }, async () => exchange(as, agent, await exchangeParams('burst:read', rs.audience))));
    const jtis = results.map((r) => decodePayload(r.access_token).jti as string);
    expect(new Set(jtis).size).toBe(40);
    const records = await adminQuery('SELECT jti FROM issued_tokens WHERE jti = ANY($1::uuid[])', [jtis], app.database);
    expect(records.rowCount).toBe(40);
    const events = await adminQuery(`SELECT data->>'jti' AS jti FROM audit_events WHERE type = 'token.issued' AND data->>'jti' = ANY($1)`, [jtis], app.database);
    expect(new Set(events.rows.map((e) => e.jti))).toEqual(new Set(jtis));
    expect(events.rowCount).toBe(40);
    const page = await call(app.url, 'GET', `/v1/grants/${grants['burst:read'].id}/tokens?limit=100`, { token: await idp.token('alice') });
    expect(page.body.data).toHaveLength(40);
  });

  it('carries only granted actions, and refuses when none is granted', async () => {
    const { rs, agent } = await setup(['email:read']);
    const partial = await exchange(as, agent, await exchangeParams('email:read email:delete', rs.audience));
    expect(partial.scope).toBe('email:read');
    expect(decodePayload(partial.access_token).scope).toBe('email:read');
    const none = await tokenCall(agent, { grant_type: TOKEN_EXCHANGE, ...(await exchangeParams('email:delete', rs.audience)) });
    expect(none.status).toBe(400);
    expect(none.body.error).toBe('invalid_scope');
    const noScope = await tokenCall(agent, { grant_type: TOKEN_EXCHANGE, subject_token: await idp.token('alice'), subject_token_type: ACCESS_TOKEN_TYPE, resource: rs.audience });
    expect(noScope.body.error).toBe('invalid_scope');
    const otherPerson = await tokenCall(agent, { grant_type: TOKEN_EXCHANGE, ...(await exchangeParams('email:read', rs.audience, 'bob')) });
    expect(otherPerson.body.error).toBe('invalid_scope');
    const otherAgent = await fx.agent();
    expect((await tokenCall(otherAgent, { grant_type: TOKEN_EXCHANGE, ...(await exchangeParams('email:read', rs.audience)) })).body.error).toBe('invalid_scope');
  });

  it('uses another covering grant when the first one is refused by its constraints', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'email:*', constraints: { source_ip: ['192.0.2.0/24'] } });
    const open = await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'email:read' });
    const res = await exchange(as, agent, await exchangeParams('email:read', rs.audience));
    expect((decodePayload(res.access_token).authorization_details as { grant_id: string }[]).map((d) => d.grant_id)).toEqual([open.id]);
  });

  it('resolves the target from resource or audience, exactly one resource server', async () => {
    const { rs, agent } = await setup(['email:read']);
    const other = await fx.resourceServer();
    const base = { grant_type: TOKEN_EXCHANGE, subject_token: await idp.token('alice'), subject_token_type: ACCESS_TOKEN_TYPE, scope: 'email:read' };
    expect((await tokenCall(agent, { ...base, audience: rs.audience })).status).toBe(200);
    for (const target of [{ resource: 'https://nowhere.example' }, {}, { resource: rs.audience, audience: other.audience }] as Record<string, string>[]) {
      const res = await tokenCall(agent, { ...base, ...target });
      expect(res.status, JSON.stringify(target)).toBe(400);
      expect(res.body.error).toBe('invalid_target');
    }
  });

  it('answers malformed requests with RFC 6749 / RFC 8693 error codes', async () => {
    const { rs, agent } = await setup(['email:read']);
    const good = { grant_type: TOKEN_EXCHANGE, ...(await exchangeParams('email:read', rs.audience)) };
    const cases: [Record<string, string> | string, string][] = [
      [{ ...good, grant_type: 'client_credentials' }, 'unsupported_grant_type'],
      [{ ...good, grant_type: '' }, 'invalid_request'],
      [{ ...good, subject_token: '' }, 'invalid_request'],
      [{ ...good, subject_token_type: 'urn:x' }, 'invalid_request'],
      [{ ...good, actor_token: await idp.token('w') }, 'invalid_request'],
      [{ ...good, actor_token_type: ACCESS_TOKEN_TYPE }, 'invalid_request'],
      [{ ...good, requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }, 'invalid_request'],
      [new URLSearchParams(good).toString() + '&scope=email:read', 'invalid_request'],
    ];
    for (const [form, error] of cases) {
      const res =
        typeof form === 'string'
          ? await call(app.url, 'POST', '/oauth/token', { raw: form, basic: [agent.id, agent.secret], headers: { 'content-type': 'application/x-www-form-urlencoded' } })
          : await tokenCall(agent, form);
      expect(res.status, JSON.stringify(form)).toBe(400);
      expect(res.body.error, JSON.stringify(form)).toBe(error);
      expect(res.body.error_description).toEqual(expect.any(String));
    }
    const json = await call(app.url, 'POST', '/oauth/token', { json: good, basic: [agent.id, agent.secret] });
    expect(json.status).toBe(400);
    expect(json.body.error).toBe('invalid_request');
    const jwt = await tokenCall(agent, { ...good, requested_token_type: 'urn:ietf:params:oauth:token-type:jwt' });
    expect(jwt.body.issued_token_type).toBe('urn:ietf:params:oauth:token-type:jwt');
  });

  it('refuses forged, expired and mistyped subject tokens with invalid_request', async () => {
    const { rs, agent } = await setup(['email:read']);
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: idp.issuer, sub: 'alice', aud: 'procura', iat: now, exp: now + 600 };
    const other = await TestIdp.start();
    const subjects: Record<string, string> = {
      algNone: forge.algNone(claims),
      hs256WithPublicKey: forge.hs256WithPublicKey(claims, idp.jwks().keys[0], idp.jwks().keys[0].kid),
      unknownKid: await idp.token('alice', {}, { kid: 'unknown-kid' }),
      tampered: forge.tamper(await idp.token('bob'), { sub: 'alice' }),
      expired: await idp.token('alice', {}, { expiresIn: -120 }),
      notYetValid: await idp.token('alice', {}, { notBefore: 600 }),
      idTokenAsAccessToken: await idp.idToken('alice'),
      untrustedIssuer: await other.token('alice'),
    };
    for (const [name, subject_token] of Object.entries(subjects)) {
      const res = await tokenCall(agent, { grant_type: TOKEN_EXCHANGE, subject_token, subject_token_type: ACCESS_TOKEN_TYPE, resource: rs.audience, scope: 'email:read' });
      expect(res.status, name).toBe(400);
      expect(res.body.error, name).toBe('invalid_request');
      expect(res.body.error_description, name).toMatch(/subject_token/);
    }
    await other.close();
  });
});

describe('client authentication', () => {
  it('accepts client_secret_post and rejects bad secrets with 401 invalid_client', async () => {
    const { rs, agent } = await setup(['email:read']);
    const form = { grant_type: TOKEN_EXCHANGE, ...(await exchangeParams('email:read', rs.audience)) };
    const post = await tokenCall(null, { ...form, client_id: agent.id, client_secret: agent.secret });
    expect(post.status).toBe(200);
    const badBasic = await tokenCall({ id: agent.id, secret: 'wrong' }, form);
    expect(badBasic.status).toBe(401);
    expect(badBasic.body.error).toBe('invalid_client');
    expect(badBasic.headers.get('www-authenticate')).toMatch(/^Basic/);
    const badPost = await tokenCall(null, { ...form, client_id: agent.id, client_secret: 'wrong' });
    expect(badPost.status).toBe(401);
    expect(badPost.headers.get('www-authenticate')).toBeNull();
    const none = await tokenCall(null, form);
    expect(none.status).toBe(401);
    expect(none.body.error).toBe('invalid_client');
  });

  it('accepts private_key_jwt once per jti (RFC 7523)', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'agent-key', alg: 'ES256' };
    const rs = await fx.resourceServer();
    const agent = await fx.agent({ jwks: { keys: [jwk] } });
    await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'email:read' });
    const res = await oauth.genericTokenEndpointRequest(as, { client_id: agent.id }, oauth.PrivateKeyJwt({ key: privateKey, kid: 'agent-key' }), TOKEN_EXCHANGE, await exchangeParams('email:read', rs.audience), { [oauth.allowInsecureRequests]: true });
    const ok = await oauth.processGenericTokenEndpointResponse(as, { client_id: agent.id }, res);
    expect(decodePayload(ok.access_token).client_id).toBe(agent.id);

    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid: 'agent-key' })
      .setIssuer(agent.id)
      .setSubject(agent.id)
      .setAudience(app.config.issuer)
      .setIssuedAt(now)
      .setExpirationTime(now + 60)
      .sign(privateKey);
    const form = { grant_type: TOKEN_EXCHANGE, ...(await exchangeParams('email:read', rs.audience)), client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion };
    expect((await tokenCall(null, form)).status).toBe(200);
    const replay = await tokenCall(null, form);
    expect(replay.status).toBe(401);
    expect(replay.body.error_description).toMatch(/already been used/);
    const stranger = await generateKeyPair('ES256');
    const forged = await new SignJWT({ jti: randomUUID() }).setProtectedHeader({ alg: 'ES256', kid: 'agent-key' }).setIssuer(agent.id).setSubject(agent.id).setAudience(app.config.issuer).setExpirationTime('1m').sign(stranger.privateKey);
    expect((await tokenCall(null, { ...form, client_assertion: forged })).status).toBe(401);
  });

  it('refuses a disabled agent and makes its tokens inactive', async () => {
    const { rs, agent } = await setup(['email:read']);
    const token = (await exchange(as, agent, await exchangeParams('email:read', rs.audience))).access_token;
    expect((await introspect(as, rs, token)).active).toBe(true);
    expect((await call(app.url, 'POST', `/v1/agents/${agent.id}/disable`, { token: await fx.admin() })).status).toBe(200);
    const res = await tokenCall(agent, { grant_type: TOKEN_EXCHANGE, ...(await exchangeParams('email:read', rs.audience)) });
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
    expect(await introspect(as, rs, token)).toEqual({ active: false });
  });
});

describe('actor tokens and autonomous agents', () => {
  it('identifies the agent by a workload token alone, and refuses one naming another agent', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent({ workload_identity: { issuer: idp.issuer, subject: 'spiffe://example/agent-w' } });
    const other = await fx.agent();
    await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'email:read' });
    const actor = { actor_token: await idp.token('spiffe://example/agent-w', {}, { typ: 'JWT' }), actor_token_type: 'urn:ietf:params:oauth:token-type:jwt' };
    const form = { grant_type: TOKEN_EXCHANGE, ...(await exchangeParams('email:read', rs.audience)), ...actor };
    const res = await tokenCall(null, form);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(decodePayload(res.body.access_token)).toMatchObject({ sub: 'alice', client_id: agent.id, act: { sub: agent.id } });
    expect((await tokenCall(agent, form)).status).toBe(200);
    const mismatch = await tokenCall(other, form);
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.error).toBe('invalid_request');
    const unknown = await tokenCall(null, { ...form, actor_token: await idp.token('spiffe://example/nobody', {}, { typ: 'JWT' }) });
    expect(unknown.body.error).toBe('invalid_request');
  });

  it('issues an autonomous agent a token with itself as subject and no act', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent({ workload_identity: { issuer: idp.issuer, subject: 'spiffe://example/cron' } });
    await fx.grant('admin', { agent_id: agent.id, resource: rs.audience, action: 'reports:build', autonomous: true });
    const workload = await idp.token('spiffe://example/cron');
    const res = await tokenCall(agent, { grant_type: TOKEN_EXCHANGE, subject_token: workload, subject_token_type: ACCESS_TOKEN_TYPE, resource: rs.audience, scope: 'reports:build' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const payload = decodePayload(res.body.access_token);
    expect(payload.sub).toBe(agent.id);
    expect(payload.act).toBeUndefined();
    expect((await introspect(as, rs, res.body.access_token)).active).toBe(true);
  });
});

describe('introspection and per-capability revocation', () => {
  it('narrows a token when one capability is revoked and leaves other grants alone (the README walkthrough)', async () => {
    const { rs, agent, grants } = await setup(['email:read', 'email:send']);
    const both = (await exchange(as, agent, await exchangeParams('email:read email:send', rs.audience))).access_token;
    const sendOnly = (await exchange(as, agent, await exchangeParams('email:send', rs.audience))).access_token;
    const readOnly = (await exchange(as, agent, await exchangeParams('email:read', rs.audience))).access_token;

    const active = await introspect(as, rs, both);
    expect(active).toMatchObject({ active: true, sub: 'alice', client_id: agent.id, aud: rs.audience, iss: app.config.issuer, scope: 'email:read email:send', token_type: 'Bearer', act: { sub: agent.id } });
    for (const claim of ['exp', 'iat', 'jti']) expect(active[claim]).toBeDefined();

    await fx.revoke('alice', grants['email:send'].id, 'no sending');
    const narrowed = await introspect(as, rs, both);
    expect(narrowed.active).toBe(true);
    expect(narrowed.scope).toBe('email:read');
    expect((narrowed.authorization_details as unknown as { grant_id: string }[]).map((d) => d.grant_id)).toEqual([grants['email:read'].id]);
    expect(await introspect(as, rs, sendOnly)).toEqual({ active: false });
    expect((await introspect(as, rs, readOnly)).active).toBe(true);
  });

  it('only lets the audience learn about a token, and only resource servers introspect', async () => {
    const { rs, agent } = await setup(['email:read']);
    const token = (await exchange(as, agent, await exchangeParams('email:read', rs.audience))).access_token;
    const otherRs = await fx.resourceServer();
    expect(await introspect(as, otherRs, token)).toEqual({ active: false });
    const asAgent = await call(app.url, 'POST', '/oauth/introspect', { form: { token }, basic: [agent.id, agent.secret] });
    expect(asAgent.status).toBe(401);
    expect(asAgent.body.error).toBe('invalid_client');
    const anonymous = await call(app.url, 'POST', '/oauth/introspect', { form: { token } });
    expect(anonymous.status).toBe(401);
    const missing = await call(app.url, 'POST', '/oauth/introspect', { form: {}, basic: [rs.id, rs.secret] });
    expect(missing.body.error).toBe('invalid_request');
  });

  it('answers exactly {active:false} for forged, tampered, expired and foreign tokens', async () => {
    const { rs, agent } = await setup(['email:read']);
    const token = (await exchange(as, agent, await exchangeParams('email:read', rs.audience))).access_token;
    const payload = decodePayload(token);
    const jwks = (await call(app.url, 'GET', '/.well-known/jwks.json')).body;
    const bad = {
      tampered: forge.tamper(token, { scope: 'email:read email:send' }),
      algNone: forge.algNone(payload),
      hs256: forge.hs256WithPublicKey(payload, jwks.keys[0], jwks.keys[0].kid),
      personToken: await idp.token('alice', { aud: rs.audience }),
      garbage: 'abc',
    };
    for (const [name, t] of Object.entries(bad)) expect(await introspect(as, rs, t), name).toEqual({ active: false });
  });

  it('revokes a token through RFC 7009 without touching others', async () => {
    const { rs, agent } = await setup(['email:read']);
    const t1 = (await exchange(as, agent, await exchangeParams('email:read', rs.audience))).access_token;
    const t2 = (await exchange(as, agent, await exchangeParams('email:read', rs.audience))).access_token;
    const stranger = await fx.agent();
    await revokeToken(as, stranger, t1);
    expect((await introspect(as, rs, t1)).active).toBe(true);
    await revokeToken(as, agent, t1);
    expect(await introspect(as, rs, t1)).toEqual({ active: false });
    expect((await introspect(as, rs, t2)).active).toBe(true);
    await revokeToken(as, agent, 'not-a-token');
    await revokeToken(as, agent, t1);
    const anon = await call(app.url, 'POST', '/oauth/revoke', { form: { token: t2 } });
    expect(anon.status).toBe(401);
  });

  it('never issues a token on a revoked grant', async () => {
    const { rs, agent, grants } = await setup(['email:read']);
    await fx.revoke('alice', grants['email:read'].id);
    const res = await tokenCall(agent, { grant_type: TOKEN_EXCHANGE, ...(await exchangeParams('email:read', rs.audience)) });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_scope');
  });

  it('caps the lifetime at the grant expiry', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'email:read', expires_at: new Date(Date.now() + 60_000).toISOString() });
    const res = await exchange(as, agent, await exchangeParams('email:read', rs.audience));
    expect(res.expires_in).toBeLessThanOrEqual(60);
    expect(res.expires_in).toBeGreaterThan(50);
  });
});
