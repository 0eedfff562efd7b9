import fc from 'fast-check';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actionCovers } from '../libs/domain/src/actions.js';
import { startApp, TestApp } from './support/app.js';
import { adminQuery } from './support/db.js';
import { Client, Fixtures } from './support/fixtures.js';
import { call } from './support/http.js';
import { until } from './support/poll.js';
import { decodePayload, TestIdp } from './support/idp.js';
import { ACCESS_TOKEN_TYPE, discover, exchange, introspect, oauth, TOKEN_EXCHANGE } from './support/oauth.js';

const MAX_CHILDREN = 4;

let idp: TestIdp;
let app: TestApp;
let fx: Fixtures;
let as: oauth.AuthorizationServer;

beforeAll(async () => {
  idp = await TestIdp.start();
  // MAX_CHAIN_DEPTH stays at its default (5); a small fan-out limit keeps the children test short.
  app = await startApp({ idp, env: { MAX_CHILDREN_PER_GRANT: String(MAX_CHILDREN) } });
  fx = new Fixtures(app, idp);
  as = await discover(app.url);
});
afterAll(async () => {
  await app?.close();
  await idp?.close();
});

const HOUR = 3_600_000;
const inMs = (ms: number) => new Date(Date.now() + ms).toISOString();

/** POST /v1/grants/:id/delegations, the agent authenticating with client_secret_basic. */
const delegate = (agent: Client, parentId: string, body: Record<string, unknown>) =>
  call(app.url, 'POST', `/v1/grants/${parentId}/delegations`, { basic: [agent.id, agent.secret], json: body });

async function delegateOk(agent: Client, parentId: string, body: Record<string, unknown>) {
  const res = await delegate(agent, parentId, body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

const rulesOf = (res: { body: { errors?: { rule: string }[] } }) => (res.body.errors ?? []).map((e) => e.rule);

/** The person's own token exchanged by the root agent. */
async function rootToken(agent: Client, audience: string, scope: string, principal = 'alice') {
  return (await exchange(as, agent, { subject_token: await idp.token(principal), subject_token_type: ACCESS_TOKEN_TYPE, resource: audience, scope })).access_token;
}

/** Chained exchange: `agent` presents the previous hop's token as subject_token and authenticates as itself. */
async function chainedToken(agent: Client, subjectToken: string, audience: string, scope: string) {
  return (await exchange(as, agent, { subject_token: subjectToken, subject_token_type: ACCESS_TOKEN_TYPE, resource: audience, scope })).access_token;
}

const tokenCall = (client: Client, form: Record<string, string>) => call(app.url, 'POST', '/oauth/token', { form: { grant_type: TOKEN_EXCHANGE, ...form }, basic: [client.id, client.secret] });

const active = async (rs: Client, token: string) => (await introspect(as, rs, token)).active;

async function agents(n: number): Promise<Client[]> {
  return Promise.all(Array.from({ length: n }, () => fx.agent()));
}

describe('sub-delegation chains over HTTP', () => {
  it('chains Alice → A1 → A2 → A3: nested act, grant chains, and revoking the middle hop', async () => {
    const rs = await fx.resourceServer();
    const [a1, a2, a3] = await agents(3);
    const root = await fx.grant('alice', {
      agent_id: a1.id,
      resource: rs.audience,
      action: 'email:*',
      constraints: { source_ip: ['127.0.0.0/8'] },
      rate_limit: { max: 100, window_seconds: 60 },
      max_uses: 1000,
      expires_at: inMs(HOUR),
      max_delegation_depth: 3,
      purpose: 'triage the inbox',
    });

    const g2 = await delegateOk(a1, root.id, { agent_id: a2.id, action: 'email:read', rate_limit: { max: 10, window_seconds: 60 } });
    expect(g2).toMatchObject({
      agent_id: a2.id,
      parent_id: root.id,
      principal: { sub: 'alice', iss: idp.issuer },
      resource: rs.audience,
      action: 'email:read',
      constraints: {},
      rate_limit: { max: 10, window_seconds: 60 },
      max_uses: 1000, // inherited
      expires_at: root.expires_at, // inherited
      max_delegation_depth: 2, // the parent's minus one
      purpose: 'triage the inbox',
      status: 'active',
    });
    const g3 = await delegateOk(a2, g2.id, { agent_id: a3.id, constraints: { max_token_ttl_seconds: 120 }, expires_at: inMs(HOUR / 2), purpose: 'summarize' });
    expect(g3).toMatchObject({ agent_id: a3.id, parent_id: g2.id, action: 'email:read', max_delegation_depth: 1, purpose: 'summarize' });

    const t1 = await rootToken(a1, rs.audience, 'email:read');
    const t2 = await chainedToken(a2, t1, rs.audience, 'email:read');
    const res3 = await exchange(as, a3, { subject_token: t2, subject_token_type: ACCESS_TOKEN_TYPE, resource: rs.audience, scope: 'email:read' });
    const t3 = res3.access_token;
    expect(res3.expires_in).toBeLessThanOrEqual(120); // the leaf's own constraint

    // RFC 8693 §4.1: sub stays the principal, the current actor is outermost.
    expect(decodePayload(t2)).toMatchObject({ sub: 'alice', client_id: a2.id, act: { sub: a2.id, act: { sub: a1.id } }, scope: 'email:read' });
    const p3 = decodePayload(t3);
    expect(p3).toMatchObject({ sub: 'alice', aud: rs.audience, client_id: a3.id, act: { sub: a3.id, act: { sub: a2.id, act: { sub: a1.id } } } });
    expect(p3.authorization_details).toEqual([
      {
        type: 'capability',
        grant_id: g3.id,
        actions: ['email:read'],
        locations: [rs.audience],
        constraints: [{ source_ip: ['127.0.0.0/8'] }, {}, { max_token_ttl_seconds: 120 }],
        grant_chain: [root.id, g2.id, g3.id],
      },
    ]);
    const seen = await introspect(as, rs, t3);
    expect(seen).toMatchObject({ active: true, sub: 'alice', act: { sub: a3.id, act: { sub: a2.id, act: { sub: a1.id } } } });

    // Nobody skips a hop, and nothing beyond the sub-grant is issued.
    expect((await tokenCall(a2, { subject_token: await idp.token('alice'), subject_token_type: ACCESS_TOKEN_TYPE, resource: rs.audience, scope: 'email:read' })).body.error).toBe('invalid_scope');
    expect((await tokenCall(a3, { subject_token: t1, subject_token_type: ACCESS_TOKEN_TYPE, resource: rs.audience, scope: 'email:read' })).body.error).toBe('invalid_scope');
    expect((await tokenCall(a2, { subject_token: t1, subject_token_type: ACCESS_TOKEN_TYPE, resource: rs.audience, scope: 'email:send' })).body.error).toBe('invalid_scope');
    const loopBack = await tokenCall(a1, { subject_token: t2, subject_token_type: ACCESS_TOKEN_TYPE, resource: rs.audience, scope: 'email:read' });
    expect(loopBack.body.error).toBe('invalid_request');

    // Revoking the middle hop (as the principal) ends A2's and A3's tokens; A1's stays.
    const revoked = await fx.revoke('alice', g2.id, 'A2 misbehaved');
    expect(revoked.status).toBe('revoked');
    expect(await introspect(as, rs, t2)).toEqual({ active: false });
    expect(await introspect(as, rs, t3)).toEqual({ active: false });
    expect(await active(rs, t1)).toBe(true);
    const g3After = await call(app.url, 'GET', `/v1/grants/${g3.id}`, { token: await idp.token('alice') });
    expect(g3After.body).toMatchObject({ status: 'revoked', revocation_reason: 'A2 misbehaved' });
    // And nothing new comes out of the dead branch.
    expect((await tokenCall(a2, { subject_token: t1, subject_token_type: ACCESS_TOKEN_TYPE, resource: rs.audience, scope: 'email:read' })).body.error).toBe('invalid_scope');
    expect((await tokenCall(a3, { subject_token: t2, subject_token_type: ACCESS_TOKEN_TYPE, resource: rs.audience, scope: 'email:read' })).body.error).toBe('invalid_request');
    expect(rulesOf(await delegate(a2, g2.id, { agent_id: a3.id }))).toEqual(['parent_not_active']);
  });

  it('enforces a child constraint on top of its parent, and carries the parent constraints into every token', async () => {
    const rs = await fx.resourceServer();
    const [a1, a2, a3] = await agents(3);
    const root = await fx.grant('alice', { agent_id: a1.id, resource: rs.audience, action: 'docs:*', constraints: { max_token_ttl_seconds: 90 }, max_delegation_depth: 2 });
    const fenced = await delegateOk(a1, root.id, { agent_id: a2.id, constraints: { source_ip: ['10.0.0.0/8'] } });
    const open = await delegateOk(a1, root.id, { agent_id: a3.id, action: 'docs:read' });
    const t1 = await rootToken(a1, rs.audience, 'docs:read');
    // The test client calls from 127.0.0.1: the child's own network fence refuses it (no token, whatever the code).
    const fencedOut = await tokenCall(a2, { subject_token: t1, subject_token_type: ACCESS_TOKEN_TYPE, resource: rs.audience, scope: 'docs:read' });
    expect(fencedOut.status).toBe(400);
    expect(fencedOut.body.access_token).toBeUndefined();
    expect(['access_denied', 'invalid_scope']).toContain(fencedOut.body.error);
    const res = await exchange(as, a3, { subject_token: t1, subject_token_type: ACCESS_TOKEN_TYPE, resource: rs.audience, scope: 'docs:read' });
    expect(res.expires_in).toBeLessThanOrEqual(90); // the root's TTL cap holds for the child, which did not repeat it
    expect((decodePayload(res.access_token).authorization_details as { constraints: unknown[] }[])[0].constraints).toEqual([{ max_token_ttl_seconds: 90 }, {}]);
    expect(fenced.constraints).toEqual({ source_ip: ['10.0.0.0/8'] });
    expect(open.constraints).toEqual({});
  });
});

describe('attenuation: a sub-grant can only narrow', () => {
  it('answers every widening with 422 attenuation_violation naming the rule, and creates nothing', async () => {
    const rs = await fx.resourceServer();
    const [a1, a2, a3] = await agents(3);
    const expiresAt = inMs(HOUR);
    const root = await fx.grant('alice', {
      agent_id: a1.id,
      resource: rs.audience,
      action: 'email:*',
      rate_limit: { max: 10, window_seconds: 60 },
      max_uses: 100,
      expires_at: expiresAt,
      max_delegation_depth: 2,
    });
    const cases: [string, Record<string, unknown>, string, string][] = [
      ['a sibling action', { action: 'calendar:read' }, 'action_widened', 'action'],
      ['a wider wildcard', { action: '*' }, 'action_widened', 'action'],
      ['the bare prefix', { action: 'email' }, 'action_widened', 'action'],
      ['a malformed action', { action: 'email:' }, 'invalid_value', 'action'],
      ['a later expiry', { expires_at: new Date(Date.parse(expiresAt) + 1000).toISOString() }, 'expiry_widened', 'expires_at'],
      ['an expiry in the past', { expires_at: inMs(-60_000) }, 'expiry_in_past', 'expires_at'],
      ['a deeper chain', { max_delegation_depth: 2 }, 'depth_widened', 'max_delegation_depth'],
      ['more uses per window', { rate_limit: { max: 11, window_seconds: 60 } }, 'rate_limit_widened', 'rate_limit'],
      ['a shorter window', { rate_limit: { max: 10, window_seconds: 30 } }, 'rate_limit_widened', 'rate_limit'],
      ['no rate limit', { rate_limit: null }, 'rate_limit_widened', 'rate_limit'],
      ['a bigger budget', { max_uses: 101 }, 'budget_widened', 'max_uses'],
      ['an unknown constraint', { constraints: { bogus: true } }, 'invalid_value', 'constraints.bogus'],
      ['an unknown agent', { agent_id: randomUUID() }, 'invalid_value', 'agent_id'],
      ['itself', { agent_id: a1.id }, 'delegation_loop', 'agent_id'],
    ];
    for (const [name, body, rule, field] of cases) {
      const res = await delegate(a1, root.id, { agent_id: a2.id, ...body });
      expect(res.status, name).toBe(422);
      expect(res.headers.get('content-type'), name).toContain('application/problem+json');
      expect(res.body.code, name).toBe('attenuation_violation');
      expect(res.body.errors, name).toEqual([{ field, rule, message: expect.any(String) }]);
      expect(res.body.detail, name).toContain(rule);
    }
    // Every violation at once, so the agent can fix its request in one round trip.
    const all = await delegate(a1, root.id, { agent_id: a2.id, action: '*', expires_at: inMs(2 * HOUR), max_delegation_depth: 5, rate_limit: null, max_uses: 1000 });
    expect(rulesOf(all)).toEqual(['action_widened', 'expiry_widened', 'depth_widened', 'rate_limit_widened', 'budget_widened']);

    // Never silently adjusted: nothing was created by the refusals.
    const tree = await call(app.url, 'GET', `/v1/grants/${root.id}/tree`, { token: await idp.token('alice') });
    expect(tree.body.children).toEqual([]);

    // A grant with no delegation depth, and a sub-grant at the end of its depth, cannot be delegated.
    const leaf = await delegateOk(a1, root.id, { agent_id: a2.id, max_delegation_depth: 0 });
    expect(rulesOf(await delegate(a2, leaf.id, { agent_id: a3.id }))).toEqual(['not_delegatable']);
    const flat = await fx.grant('alice', { agent_id: a1.id, resource: rs.audience, action: 'email:read' });
    const refused = await delegate(a1, flat.id, { agent_id: a2.id });
    expect(refused.status).toBe(422);
    expect(refused.body.errors).toEqual([{ field: 'grant', rule: 'not_delegatable', message: expect.any(String) }]);
  });

  it('inherits every omitted field, and accepts exactly the parent values', async () => {
    const rs = await fx.resourceServer();
    const [a1, a2, a3] = await agents(3);
    const root = await fx.grant('alice', { agent_id: a1.id, resource: rs.audience, action: 'email:*', rate_limit: { max: 5, window_seconds: 10 }, max_uses: 7, expires_at: inMs(HOUR), max_delegation_depth: 3 });
    const inherited = await delegateOk(a1, root.id, { agent_id: a2.id });
    expect(inherited).toMatchObject({ action: 'email:*', rate_limit: { max: 5, window_seconds: 10 }, max_uses: 7, expires_at: root.expires_at, max_delegation_depth: 2, constraints: {} });
    const same = await delegateOk(a1, root.id, { agent_id: a3.id, action: 'email:*', rate_limit: root.rate_limit, max_uses: 7, expires_at: root.expires_at, max_delegation_depth: 2 });
    expect(same.max_delegation_depth).toBe(2);
    // A wildcard child under a wildcard parent, as long as the prefix covers it.
    const drafts = await delegateOk(a2, inherited.id, { agent_id: a3.id, action: 'email:drafts:*' });
    expect(drafts.action).toBe('email:drafts:*');
    expect(rulesOf(await delegate(a3, drafts.id, { agent_id: a1.id, action: 'email:read' }))).toEqual(['delegation_loop', 'action_widened']);
  });

  it('carves a sub-grant budget out of what the parent has left', async () => {
    const rs = await fx.resourceServer();
    const [a1, a2, a3] = await agents(3);
    const root = await fx.grant('alice', { agent_id: a1.id, resource: rs.audience, action: 'email:read', max_uses: 3, max_delegation_depth: 1 });
    await rootToken(a1, rs.audience, 'email:read');
    await rootToken(a1, rs.audience, 'email:read');
    const wider = await delegate(a1, root.id, { agent_id: a2.id, max_uses: 2 });
    expect(wider.status).toBe(422);
    expect(wider.body.errors).toEqual([{ field: 'max_uses', rule: 'budget_widened', message: expect.stringContaining('remaining 1') }]);
    expect((await delegateOk(a1, root.id, { agent_id: a2.id })).max_uses).toBe(1);
    await rootToken(a1, rs.audience, 'email:read'); // the last use
    expect(rulesOf(await delegate(a1, root.id, { agent_id: a3.id }))).toEqual(['budget_exhausted']);
    expect(rulesOf(await delegate(a1, root.id, { agent_id: a3.id, max_uses: 1 }))).toEqual(['budget_exhausted']);
  });

  it('refuses loops and enforces the chain depth and the children limits', async () => {
    const rs = await fx.resourceServer();
    const pool = await agents(7);
    const root = await fx.grant('alice', { agent_id: pool[0].id, resource: rs.audience, action: 'files:*', max_delegation_depth: 10 });

    // A → B → A is refused, as is handing a grant to any agent already in its chain.
    const ab = await delegateOk(pool[0], root.id, { agent_id: pool[1].id });
    const loop = await delegate(pool[1], ab.id, { agent_id: pool[0].id });
    expect(loop.status).toBe(422);
    expect(loop.body.errors).toEqual([{ field: 'agent_id', rule: 'delegation_loop', message: expect.any(String) }]);

    // MAX_CHAIN_DEPTH (default 5): five hops below the root, not six.
    let parent = ab;
    for (let i = 2; i <= 5; i++) parent = await delegateOk(pool[i - 1], parent.id, { agent_id: pool[i].id });
    const tooDeep = await delegate(pool[5], parent.id, { agent_id: pool[6].id });
    expect(tooDeep.status).toBe(422);
    expect(rulesOf(tooDeep)).toEqual(['chain_too_deep']);
    expect(tooDeep.body.detail).toMatch(/depth 5/);

    // MAX_CHILDREN_PER_GRANT counts the live children of one grant.
    const wide = await fx.grant('alice', { agent_id: pool[0].id, resource: rs.audience, action: 'files:*', max_delegation_depth: 1 });
    const children = [];
    for (let i = 1; i <= MAX_CHILDREN; i++) children.push(await delegateOk(pool[0], wide.id, { agent_id: pool[i].id, action: `files:c${i}` }));
    const tooMany = await delegate(pool[0], wide.id, { agent_id: pool[5].id });
    expect(rulesOf(tooMany)).toEqual(['too_many_children']);
    expect(tooMany.body.detail).toMatch(new RegExp(`at most ${MAX_CHILDREN}`));
    await fx.revoke('alice', children[1].id);
    await delegateOk(pool[0], wide.id, { agent_id: pool[5].id });
  });

  it('lets only the grant\'s own agent delegate it, authenticated as an OAuth client', async () => {
    const rs = await fx.resourceServer();
    const [a1, a2, stranger] = await agents(3);
    const root = await fx.grant('alice', { agent_id: a1.id, resource: rs.audience, action: 'email:read', max_delegation_depth: 1 });
    const path = `/v1/grants/${root.id}/delegations`;

    // Someone else's grant, a missing one, and a malformed id all look the same: 404.
    for (const [who, p] of [[stranger, path], [a1, `/v1/grants/${randomUUID()}/delegations`], [a1, '/v1/grants/nope/delegations']] as const) {
      const res = await call(app.url, 'POST', p, { basic: [who.id, who.secret], json: { agent_id: a2.id } });
      expect(res.status, p).toBe(404);
      expect(res.body.code).toBe('not_found');
    }
    // Not the agent: 401 with a Basic challenge, also for a person's Bearer token.
    for (const opts of [{}, { basic: [a1.id, 'wrong'] as [string, string] }, { token: await idp.token('alice') }]) {
      const res = await call(app.url, 'POST', path, { ...opts, json: { agent_id: a2.id } });
      expect(res.status, JSON.stringify(opts)).toBe(401);
      expect(res.body.code).toBe('unauthenticated');
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic/);
    }
    // A disabled agent cannot delegate, nor receive.
    const disabled = await fx.agent();
    expect((await call(app.url, 'POST', `/v1/agents/${disabled.id}/disable`, { token: await fx.admin() })).status).toBe(200);
    expect(rulesOf(await delegate(a1, root.id, { agent_id: disabled.id }))).toEqual(['invalid_value']);

    // client_secret_post in the JSON body works, and the credentials are not taken for request fields.
    const post = await call(app.url, 'POST', path, { json: { client_id: a1.id, client_secret: a1.secret, agent_id: a2.id, action: 'email:read' } });
    expect(post.status, JSON.stringify(post.body)).toBe(201);

    // private_key_jwt in the JSON body, too.
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const keyed = await fx.agent({ jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] } });
    const own = await fx.grant('alice', { agent_id: keyed.id, resource: rs.audience, action: 'email:read', max_delegation_depth: 1 });
    const assertion = await new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(keyed.id)
      .setSubject(keyed.id)
      .setAudience(app.config.issuer)
      .setIssuedAt()
      .setExpirationTime('1m')
      .sign(privateKey);
    const jwtAuth = { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion };
    const viaJwt = await call(app.url, 'POST', `/v1/grants/${own.id}/delegations`, { json: { ...jwtAuth, agent_id: a2.id } });
    expect(viaJwt.status, JSON.stringify(viaJwt.body)).toBe(201);
    const replay = await call(app.url, 'POST', `/v1/grants/${own.id}/delegations`, { json: { ...jwtAuth, agent_id: a1.id } });
    expect(replay.status).toBe(401);
  });
});

describe('cascade, tree and revocation rights', () => {
  it('shows the delegation tree with status, expiry and live tokens, to the principal only', async () => {
    const rs = await fx.resourceServer();
    const [a1, a2, a3, a4] = await agents(4);
    const root = await fx.grant('alice', { agent_id: a1.id, resource: rs.audience, action: 'email:*', max_delegation_depth: 3, expires_at: inMs(HOUR) });
    const b = await delegateOk(a1, root.id, { agent_id: a2.id, action: 'email:read' });
    const c = await delegateOk(a1, root.id, { agent_id: a3.id, action: 'email:send', expires_at: inMs(HOUR / 2) });
    const d = await delegateOk(a2, b.id, { agent_id: a4.id });
    const t1 = await rootToken(a1, rs.audience, 'email:read');
    const t2 = await chainedToken(a2, t1, rs.audience, 'email:read');
    await chainedToken(a4, t2, rs.audience, 'email:read');
    await rootToken(a1, rs.audience, 'email:send');

    const alice = await idp.token('alice');
    const tree = await call(app.url, 'GET', `/v1/grants/${root.id}/tree`, { token: alice });
    expect(tree.status).toBe(200);
    // live_tokens: tokens resting on the grant, i.e. the ones revoking it would end.
    expect(tree.body).toEqual({
      id: root.id,
      agent_id: a1.id,
      action: 'email:*',
      status: 'active',
      expires_at: root.expires_at,
      live_tokens: 4,
      children: [
        { id: b.id, agent_id: a2.id, action: 'email:read', status: 'active', expires_at: root.expires_at, live_tokens: 2, children: [{ id: d.id, agent_id: a4.id, action: 'email:read', status: 'active', expires_at: root.expires_at, live_tokens: 1, children: [] }] },
        { id: c.id, agent_id: a3.id, action: 'email:send', status: 'active', expires_at: c.expires_at, live_tokens: 0, children: [] },
      ],
    });
    const sub = await call(app.url, 'GET', `/v1/grants/${b.id}/tree`, { token: alice });
    expect(sub.body.children.map((n: { id: string }) => n.id)).toEqual([d.id]);
    expect((await call(app.url, 'GET', `/v1/grants/${root.id}/tree`, { token: await fx.admin() })).status).toBe(200);
    expect((await call(app.url, 'GET', `/v1/grants/${root.id}/tree`, { token: await idp.token('bob') })).status).toBe(404);
    expect((await call(app.url, 'GET', `/v1/grants/${randomUUID()}/tree`, { token: alice })).status).toBe(404);
    expect((await call(app.url, 'GET', `/v1/grants/${root.id}/tree`)).status).toBe(401);

    await fx.revoke('alice', b.id);
    const after = (await call(app.url, 'GET', `/v1/grants/${root.id}/tree`, { token: alice })).body;
    expect(after.live_tokens).toBe(2); // A1's two own tokens; the ones through the revoked branch are dead
    expect(after.children[0]).toMatchObject({ status: 'revoked', live_tokens: 0, children: [{ status: 'revoked', live_tokens: 0 }] });
    expect(after.children[1].status).toBe('active');
  });

  it('lets an agent revoke what it delegated, and nothing else', async () => {
    const rs = await fx.resourceServer();
    const [a1, a2, a3, a4, stranger] = await agents(5);
    const root = await fx.grant('alice', { agent_id: a1.id, resource: rs.audience, action: 'email:*', max_delegation_depth: 3 });
    const g2 = await delegateOk(a1, root.id, { agent_id: a2.id });
    const g3 = await delegateOk(a2, g2.id, { agent_id: a3.id });
    const g4 = await delegateOk(a3, g3.id, { agent_id: a4.id });
    const t1 = await rootToken(a1, rs.audience, 'email:read');
    const t2 = await chainedToken(a2, t1, rs.audience, 'email:read');
    const t3 = await chainedToken(a3, t2, rs.audience, 'email:read');
    const t4 = await chainedToken(a4, t3, rs.audience, 'email:read');
    const revokeAs = (agent: Client, id: string) => call(app.url, 'POST', `/v1/grants/${id}/revoke`, { basic: [agent.id, agent.secret], json: { reason: 'agent says so' } });

    // Not created by the caller (its own grant, its parent's, the root, a stranger's view): 404, like a missing grant.
    for (const [who, id] of [[a1, root.id], [a2, g2.id], [a3, g3.id], [a4, g4.id], [a2, root.id], [stranger, g2.id], [stranger, g4.id], [a1, randomUUID()]] as const) {
      const res = await revokeAs(who, id);
      expect(res.status, `${who.id} -> ${id}`).toBe(404);
      expect(res.body.code).toBe('not_found');
    }
    for (const t of [t1, t2, t3, t4]) expect(await active(rs, t)).toBe(true);

    // A3 revokes the sub-grant it created (client_secret_post in the JSON body this time).
    const byPost = await call(app.url, 'POST', `/v1/grants/${g4.id}/revoke`, { json: { client_id: a3.id, client_secret: a3.secret, reason: 'done' } });
    expect(byPost.status, JSON.stringify(byPost.body)).toBe(200);
    expect(byPost.body).toMatchObject({ id: g4.id, status: 'revoked', revoked_by: a3.id, revocation_reason: 'done' });
    expect(await active(rs, t4)).toBe(false);
    expect(await active(rs, t3)).toBe(true);

    // A1 revokes the subtree it created: A2's and A3's tokens go, its own stays.
    const cascade = await revokeAs(a1, g2.id);
    expect(cascade.status).toBe(200);
    expect(cascade.body).toMatchObject({ status: 'revoked', revoked_by: a1.id });
    expect(await active(rs, t2)).toBe(false);
    expect(await active(rs, t3)).toBe(false);
    expect(await active(rs, t1)).toBe(true);
    expect((await revokeAs(a1, g2.id)).status).toBe(200); // idempotent

    // Bad agent credentials: 401 with a Basic challenge; no credentials: both challenges offered.
    const bad = await call(app.url, 'POST', `/v1/grants/${g2.id}/revoke`, { basic: [a1.id, 'wrong'], json: {} });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('www-authenticate')).toMatch(/^Basic/);
    const anonymous = await call(app.url, 'POST', `/v1/grants/${g2.id}/revoke`, { json: {} });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/Bearer.*Basic/);
    // The principal may still revoke anything under them.
    expect((await fx.revoke('alice', root.id)).status).toBe('revoked');
    expect(await active(rs, t1)).toBe(false);
  });

  it('ends the children when a parent expires', async () => {
    const rs = await fx.resourceServer();
    const [a1, a2] = await agents(2);
    const root = await fx.grant('alice', { agent_id: a1.id, resource: rs.audience, action: 'email:read', max_delegation_depth: 2, expires_at: inMs(3500) });
    const child = await delegateOk(a1, root.id, { agent_id: a2.id });
    expect(child.expires_at).toBe(root.expires_at);
    const t1 = await rootToken(a1, rs.audience, 'email:read');
    const t2 = await chainedToken(a2, t1, rs.audience, 'email:read');
    expect(await active(rs, t2)).toBe(true);
    expect(decodePayload(t2).exp).toBeLessThanOrEqual(Math.floor(Date.parse(root.expires_at) / 1000));

    // Observe the expiry with bounded polls of what a user sees, never a fixed sleep: first the chained
    // token goes inactive (its lifetime was capped at the root's expiry), then the tree shows the root expired.
    await until(async () => !(await active(rs, t2)), 'the chained token to go inactive');
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(root.expires_at) - 2500); // it died of the expiry, not earlier
    const treeOf = async () => (await call(app.url, 'GET', `/v1/grants/${root.id}/tree`, { token: await idp.token('alice') })).body;
    await until(async () => (await treeOf()).status === 'expired', 'the root grant to expire');
    expect(await treeOf()).toMatchObject({ status: 'expired', live_tokens: 0, children: [{ status: 'expired', live_tokens: 0 }] });
    expect(await active(rs, t1)).toBe(false);
    expect(rulesOf(await delegate(a1, root.id, { agent_id: a2.id }))).toEqual(['parent_not_active']);
    expect((await tokenCall(a2, { subject_token: t1, subject_token_type: ACCESS_TOKEN_TYPE, resource: rs.audience, scope: 'email:read' })).body.error).toBe('invalid_request');
  });

  it('revokes a 10,000-grant subtree through the API in one transaction', async () => {
    const rs = await fx.resourceServer();
    const [a1, a2, a3, bulk] = await agents(4);
    const root = await fx.grant('alice', { agent_id: a1.id, resource: rs.audience, action: 'email:*', max_delegation_depth: 4 });
    const x = await delegateOk(a1, root.id, { agent_id: a2.id });
    const real = await delegateOk(a2, x.id, { agent_id: a3.id, action: 'email:read' });
    // 100 children of x, each with 99 children: 9,999 generated grants (+ `real`) below x.
    await adminQuery(
      `WITH n AS (SELECT i, md5($1::text || i)::uuid AS id, CASE WHEN i < 100 THEN NULL ELSE md5($1::text || (i % 100))::uuid END AS mid FROM generate_series(0, 9998) i)
       INSERT INTO grants (id, principal_iss, principal_sub, agent_id, resource_server_id, resource, action, parent_id, ancestor_ids, max_delegation_depth, created_by)
       SELECT n.id, g.principal_iss, g.principal_sub, $3::uuid, g.resource_server_id, g.resource, 'email:read', COALESCE(n.mid, g.id),
              CASE WHEN n.mid IS NULL THEN g.ancestor_ids || g.id ELSE g.ancestor_ids || g.id || n.mid END, 0, $4::text
         FROM n, grants g WHERE g.id = $2::uuid`,
      [randomUUID(), x.id, bulk.id, a2.id],
      app.database,
    );
    const below = async (status: string) =>
      Number((await adminQuery(`SELECT count(*) AS n FROM grants WHERE ancestor_ids @> ARRAY[$1]::uuid[] AND status = $2`, [x.id, status], app.database)).rows[0].n);
    expect(await below('active')).toBe(10_000);

    const t1 = await rootToken(a1, rs.audience, 'email:read');
    const t2 = await chainedToken(a2, t1, rs.audience, 'email:read');
    const t3 = await chainedToken(a3, t2, rs.audience, 'email:read');
    const tree = (await call(app.url, 'GET', `/v1/grants/${x.id}/tree`, { token: await idp.token('alice') })).body;
    expect(tree.children).toHaveLength(101);
    expect(tree.children.find((n: { id: string }) => n.id === real.id).live_tokens).toBe(1);

    const started = performance.now();
    const res = await call(app.url, 'POST', `/v1/grants/${x.id}/revoke`, { token: await idp.token('alice'), json: { reason: 'bulk' } });
    const ms = performance.now() - started;
    console.log(`revoked a ${(await below('revoked')) + 1}-grant subtree through the API in ${ms.toFixed(0)} ms`);
    expect(res.status).toBe(200);
    expect(await below('active')).toBe(0);
    expect(await below('revoked')).toBe(10_000);
    expect(await active(rs, t3)).toBe(false);
    expect(await active(rs, t2)).toBe(false);
    expect(await active(rs, t1)).toBe(true);
  }, 120_000);

  it('never leaves a live sub-grant under a revoked grant when delegating and revoking race', async () => {
    const rs = await fx.resourceServer();
    const pool = await agents(MAX_CHILDREN + 2);
    for (let round = 0; round < 5; round++) {
      const root = await fx.grant('alice', { agent_id: pool[0].id, resource: rs.audience, action: 'email:*', max_delegation_depth: 3 });
      const mid = await delegateOk(pool[0], root.id, { agent_id: pool[1].id });
      const racers = pool.slice(2).map((a) => delegate(pool[1], mid.id, { agent_id: a.id }));
      const revoke = call(app.url, 'POST', `/v1/grants/${root.id}/revoke`, { token: await idp.token('alice'), json: {} });
      const results = await Promise.all([...racers, revoke]);
      expect(results.at(-1)!.status).toBe(200);
      for (const r of results.slice(0, -1)) {
        expect([201, 422], JSON.stringify(r.body)).toContain(r.status);
        if (r.status === 422) expect(rulesOf(r)).toEqual(['parent_not_active']);
      }
      const orphans = await adminQuery(
        `SELECT c.id FROM grants c JOIN grants a ON a.id = ANY(c.ancestor_ids) WHERE c.ancestor_ids @> ARRAY[$1]::uuid[] AND c.status = 'active' AND a.status <> 'active'`,
        [root.id],
        app.database,
      );
      expect(orphans.rows).toEqual([]);
    }
  });
});

// ---------------------------------------------------------------- properties

interface Node {
  grant: any;
  agent: Client;
  parent: Node | null;
  /** Root first, this grant last. */
  path: any[];
  agents: Client[];
  children: number;
  /** The latest token resting on this grant, the subject token for the next hop. */
  token?: string;
}

const ACTIONS = ['*', 'email:*', 'email:read', 'email:send', 'email:drafts:*', 'email:drafts:write', 'calendar:read'];
const FENCED = { source_ip: ['10.0.0.0/8'] }; // the tests call from 127.0.0.1: an exchange under it is refused
const CONSTRAINTS: Record<string, unknown>[] = [{}, {}, { source_ip: ['127.0.0.0/8'] }, { max_token_ttl_seconds: 120 }, { args: { to: { glob: '*@example.com' } } }, FENCED];
const rateArb = fc.record({ max: fc.integer({ min: 1, max: 20 }), window_seconds: fc.constantFrom(1, 60, 3600) });

const rootArb = fc.record({
  action: fc.constantFrom('*', 'email:*', 'email:read', 'email:drafts:*'),
  constraints: fc.constantFrom(...CONSTRAINTS.filter((c) => c !== FENCED)),
  rate_limit: fc.option(rateArb, { nil: undefined }),
  max_uses: fc.option(fc.integer({ min: 5, max: 50 }), { nil: undefined }),
  minutes: fc.option(fc.constantFrom(30, 120, 600), { nil: undefined }),
  max_delegation_depth: fc.constantFrom(0, 2, 4, 4, 4),
  scope: fc.option(fc.constantFrom(...ACTIONS), { nil: null, freq: 2 }),
});

/**
 * One requested field: omitted (inherits), or derived from the parent at run time, usually a narrowing
 * of it and one time in four a value that may widen it. Plain data, so failures shrink cheaply.
 */
const fieldArb = fc.option(fc.record({ seed: fc.nat(1000), wide: fc.nat(3).map((n) => n === 0) }), { nil: undefined, freq: 2 });
type Field = { seed: number; wide: boolean } | undefined;

const stepArb = fc.record({
  from: fc.nat(),
  to: fc.nat(),
  action: fieldArb,
  constraints: fc.option(fc.constantFrom(...CONSTRAINTS), { nil: undefined, freq: 2 }),
  rate_limit: fieldArb,
  max_uses: fieldArb,
  expires_at: fieldArb,
  max_delegation_depth: fieldArb,
  /** null: ask for exactly the new sub-grant's action, so chains of exchanges get long enough. */
  scope: fc.option(fc.constantFrom(...ACTIONS), { nil: null, freq: 2 }),
});

/** The delegation request a step stands for, given the parent it is made from. */
function requestFor(p: any, left: number | null, to: Client, s: { action: Field; constraints?: Record<string, unknown>; rate_limit: Field; max_uses: Field; expires_at: Field; max_delegation_depth: Field }) {
  const req: Record<string, unknown> = { agent_id: to.id };
  if (s.action) {
    const narrower = ACTIONS.filter((a) => actionCovers(p.action, a));
    req.action = s.action.wide ? ACTIONS[s.action.seed % ACTIONS.length] : narrower[s.action.seed % narrower.length];
  }
  if (s.constraints) req.constraints = s.constraints;
  if (s.rate_limit) {
    const { seed, wide } = s.rate_limit;
    const pr = p.rate_limit;
    if (wide) req.rate_limit = seed % 3 === 0 ? null : { max: (pr?.max ?? 10) + (seed % 2), window_seconds: Math.max(1, (pr?.window_seconds ?? 60) - (seed % 3)) };
    else req.rate_limit = pr ? { max: 1 + (seed % pr.max), window_seconds: pr.window_seconds * (1 + (seed % 2)) } : seed % 2 ? null : { max: 1 + (seed % 20), window_seconds: 60 };
  }
  if (s.max_uses) {
    const { seed, wide } = s.max_uses;
    req.max_uses = wide ? (left ?? 20) + 1 + (seed % 3) : 1 + (seed % (left || 20));
  }
  if (s.expires_at) {
    const { seed, wide } = s.expires_at;
    const pe = ms(p.expires_at);
    req.expires_at = wide
      ? inMs([-5 * 60_000, 3 * HOUR][seed % 2] + (pe !== null && seed % 2 ? pe - Date.now() : 0))
      : pe !== null
        ? new Date(pe - 1000 * (1 + (seed % 60))).toISOString()
        : inMs((5 + (seed % 100)) * 60_000);
  }
  if (s.max_delegation_depth) {
    const { seed, wide } = s.max_delegation_depth;
    req.max_delegation_depth = wide ? p.max_delegation_depth + (seed % 2) : Math.max(0, p.max_delegation_depth - 1 - (seed % 2));
  }
  return req;
}

const ms = (iso: string | null) => (iso === null ? null : Date.parse(iso));

/** The test's own statement of "only narrows its parent", independent of the server's code. */
function shouldAccept(parent: Node, req: Record<string, any>, now: number, left: number | null): boolean {
  const p = parent.grant;
  if (!(p.max_delegation_depth > 0) || parent.path.length > 5 || parent.children >= MAX_CHILDREN) return false;
  if (parent.agents.some((a) => a.id === req.agent_id)) return false;
  if (req.action !== undefined && !actionCovers(p.action, req.action)) return false;
  if (req.expires_at !== undefined) {
    const e = Date.parse(req.expires_at);
    if (e <= now || (p.expires_at !== null && e > ms(p.expires_at)!)) return false;
  }
  if (req.max_delegation_depth !== undefined && req.max_delegation_depth > p.max_delegation_depth - 1) return false;
  if (req.rate_limit !== undefined && p.rate_limit !== null) {
    if (req.rate_limit === null || req.rate_limit.max > p.rate_limit.max || req.rate_limit.window_seconds < p.rate_limit.window_seconds) return false;
  }
  // The budget is what the parent has left: every token on it, or below it, used one.
  if (req.max_uses !== undefined ? left !== null && req.max_uses > left : left === 0) return false;
  return true;
}

/** A grant is within an ancestor: it can only narrow it. */
function expectWithin(g: any, anc: any) {
  expect(actionCovers(anc.action, g.action), `${g.action} within ${anc.action}`).toBe(true);
  expect(g.resource).toBe(anc.resource);
  expect(g.principal).toEqual(anc.principal);
  if (anc.expires_at !== null) expect(ms(g.expires_at)!).toBeLessThanOrEqual(ms(anc.expires_at)!);
  expect(g.max_delegation_depth).toBeLessThan(anc.max_delegation_depth);
  if (anc.rate_limit !== null) {
    expect(g.rate_limit.max).toBeLessThanOrEqual(anc.rate_limit.max);
    expect(g.rate_limit.window_seconds).toBeGreaterThanOrEqual(anc.rate_limit.window_seconds);
  }
  if (anc.max_uses !== null) expect(g.max_uses).toBeLessThanOrEqual(anc.max_uses);
}

/** An issued token never carries more than its root grant (and every grant along its chain) allows. */
function expectTokenWithin(token: string, node: Node, audience: string, scope: string) {
  const t = decodePayload(token) as any;
  const root = node.path[0];
  expect(t.sub).toBe('alice');
  expect(t.aud).toBe(audience);
  expect(t.scope).toBe(scope);
  expect(t.client_id).toBe(node.agent.id);
  let act = t.act;
  for (const a of [...node.agents].reverse()) {
    expect(act.sub).toBe(a.id);
    act = act.act;
  }
  expect(act).toBeUndefined();
  expect(t.authorization_details).toHaveLength(1);
  const d = t.authorization_details[0];
  expect(d.grant_id).toBe(node.grant.id);
  expect(d.grant_chain).toEqual(node.path.map((g) => g.id));
  expect(d.constraints).toEqual(node.path.map((g) => g.constraints));
  expect(d.constraints[0]).toEqual(root.constraints);
  expect(d.locations).toEqual([audience]);
  for (const g of node.path) {
    for (const a of d.actions) expect(actionCovers(g.action, a)).toBe(true);
    if (g.expires_at !== null) expect(t.exp).toBeLessThanOrEqual(Math.floor(ms(g.expires_at)! / 1000));
    if (g.constraints.max_token_ttl_seconds) expect(t.exp - t.iat).toBeLessThanOrEqual(g.constraints.max_token_ttl_seconds);
  }
}

const fenced = (n: Node) => n.path.some((g) => JSON.stringify(g.constraints) === JSON.stringify(FENCED));

/**
 * Which grant an exchange should rest on, modelled by the test. Every issued token is one use of every
 * grant of its chain (rate limit and max_uses, counted by the guardrails). `used` counts them all, so
 * staying within it is certain to be allowed; going over max_uses is certain to be refused; going over
 * a rate limit is not certain (its window may have moved on). Several covering sub-grants held by the
 * same agent are also left open: any passing one may be chosen.
 */
function expectedExchange(candidates: Node[], scope: string, used: Map<string, number>): { certain: Node | null; possible: Node[] } {
  const usable = candidates.filter((n) => actionCovers(n.grant.action, scope) && !fenced(n));
  const within = (n: Node, strictRate: boolean) =>
    n.path.every((g) => {
      const u = (used.get(g.id) ?? 0) + 1;
      return (g.max_uses === null || u <= g.max_uses) && (!strictRate || g.rate_limit === null || u <= g.rate_limit.max);
    });
  const covering = candidates.filter((n) => actionCovers(n.grant.action, scope));
  const certain = covering.length === 1 && usable.length === 1 && within(usable[0], true) ? usable[0] : null;
  return { certain, possible: usable.filter((n) => within(n, false)) };
}

describe('properties over random chains (fast-check, through the HTTP API)', () => {
  it('no chain of sub-delegations and exchanges exceeds the root; revoking a node ends exactly the tokens below it', async () => {
    const pool = await agents(6);
    const stats = { runs: 0, deepest: 0, refused: 0, chained: 0 };
    await fc.assert(
      fc.asyncProperty(rootArb, fc.array(stepArb, { minLength: 1, maxLength: 10 }), fc.nat(), fc.boolean(), async (r, steps, victimPick, byAgent) => {
        stats.runs++;
        const rs = await fx.resourceServer(); // fresh, so every run's exchanges can only find this run's grants
        const { minutes, scope, ...rootBody } = r;
        const root = await fx.grant('alice', { agent_id: pool[0].id, resource: rs.audience, ...rootBody, ...(minutes ? { expires_at: inMs(minutes * 60_000) } : {}) });
        const nodes: Node[] = [{ grant: root, agent: pool[0], parent: null, path: [root], agents: [pool[0]], children: 0 }];
        const issued: { token: string; node: Node }[] = [];
        const used = new Map<string, number>();

        const tryExchange = async (agent: Client, candidates: Node[], subjectToken: string, scope: string) => {
          const want = expectedExchange(candidates, scope, used);
          const res = await tokenCall(agent, { subject_token: subjectToken, subject_token_type: ACCESS_TOKEN_TYPE, resource: rs.audience, scope });
          if (want.certain) expect(res.status, `${scope}: ${JSON.stringify(res.body)}`).toBe(200);
          if (!want.possible.length) expect(res.status, `${scope}: ${JSON.stringify(res.body)}`).not.toBe(200);
          if (res.status !== 200) {
            expect(res.body.access_token).toBeUndefined();
            return;
          }
          const node = candidates.find((n) => n.grant.id === (decodePayload(res.body.access_token) as any).authorization_details[0].grant_id);
          expect(node && want.possible.includes(node), 'rests on a grant that may carry it').toBe(true);
          expectTokenWithin(res.body.access_token, node!, rs.audience, scope);
          for (const g of node!.path) used.set(g.id, (used.get(g.id) ?? 0) + 1);
          node!.token = res.body.access_token;
          issued.push({ token: res.body.access_token, node: node! });
        };

        await tryExchange(pool[0], nodes, await idp.token('alice'), scope ?? root.action);

        for (const s of steps) {
          const parent = nodes[nodes.length - 1 - (s.from % Math.min(3, nodes.length))]; // mostly grow the newest branches
          const to = pool[s.to % pool.length];
          const left = parent.grant.max_uses === null ? null : parent.grant.max_uses - (used.get(parent.grant.id) ?? 0);
          const req: Record<string, any> = requestFor(parent.grant, left, to, s);
          const expected = shouldAccept(parent, req, Date.now(), left);
          const res = await delegate(parent.agent, parent.grant.id, req);
          expect(res.status, `${JSON.stringify(req)} -> ${JSON.stringify(res.body)}`).toBe(expected ? 201 : 422);
          if (res.status !== 201) {
            stats.refused++;
            expect(res.body.code).toBe('attenuation_violation');
            expect(res.body.errors.length).toBeGreaterThan(0);
            continue;
          }
          const g = res.body;
          // Omitted fields inherit, given ones are kept as asked: never silently adjusted.
          expect(g).toMatchObject({
            parent_id: parent.grant.id,
            agent_id: to.id,
            action: req.action ?? parent.grant.action,
            constraints: req.constraints ?? {},
            rate_limit: req.rate_limit === undefined ? parent.grant.rate_limit : req.rate_limit,
            max_uses: req.max_uses ?? left,
            max_delegation_depth: req.max_delegation_depth ?? parent.grant.max_delegation_depth - 1,
          });
          expect(ms(g.expires_at)).toBe(req.expires_at ? Date.parse(req.expires_at) : ms(parent.grant.expires_at));
          for (const anc of parent.path) expectWithin(g, anc);
          parent.children++;
          nodes.push({ grant: g, agent: to, parent, path: [...parent.path, g], agents: [...parent.agents, to], children: 0 });
          stats.deepest = Math.max(stats.deepest, parent.path.length);

          // Chained exchange: the new holder presents its parent's latest token.
          if (!parent.token) continue;
          const before = issued.length;
          await tryExchange(to, nodes.filter((n) => n.parent === parent && n.agent === to), parent.token, s.scope ?? g.action);
          if (issued.length > before) stats.chained++;
        }

        // Revoke one node (as the principal, or as the agent that created it when it is a sub-grant).
        const victim = nodes[victimPick % nodes.length];
        const creator = victim.parent?.agent;
        const revoked =
          byAgent && creator
            ? await call(app.url, 'POST', `/v1/grants/${victim.grant.id}/revoke`, { basic: [creator.id, creator.secret], json: {} })
            : await call(app.url, 'POST', `/v1/grants/${victim.grant.id}/revoke`, { token: await idp.token('alice'), json: {} });
        expect(revoked.status).toBe(200);
        for (const { token, node } of issued) {
          const below = node.path.some((g) => g.id === victim.grant.id);
          expect(await active(rs, token), `token on ${node.grant.id}, victim ${victim.grant.id}`).toBe(!below);
        }
        // The ledger agrees: exactly the victim's subtree is revoked (the tree endpoint, flattened).
        const statuses = new Map<string, string>();
        const stack = [(await call(app.url, 'GET', `/v1/grants/${root.id}/tree`, { token: await idp.token('alice') })).body];
        while (stack.length) {
          const n = stack.pop();
          statuses.set(n.id, n.status);
          stack.push(...n.children);
        }
        expect(statuses.size).toBe(nodes.length);
        for (const n of nodes) expect(statuses.get(n.grant.id)).toBe(n.path.some((g) => g.id === victim.grant.id) ? 'revoked' : 'active');
      }),
      { numRuns: 30 },
    );
    console.log(`property runs: ${JSON.stringify(stats)}`);
    // Guards against generators that never reach the interesting paths.
    expect(stats.runs).toBeGreaterThanOrEqual(30);
    expect(stats.deepest).toBeGreaterThanOrEqual(2);
    expect(stats.refused).toBeGreaterThan(0);
    expect(stats.chained).toBeGreaterThan(0);
  }, 180_000);
});
