import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startApp, startReplica, TestApp } from './support/app.js';
import { Fixtures } from './support/fixtures.js';
import { decodeClaims, expectOAuthError, Guardrails, Party } from './support/guardrails.js';
import { call } from './support/http.js';
import { TestIdp } from './support/idp.js';

let idp: TestIdp;
let app: TestApp;
let proxied: TestApp;
let fx: Fixtures;
let g: Guardrails;

beforeAll(async () => {
  idp = await TestIdp.start();
  app = await startApp({ idp });
  // The same deployment behind a reverse proxy on loopback: only then is X-Forwarded-For believed.
  proxied = await startReplica(app, idp, { TRUSTED_PROXIES: '127.0.0.1' });
  fx = new Fixtures(app, idp);
  g = new Guardrails(app, idp, fx);
});
afterAll(async () => {
  await proxied?.close();
  await app?.close();
  await idp?.close();
});
afterEach(() => {
  vi.useRealTimers();
});

async function setup(constraints: Record<string, unknown>, action = 'payments:send', extra: Record<string, unknown> = {}) {
  const rs = await fx.resourceServer();
  const agent = await fx.agent();
  const grant = await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action, constraints, ...extra });
  return { rs, agent, grant };
}

/** Moves this process's clock (the API runs in it): boundaries are tested to the second, not around "now". */
const at = (iso: string) => vi.setSystemTime(new Date(iso));

async function refusedBecause(agent: Party, resource: string, scope: string, reason: string, opts: Parameters<Guardrails['exchange']>[3] = {}) {
  const body = expectOAuthError(await g.exchange(agent, resource, scope, opts), 400, 'access_denied');
  expect(body.error_description.startsWith(`${reason}: `), body.error_description).toBe(true);
}

const OFFICE_HOURS = { days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '17:00', tz: 'Europe/Berlin' };

describe('constraints are validated when the grant is created', () => {
  it.each([
    ['an unknown constraint', { max_amount: 500 }, 'constraints.max_amount'],
    ['an unknown time_window field', { time_window: { ...OFFICE_HOURS, zone: 'UTC' } }, 'constraints.time_window.zone'],
    ['a malformed time', { time_window: { start: '9:00', end: '17:00' } }, 'constraints.time_window.start'],
    ['an unknown time zone', { time_window: { start: '09:00', end: '17:00', tz: 'Mars/Olympus' } }, 'constraints.time_window.tz'],
    ['an unknown weekday', { time_window: { days: ['monday'], start: '09:00', end: '17:00' } }, 'constraints.time_window.days'],
    ['a bad CIDR', { source_ip: ['10.0.0.1/33'] }, 'constraints.source_ip.0'],
    ['host bits in a CIDR', { source_ip: ['10.0.0.1/8'] }, 'constraints.source_ip.0'],
    ['an unknown argument condition', { args: { amount: { maximum: 500 } } }, 'constraints.args.amount.maximum'],
    ['a non-numeric max', { args: { amount: { max: '500' } } }, 'constraints.args.amount.max'],
    ['min above max', { args: { amount: { min: 10, max: 5 } } }, 'constraints.args.amount.min'],
    ['a non-boolean requires_approval', { requires_approval: 'yes' }, 'constraints.requires_approval'],
    ['a zero max_token_ttl_seconds', { max_token_ttl_seconds: 0 }, 'constraints.max_token_ttl_seconds'],
    ['a not_before without offset', { not_before: '2030-01-01T09:00:00' }, 'constraints.not_before'],
  ])('refuses %s with 422', async (_, constraints, field) => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    const res = await call(app.url, 'POST', '/v1/grants', { token: await idp.token('alice'), json: { agent_id: agent.id, resource: rs.audience, action: 'payments:send', constraints } });
    expect(res.status, JSON.stringify(res.body)).toBe(422);
    expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
  });

  it('puts the constraints of every grant of the chain into the token, for resource servers to enforce locally', async () => {
    const constraints = { not_before: '2020-01-01T00:00:00Z', args: { amount: { max: 500 } }, max_token_ttl_seconds: 120 };
    const { rs, agent, grant } = await setup(constraints);
    const token = await g.token(agent, rs.audience, 'payments:send');
    expect(decodeClaims(token).authorization_details[0]).toMatchObject({ grant_id: grant.id, constraints: [constraints], grant_chain: [grant.id] });
  });
});

describe('time constraints, to the second', () => {
  it('time_window: in at 09:00:00 and until 16:59:59 Berlin time on weekdays, out at 17:00:00 and on Saturdays', async () => {
    const { rs, agent } = await setup({ time_window: OFFICE_HOURS });
    // 2030-01-07 is a Monday; Berlin is UTC+1 in January.
    at('2030-01-07T07:59:59Z');
    await refusedBecause(agent, rs.audience, 'payments:send', 'outside_time_window');
    at('2030-01-07T08:00:00Z');
    await g.token(agent, rs.audience, 'payments:send');
    at('2030-01-07T15:59:59Z');
    await g.token(agent, rs.audience, 'payments:send');
    at('2030-01-07T16:00:00Z');
    await refusedBecause(agent, rs.audience, 'payments:send', 'outside_time_window');
    at('2030-01-12T10:00:00Z'); // Saturday 11:00
    await refusedBecause(agent, rs.audience, 'payments:send', 'outside_time_window');
    at('2030-07-01T07:30:00Z'); // Monday 09:30 in summer time (UTC+2)
    await g.token(agent, rs.audience, 'payments:send');
  });

  it('time_window: a window past midnight belongs to the day it starts', async () => {
    const { rs, agent } = await setup({ time_window: { days: ['fri'], start: '22:00', end: '06:00', tz: 'UTC' } });
    at('2030-01-11T21:59:59Z'); // Friday
    await refusedBecause(agent, rs.audience, 'payments:send', 'outside_time_window');
    at('2030-01-11T22:00:00Z');
    await g.token(agent, rs.audience, 'payments:send');
    at('2030-01-12T05:59:59Z'); // Saturday morning, still Friday's window
    await g.token(agent, rs.audience, 'payments:send');
    at('2030-01-12T06:00:00Z');
    await refusedBecause(agent, rs.audience, 'payments:send', 'outside_time_window');
    at('2030-01-12T23:00:00Z'); // Saturday night: no window starts on Saturday
    await refusedBecause(agent, rs.audience, 'payments:send', 'outside_time_window');
  });

  it('time_window: a token issued inside the window is refused at use once the window closes', async () => {
    const { rs, agent, grant } = await setup({ time_window: OFFICE_HOURS });
    at('2030-01-07T15:58:00Z');
    const token = await g.token(agent, rs.audience, 'payments:send');
    at('2030-01-07T15:59:59Z');
    expect((await g.authorize(rs, { token, action: 'payments:send' })).body).toEqual({ allowed: true, reason: 'allowed', grant_id: grant.id, remaining: null });
    at('2030-01-07T16:00:00Z');
    expect((await g.authorize(rs, { token, action: 'payments:send' })).body).toEqual({ allowed: false, reason: 'outside_time_window', grant_id: grant.id, remaining: null });
  });

  it('not_before: refused one second before, issued at the instant', async () => {
    const { rs, agent } = await setup({ not_before: '2030-02-01T12:00:00+01:00' });
    at('2030-02-01T10:59:59Z');
    await refusedBecause(agent, rs.audience, 'payments:send', 'not_yet_valid');
    at('2030-02-01T11:00:00Z');
    await g.token(agent, rs.audience, 'payments:send');
  });

  it('max_token_ttl_seconds caps the lifetime of the token', async () => {
    const { rs, agent } = await setup({ max_token_ttl_seconds: 60 });
    const res = await g.exchange(agent, rs.audience, 'payments:send');
    expect(res.body.expires_in).toBe(60);
    const claims = decodeClaims(res.body.access_token);
    expect(claims.exp - claims.iat).toBe(60);
  });

  it('narrows the scope when constraints refuse only some capabilities', async () => {
    const { rs, agent } = await setup({});
    await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'payments:refund', constraints: { time_window: { ...OFFICE_HOURS, days: ['sat'] } } });
    at('2030-01-07T10:00:00Z');
    const res = await g.exchange(agent, rs.audience, 'payments:send payments:refund');
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe('payments:send');
  });
});

describe('source_ip', () => {
  const NETWORKS = ['203.0.113.0/24', '2001:db8::/32'];
  const from = (xff: string) => ({ app: proxied, headers: { 'x-forwarded-for': xff } });

  it('allows the first and last address of each network and nothing next to it', async () => {
    const { rs, agent } = await setup({ source_ip: NETWORKS });
    for (const ip of ['203.0.113.0', '203.0.113.255', '2001:db8::1', '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff']) await g.token(agent, rs.audience, 'payments:send', from(ip));
    for (const ip of ['203.0.112.255', '203.0.114.0', '2001:db9::1', '198.51.100.7']) await refusedBecause(agent, rs.audience, 'payments:send', 'source_ip_not_allowed', from(ip));
  });

  it('believes X-Forwarded-For only from a trusted proxy, and only its last hop', async () => {
    const { rs, agent } = await setup({ source_ip: NETWORKS });
    // Not behind a trusted proxy: the header is the agent's own claim and is ignored (the agent is 127.0.0.1).
    await refusedBecause(agent, rs.audience, 'payments:send', 'source_ip_not_allowed', { headers: { 'x-forwarded-for': '203.0.113.5' } });
    // Behind the proxy, a hop the agent prepended itself changes nothing: the proxy saw 198.51.100.7.
    await refusedBecause(agent, rs.audience, 'payments:send', 'source_ip_not_allowed', from('203.0.113.5, 198.51.100.7'));
    await g.token(agent, rs.audience, 'payments:send', from('198.51.100.7, 203.0.113.5'));
  });
});

describe('args, checked against the context of each call at /v1/authorize', () => {
  const ARGS = {
    amount: { min: 1, max: 500 },
    channel: { in: ['#ops', '#alerts'] },
    to: { glob: '*@example.com' },
    path: { prefix: '/reports/' },
    mode: { equals: 'draft' },
  };
  const GOOD = { amount: 120, channel: '#ops', to: 'cfo@example.com', path: '/reports/q1', mode: 'draft' };

  it.each([
    ['all conditions hold', {}, 'allowed'],
    ['amount at max', { amount: 500 }, 'allowed'],
    ['amount at min', { amount: 1 }, 'allowed'],
    ['amount just above max', { amount: 500.01 }, 'constraint_failed:args.amount'],
    ['amount just below min', { amount: 0.99 }, 'constraint_failed:args.amount'],
    ['amount as a string', { amount: '120' }, 'constraint_failed:args.amount'],
    ['amount missing', { amount: undefined }, 'constraint_failed:args.amount'],
    ['channel in the list', { channel: '#alerts' }, 'allowed'],
    ['channel not in the list', { channel: '#random' }, 'constraint_failed:args.channel'],
    ['to matching the glob', { to: '@example.com' }, 'allowed'],
    ['to under another domain', { to: 'cfo@example.com.evil' }, 'constraint_failed:args.to'],
    ['path with the prefix', { path: '/reports/' }, 'allowed'],
    ['path without the prefix', { path: '/report/q1' }, 'constraint_failed:args.path'],
    ['mode equal', { mode: 'draft' }, 'allowed'],
    ['mode different', { mode: 'send' }, 'constraint_failed:args.mode'],
    ['an extra, unconstrained argument', { cc: 'anyone@elsewhere' }, 'allowed'],
  ])('%s', async (_, patch, reason) => {
    const { rs, agent, grant } = await setup({ args: ARGS });
    const token = await g.token(agent, rs.audience, 'payments:send'); // args are not checked at exchange: there is no call yet
    const context = JSON.parse(JSON.stringify({ ...GOOD, ...patch })) as Record<string, unknown>;
    const res = await g.authorize(rs, { token, action: 'payments:send', context });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ allowed: reason === 'allowed', reason, grant_id: grant.id, remaining: null });
  });

  it('fails every constrained argument when there is no context at all', async () => {
    const { rs, agent } = await setup({ args: { amount: { max: 500 } } });
    const token = await g.token(agent, rs.audience, 'payments:send');
    expect((await g.authorize(rs, { token, action: 'payments:send' })).body.reason).toBe('constraint_failed:args.amount');
  });
});

describe('a sub-grant cannot escape its parent', () => {
  async function delegated(parentConstraints: Record<string, unknown>, childConstraints: Record<string, unknown>) {
    const rs = await fx.resourceServer();
    const a = await fx.agent();
    const b = await fx.agent();
    const parent = await fx.grant('alice', { agent_id: a.id, resource: rs.audience, action: 'payments:send', max_delegation_depth: 1, constraints: parentConstraints });
    const child = await g.delegate(a, parent.id, { agent_id: b.id, constraints: childConstraints });
    return { rs, a, b, parent, child };
  }

  it("keeps the parent's amount limit even when the sub-grant claims a wider one", async () => {
    const { rs, a, b, child } = await delegated({ args: { amount: { max: 500 } } }, { args: { amount: { max: 1000 } } });
    const upstream = await g.token(a, rs.audience, 'payments:send');
    const token = await g.token(b, rs.audience, 'payments:send', { subjectToken: upstream });
    expect(decodeClaims(token).authorization_details[0].constraints).toEqual([{ args: { amount: { max: 500 } } }, { args: { amount: { max: 1000 } } }]);
    expect((await g.authorize(rs, { token, action: 'payments:send', context: { amount: 700 } })).body).toMatchObject({ allowed: false, reason: 'constraint_failed:args.amount', grant_id: child.id });
    expect((await g.authorize(rs, { token, action: 'payments:send', context: { amount: 500 } })).body).toMatchObject({ allowed: true, grant_id: child.id });
  });

  it("keeps the sub-grant's own narrower limit too (AND along the chain)", async () => {
    const { rs, a, b } = await delegated({ args: { amount: { max: 500 } } }, { args: { amount: { max: 100 } } });
    const token = await g.token(b, rs.audience, 'payments:send', { subjectToken: await g.token(a, rs.audience, 'payments:send') });
    expect((await g.authorize(rs, { token, action: 'payments:send', context: { amount: 101 } })).body.reason).toBe('constraint_failed:args.amount');
    expect((await g.authorize(rs, { token, action: 'payments:send', context: { amount: 100 } })).body.allowed).toBe(true);
  });

  it("keeps the parent's time window: no chained token and no use after it closes", async () => {
    const { rs, a, b, child } = await delegated({ time_window: OFFICE_HOURS }, {});
    at('2030-01-07T15:58:00Z');
    const upstream = await g.token(a, rs.audience, 'payments:send');
    const token = await g.token(b, rs.audience, 'payments:send', { subjectToken: upstream });
    at('2030-01-07T16:00:00Z');
    await refusedBecause(b, rs.audience, 'payments:send', 'outside_time_window', { subjectToken: upstream });
    expect((await g.authorize(rs, { token, action: 'payments:send' })).body).toEqual({ allowed: false, reason: 'outside_time_window', grant_id: child.id, remaining: null });
  });

  it("keeps the parent's source_ip networks at the delegate's exchange", async () => {
    const { rs, a, b } = await delegated({ source_ip: ['203.0.113.0/24'] }, {});
    const upstream = await g.token(a, rs.audience, 'payments:send', { app: proxied, headers: { 'x-forwarded-for': '203.0.113.9' } });
    await refusedBecause(b, rs.audience, 'payments:send', 'source_ip_not_allowed', { subjectToken: upstream, app: proxied, headers: { 'x-forwarded-for': '198.51.100.7' } });
    await g.token(b, rs.audience, 'payments:send', { subjectToken: upstream, app: proxied, headers: { 'x-forwarded-for': '203.0.113.10' } });
  });
});

describe('/v1/authorize decisions', () => {
  it('answers stable reason codes for every way a call can be refused', async () => {
    const { rs, agent, grant } = await setup({});
    const read = await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'payments:read' });
    const token = await g.token(agent, rs.audience, 'payments:send payments:read');
    const ask = (body: Record<string, unknown>, who: Party = rs) => g.authorize(who, { token, ...body });

    expect((await ask({ action: 'payments:send' })).body).toEqual({ allowed: true, reason: 'allowed', grant_id: grant.id, remaining: null });
    expect((await ask({ action: 'payments:send', resource: `${rs.audience}/accounts/42` })).body.allowed).toBe(true);
    expect((await ask({ action: 'payments:send', resource: `${rs.audience}.evil.example` })).body).toEqual({ allowed: false, reason: 'resource_not_granted', grant_id: grant.id, remaining: null });
    expect((await ask({ action: 'payments:delete' })).body).toEqual({ allowed: false, reason: 'action_not_granted', grant_id: null, remaining: null });

    await fx.revoke('alice', read.id);
    expect((await ask({ action: 'payments:read' })).body).toEqual({ allowed: false, reason: 'capability_revoked', grant_id: read.id, remaining: null });
    expect((await ask({ action: 'payments:send' })).body.allowed).toBe(true);
    await fx.revoke('alice', grant.id);
    expect((await ask({ action: 'payments:send' })).body).toEqual({ allowed: false, reason: 'capability_revoked', grant_id: grant.id, remaining: null });

    // Another resource server learns nothing about a token that is not addressed to it.
    const other = await fx.resourceServer();
    expect((await ask({ action: 'payments:send' }, other)).body).toEqual({ allowed: false, reason: 'token_inactive', grant_id: null, remaining: null });
    expect((await g.authorize(rs, { token: 'not-a-token', action: 'payments:send' })).body.reason).toBe('token_inactive');
  });

  it('treats a revoked token and a disabled agent as inactive', async () => {
    const { rs, agent } = await setup({});
    const token = await g.token(agent, rs.audience, 'payments:send');
    const other = await g.token(agent, rs.audience, 'payments:send');
    await call(app.url, 'POST', '/oauth/revoke', { form: { token }, basic: [agent.id, agent.secret] });
    expect((await g.authorize(rs, { token, action: 'payments:send' })).body.reason).toBe('token_inactive');
    expect((await g.authorize(rs, { token: other, action: 'payments:send' })).body.allowed).toBe(true);
    expect((await call(app.url, 'POST', `/v1/agents/${agent.id}/disable`, { token: await fx.admin() })).status).toBe(200);
    expect((await g.authorize(rs, { token: other, action: 'payments:send' })).body.reason).toBe('token_inactive');
  });

  it('authenticates the resource server: Basic or credentials in the body; agents and strangers get 401', async () => {
    const { rs, agent } = await setup({});
    const token = await g.token(agent, rs.audience, 'payments:send');
    const inBody = await call(app.url, 'POST', '/v1/authorize', { json: { token, action: 'payments:send', client_id: rs.id, client_secret: rs.secret } });
    expect(inBody.status).toBe(200);
    expect(inBody.body.allowed).toBe(true);
    expect(inBody.headers.get('cache-control')).toBe('no-store');
    for (const basic of [[agent.id, agent.secret], [rs.id, 'wrong']] as [string, string][]) {
      const res = await call(app.url, 'POST', '/v1/authorize', { json: { token, action: 'payments:send' }, basic });
      expect(res.status).toBe(401);
      expect(res.body.code).toBe('unauthenticated');
    }
    expect((await call(app.url, 'POST', '/v1/authorize', { json: { token, action: 'payments:send' } })).status).toBe(401);
  });

  it('validates the request body', async () => {
    const { rs } = await setup({});
    for (const body of [{ action: 'payments:send' }, { token: 't' }, { token: 't', action: 'payments:send', context: [1] }, { token: 't', action: 'payments:send', extra: 1 }]) {
      const res = await g.authorize(rs, body);
      expect(res.status, JSON.stringify(body)).toBe(422);
    }
  });
});
