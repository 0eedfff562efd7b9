import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, startReplica, TestApp } from './support/app.js';
import { Fixtures } from './support/fixtures.js';
import { decodeClaims, expectOAuthError, Guardrails, pollUntil } from './support/guardrails.js';
import { TestIdp } from './support/idp.js';

let idp: TestIdp;
let app: TestApp;
let second: TestApp;
let fx: Fixtures;
let g: Guardrails;

beforeAll(async () => {
  idp = await TestIdp.start();
  app = await startApp({ idp });
  // A second API process on the same Postgres and the same Redis prefix (and issuer, as behind one load balancer).
  second = await startReplica(app, idp);
  fx = new Fixtures(app, idp);
  g = new Guardrails(app, idp, fx);
});
afterAll(async () => {
  await second?.close();
  await app?.close();
  await idp?.close();
});

async function setup(grant: Record<string, unknown>) {
  const rs = await fx.resourceServer();
  const agent = await fx.agent();
  const created = await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'reports:read', ...grant });
  return { rs, agent, grant: created };
}

/** A delegation chain: alice -> A (root grant) -> B (sub-grant of it). */
async function chain(root: Record<string, unknown>, sub: Record<string, unknown>) {
  const rs = await fx.resourceServer();
  const a = await fx.agent();
  const b = await fx.agent();
  const parent = await fx.grant('alice', { agent_id: a.id, resource: rs.audience, action: 'reports:read', max_delegation_depth: 1, ...root });
  const child = await g.delegate(a, parent.id, { agent_id: b.id, ...sub });
  return { rs, a, b, parent, child };
}

describe('rate limits', () => {
  it('issues max tokens per window, then 429 with Retry-After, and introspection shows the budget', async () => {
    const { rs, agent, grant } = await setup({ rate_limit: { max: 3, window_seconds: 3600 } });
    const tokens: string[] = [];
    for (let i = 0; i < 3; i++) tokens.push(await g.token(agent, rs.audience, 'reports:read'));
    const before = Math.floor(Date.now() / 1000);
    const refused = await g.exchange(agent, rs.audience, 'reports:read');
    const body = expectOAuthError(refused, 429, 'rate_limit_exceeded');
    expect(body.error_description).toMatch(new RegExp(`^rate_limited: grant ${grant.id}`));
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(3500);
    expect(retryAfter).toBeLessThanOrEqual(3600);

    const info = (await g.introspect(rs, tokens[0])).body;
    expect(info.active).toBe(true);
    const budget = info.authorization_details[0].budget;
    expect(budget).toMatchObject({ grant_id: grant.id, used: 3, max: 3 });
    expect(budget.resets_at).toBeGreaterThan(before + 3500);
    expect(budget.resets_at).toBeLessThanOrEqual(before + 3601);
  });

  it('refuses the whole request when one of its capabilities is over its limit', async () => {
    const { rs, agent, grant } = await setup({ rate_limit: { max: 1, window_seconds: 3600 } });
    const free = await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'reports:list' });
    await g.token(agent, rs.audience, 'reports:read');
    const refused = expectOAuthError(await g.exchange(agent, rs.audience, 'reports:read reports:list'), 429, 'rate_limit_exceeded');
    expect(refused.error_description).toContain(grant.id);
    // Nothing was taken from the other capability, which still issues on its own.
    expect(decodeClaims(await g.token(agent, rs.audience, 'reports:list')).authorization_details[0].grant_id).toBe(free.id);
  });

  it('opens a new window once the current one has passed', async () => {
    const { rs, agent } = await setup({ rate_limit: { max: 2, window_seconds: 1 } });
    await g.token(agent, rs.audience, 'reports:read');
    await g.token(agent, rs.audience, 'reports:read');
    const refused = await g.exchange(agent, rs.audience, 'reports:read');
    expectOAuthError(refused, 429, 'rate_limit_exceeded');
    expect(refused.headers.get('retry-after')).toBe('1');
    const next = await pollUntil('the next window', () => g.exchange(agent, rs.audience, 'reports:read'), (r) => r.status !== 429, 3000, 100);
    expect(next.status).toBe(200);
  });

  it('issues exactly max tokens to 50 parallel exchanges spread over two API processes', async () => {
    const { rs, agent, grant } = await setup({ rate_limit: { max: 10, window_seconds: 3600 } });
    const subject = await idp.token('alice');
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => g.exchange(agent, rs.audience, 'reports:read', { subjectToken: subject, app: i % 2 ? second : app })));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(40);
    expect(await g.grantTokens('alice', grant.id)).toHaveLength(10);
    // Both processes see the same counter.
    const token = results.find((r) => r.status === 200)!.body.access_token;
    expect((await g.introspect(rs, token, second)).body.authorization_details[0].budget).toMatchObject({ used: 10, max: 10 });
  });
});

describe('lifetime budgets (max_uses)', () => {
  it('issues max_uses tokens in all, then access_denied: waiting would not help', async () => {
    const { rs, agent, grant } = await setup({ max_uses: 2 });
    const t = await g.token(agent, rs.audience, 'reports:read');
    await g.token(agent, rs.audience, 'reports:read', { app: second });
    const refused = expectOAuthError(await g.exchange(agent, rs.audience, 'reports:read'), 400, 'access_denied');
    expect(refused.error_description).toMatch(new RegExp(`^budget_exhausted: grant ${grant.id}`));
    expect((await g.introspect(rs, t)).body.authorization_details[0].budget).toEqual({ grant_id: grant.id, used: 2, max: 2, resets_at: null });
  });

  it('is exact under concurrency across two processes', async () => {
    const { rs, agent } = await setup({ max_uses: 7 });
    const subject = await idp.token('alice');
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => g.exchange(agent, rs.audience, 'reports:read', { subjectToken: subject, app: i % 2 ? second : app })));
    expect(results.filter((r) => r.status === 200)).toHaveLength(7);
    for (const r of results.filter((x) => x.status !== 200)) expectOAuthError(r, 400, 'access_denied');
  });

  it('shows the binding limit when a grant has both a window and a lifetime budget', async () => {
    const { rs, agent, grant } = await setup({ rate_limit: { max: 5, window_seconds: 3600 }, max_uses: 3 });
    const t = await g.token(agent, rs.audience, 'reports:read');
    expect((await g.introspect(rs, t)).body.authorization_details[0].budget).toEqual({ grant_id: grant.id, used: 1, max: 3, resets_at: null });
  });

  it('shows no budget for an unlimited capability', async () => {
    const { rs, agent } = await setup({});
    const t = await g.token(agent, rs.audience, 'reports:read');
    expect((await g.introspect(rs, t)).body.authorization_details[0].budget).toBeUndefined();
  });
});

describe('limits along a delegation chain', () => {
  it("counts a sub-grant's uses against its parent: the delegate cannot escape the parent's rate limit", async () => {
    const { rs, a, b, parent, child } = await chain({ rate_limit: { max: 5, window_seconds: 3600 } }, { rate_limit: { max: 5, window_seconds: 7200 } });
    const upstream = await g.token(a, rs.audience, 'reports:read'); // parent: 1
    for (let i = 0; i < 4; i++) await g.token(b, rs.audience, 'reports:read', { subjectToken: upstream }); // parent: 5, child: 4
    const refused = expectOAuthError(await g.exchange(b, rs.audience, 'reports:read', { subjectToken: upstream }), 429, 'rate_limit_exceeded');
    expect(refused.error_description).toContain(parent.id);
    expectOAuthError(await g.exchange(a, rs.audience, 'reports:read'), 429, 'rate_limit_exceeded');
    const info = (await g.introspect(rs, upstream)).body.authorization_details[0];
    expect(info.budget).toMatchObject({ grant_id: parent.id, used: 5, max: 5 });
    expect(child.rate_limit).toEqual({ max: 5, window_seconds: 7200 });
  });

  it("cannot escape the parent's lifetime budget, and a narrower own budget binds first", async () => {
    const wide = await chain({ max_uses: 3 }, {});
    expect(wide.child.max_uses).toBe(3); // inherits what the parent has left
    const upstream = await g.token(wide.a, wide.rs.audience, 'reports:read'); // parent: 1
    await g.token(wide.b, wide.rs.audience, 'reports:read', { subjectToken: upstream }); // parent: 2, child: 1
    await g.token(wide.b, wide.rs.audience, 'reports:read', { subjectToken: upstream }); // parent: 3, child: 2
    const refused = expectOAuthError(await g.exchange(wide.b, wide.rs.audience, 'reports:read', { subjectToken: upstream }), 400, 'access_denied');
    expect(refused.error_description).toBe(`budget_exhausted: grant ${wide.parent.id} has used all of its max_uses`);

    const narrow = await chain({ max_uses: 10 }, { max_uses: 2 });
    const up = await g.token(narrow.a, narrow.rs.audience, 'reports:read');
    await g.token(narrow.b, narrow.rs.audience, 'reports:read', { subjectToken: up });
    const chained = await g.token(narrow.b, narrow.rs.audience, 'reports:read', { subjectToken: up });
    const own = expectOAuthError(await g.exchange(narrow.b, narrow.rs.audience, 'reports:read', { subjectToken: up }), 400, 'access_denied');
    expect(own.error_description).toContain(narrow.child.id);
    expect((await g.introspect(narrow.rs, chained)).body.authorization_details[0].budget).toEqual({ grant_id: narrow.child.id, used: 2, max: 2, resets_at: null });
  });
});

describe('uses at /v1/authorize', () => {
  it('covers the first call with a token by its issuance, counts every further allowed call, then rate_limited', async () => {
    const { rs, agent, grant } = await setup({ rate_limit: { max: 3, window_seconds: 3600 } });
    const token = await g.token(agent, rs.audience, 'reports:read'); // use 1
    const ask = (context: Record<string, unknown> = {}) => g.authorize(rs, { token, action: 'reports:read', context });
    expect((await ask()).body).toEqual({ allowed: true, reason: 'allowed', grant_id: grant.id, remaining: 2 }); // covered
    expect((await ask()).body).toEqual({ allowed: true, reason: 'allowed', grant_id: grant.id, remaining: 1 }); // use 2
    expect((await g.authorize(rs, { token, action: 'reports:read' }, second)).body).toEqual({ allowed: true, reason: 'allowed', grant_id: grant.id, remaining: 0 }); // use 3
    expect((await ask()).body).toEqual({ allowed: false, reason: 'rate_limited', grant_id: grant.id, remaining: 0 });
    expectOAuthError(await g.exchange(agent, rs.audience, 'reports:read'), 429, 'rate_limit_exceeded');
  });

  it('lets a delegate use up its parent: its calls count against every grant of the chain', async () => {
    const { rs, a, b, parent } = await chain({ max_uses: 4 }, {});
    const upstream = await g.token(a, rs.audience, 'reports:read'); // 1
    const token = await g.token(b, rs.audience, 'reports:read', { subjectToken: upstream }); // 2
    expect((await g.authorize(rs, { token, action: 'reports:read' })).body.allowed).toBe(true); // covered
    expect((await g.authorize(rs, { token, action: 'reports:read' })).body).toMatchObject({ allowed: true, remaining: 1 }); // 3
    expect((await g.authorize(rs, { token: upstream, action: 'reports:read' })).body).toMatchObject({ allowed: true, remaining: 1 }); // covered
    expect((await g.authorize(rs, { token: upstream, action: 'reports:read' })).body).toMatchObject({ allowed: true, remaining: 0 }); // 4
    expect((await g.authorize(rs, { token, action: 'reports:read' })).body).toEqual({ allowed: false, reason: 'budget_exhausted', grant_id: decodeClaims(token).authorization_details[0].grant_id, remaining: 0 });
    expect(parent.max_uses).toBe(4);
  });

  it('answers remaining null for an unlimited capability, and takes no use for a refused call', async () => {
    const { rs, agent } = await setup({});
    const token = await g.token(agent, rs.audience, 'reports:read');
    expect((await g.authorize(rs, { token, action: 'reports:read' })).body.remaining).toBeNull();
    const limited = await setup({ max_uses: 2, constraints: { args: { report: { prefix: 'q' } } } });
    const t = await g.token(limited.agent, limited.rs.audience, 'reports:read'); // 1
    for (let i = 0; i < 3; i++) {
      expect((await g.authorize(limited.rs, { token: t, action: 'reports:read', context: { report: 'x1' } })).body.reason).toBe('constraint_failed:args.report');
    }
    expect((await g.authorize(limited.rs, { token: t, action: 'reports:read', context: { report: 'q1' } })).body).toMatchObject({ allowed: true, remaining: 1 });
    expect((await g.authorize(limited.rs, { token: t, action: 'reports:read', context: { report: 'q2' } })).body).toMatchObject({ allowed: true, remaining: 0 });
  });
});

describe('when Redis is unreachable', () => {
  it('fails closed: no token for a limited grant (503), no decision (503), introspection without budgets', async () => {
    const { rs, agent } = await setup({ rate_limit: { max: 100, window_seconds: 60 } });
    const token = await g.token(agent, rs.audience, 'reports:read');
    const cut = await startReplica(app, idp, { REDIS_URL: 'redis://127.0.0.1:1' });
    try {
      expectOAuthError(await g.exchange(agent, rs.audience, 'reports:read', { app: cut }), 503, 'temporarily_unavailable');
      const decision = await g.authorize(rs, { token, action: 'reports:read' }, cut);
      expect(decision.status).toBe(503);
      expect(decision.body.code).toBe('service_unavailable');
      const info = (await g.introspect(rs, token, cut)).body;
      expect(info.active).toBe(true);
      expect(info.authorization_details[0].budget).toBeUndefined();
    } finally {
      await cut.close();
    }
  });
});
