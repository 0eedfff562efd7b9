import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startApp, startReplica, TestApp } from './support/app.js';
import { Fixtures } from './support/fixtures.js';
import { decodeClaims, expectOAuthError, Guardrails, Party } from './support/guardrails.js';
import { call } from './support/http.js';
import { TestIdp } from './support/idp.js';

let idp: TestIdp;
let app: TestApp;
let second: TestApp;
let fx: Fixtures;
let g: Guardrails;

beforeAll(async () => {
  idp = await TestIdp.start();
  app = await startApp({ idp });
  // A second API process on the same Postgres, Redis and issuer: approvals must hold across processes.
  second = await startReplica(app, idp);
  fx = new Fixtures(app, idp);
  g = new Guardrails(app, idp, fx);
});
afterAll(async () => {
  await second?.close();
  await app?.close();
  await idp?.close();
});
afterEach(() => {
  vi.useRealTimers();
});

let people = 0;

/** A person of her own per test (alice-1, alice-2...): approval lists never mix tests. */
const newPerson = () => `alice-${++people}`;

/** alice grants an agent `email:send`, which needs her approval for every token. */
async function setup(extra: Record<string, unknown> = {}, agentExtra: Record<string, unknown> = {}) {
  const alice = newPerson();
  const rs = await fx.resourceServer();
  const agent = await fx.agent(agentExtra);
  const grant = await fx.grant(alice, { agent_id: agent.id, resource: rs.audience, action: 'email:send', constraints: { requires_approval: true }, ...extra });
  return { rs, agent, grant, alice };
}

async function pendingApproval(agent: Party, resource: string, alice: string, scope = 'email:send', extra: Record<string, string> = {}) {
  const body = expectOAuthError(await g.exchange(agent, resource, scope, { principal: alice, extra }), 400, 'authorization_pending');
  expect(body.approval_id).toMatch(/^[0-9a-f-]{36}$/);
  expect(body.interval).toBe(5);
  return body.approval_id as string;
}

describe('human approval', () => {
  it('holds the token until the principal approves, then issues exactly one', async () => {
    const { rs, agent, grant, alice } = await setup();
    const id = await pendingApproval(agent, rs.audience, alice, 'email:send', { purpose: 'send the weekly report to finance' });
    // Retrying the same request is waiting on the same approval, on any API process.
    const again = expectOAuthError(await g.exchange(agent, rs.audience, 'email:send', { principal: alice, app: second }), 400, 'authorization_pending');
    expect(again.approval_id).toBe(id);
    expect(await g.grantTokens(alice, grant.id)).toEqual([]);

    const pending = await g.approvals(alice, '?status=pending');
    expect(pending.map((a) => a.id)).toEqual([id]);
    expect(pending[0]).toMatchObject({
      status: 'pending',
      principal: { iss: idp.issuer, sub: alice },
      agent_id: agent.id,
      actor_chain: [agent.id],
      resource: rs.audience,
      actions: ['email:send'],
      grant_ids: [grant.id],
      purpose: 'send the weekly report to finance',
      decided_at: null,
    });
    expect(new Date(pending[0].expires_at).getTime() - new Date(pending[0].created_at).getTime()).toBe(600_000);
    expect(await g.approvals('bob', '?status=pending')).toEqual([]);

    const approved = await g.decide(alice, id, 'approve');
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    expect(approved.body).toMatchObject({ id, status: 'approved', decided_by: `${alice}@${idp.issuer}` });
    expect((await g.decide(alice, id, 'approve')).body.status).toBe('approved'); // idempotent

    const token = await g.token(agent, rs.audience, 'email:send', { principal: alice });
    const claims = decodeClaims(token);
    expect(claims.scope).toBe('email:send');
    expect(claims.authorization_details[0].constraints).toEqual([{ requires_approval: true }]);
    const consumed = await call(app.url, 'GET', `/v1/approvals/${id}`, { token: await idp.token(alice) });
    expect(consumed.body).toMatchObject({ status: 'consumed', token_jti: claims.jti });
    expect((await g.grantTokens(alice, grant.id)).map((t) => t.jti)).toEqual([claims.jti]);

    // One approval, one token: the next request asks again.
    const next = await pendingApproval(agent, rs.audience, alice);
    expect(next).not.toBe(id);
    // Approving the consumed one again changes nothing; denying it now conflicts.
    expect((await g.decide(alice, id, 'approve')).status).toBe(200);
    const conflict = await g.decide(alice, id, 'deny');
    expect(conflict.status).toBe(409);
    expect(conflict.body.code).toBe('approval_already_decided');
  });

  it('answers access_denied after a denial, and keeps the decision', async () => {
    const { rs, agent, alice } = await setup();
    const id = await pendingApproval(agent, rs.audience, alice);
    const denied = await g.decide(alice, id, 'deny', { reason: 'not this week' });
    expect(denied.status).toBe(200);
    expect(denied.body).toMatchObject({ status: 'denied', decision_reason: 'not this week' });
    expectOAuthError(await g.exchange(agent, rs.audience, 'email:send', { principal: alice }), 400, 'access_denied');
    expectOAuthError(await g.exchange(agent, rs.audience, 'email:send', { principal: alice, app: second }), 400, 'access_denied');
    expect((await g.decide(alice, id, 'deny')).status).toBe(200);
    const conflict = await g.decide(alice, id, 'approve');
    expect(conflict.status).toBe(409);
    expect(conflict.body.code).toBe('approval_already_decided');
    expect((await g.approvals(alice, '?status=denied')).map((a) => a.id)).toContain(id);
  });

  it('expires an undecided approval: expired_token once, 409 for a late decision, then a new approval', async () => {
    const { rs, agent, alice } = await setup();
    const t0 = new Date('2030-03-04T10:00:00Z');
    vi.setSystemTime(t0);
    const id = await pendingApproval(agent, rs.audience, alice);
    vi.setSystemTime(new Date(t0.getTime() + 599_000));
    expectOAuthError(await g.exchange(agent, rs.audience, 'email:send', { principal: alice }), 400, 'authorization_pending');
    vi.setSystemTime(new Date(t0.getTime() + 600_000));
    expect((await g.approvals(alice, '?status=expired')).map((a) => a.id)).toContain(id);
    const late = await g.decide(alice, id, 'approve');
    expect(late.status).toBe(409);
    expect(late.body.code).toBe('approval_expired');
    expectOAuthError(await g.exchange(agent, rs.audience, 'email:send', { principal: alice }), 400, 'expired_token');
    const fresh = await pendingApproval(agent, rs.audience, alice);
    expect(fresh).not.toBe(id);
  });

  it('expires an approved approval the agent did not collect in time', async () => {
    const { rs, agent, alice } = await setup();
    const t0 = new Date('2030-03-05T10:00:00Z');
    vi.setSystemTime(t0);
    const id = await pendingApproval(agent, rs.audience, alice);
    expect((await g.decide(alice, id, 'approve')).status).toBe(200);
    vi.setSystemTime(new Date(t0.getTime() + 600_000));
    expectOAuthError(await g.exchange(agent, rs.audience, 'email:send', { principal: alice }), 400, 'expired_token');
    const seen = await call(app.url, 'GET', `/v1/approvals/${id}`, { token: await idp.token(alice) });
    expect(seen.body.status).toBe('expired');
    expect((await g.decide(alice, id, 'approve')).status).toBe(200); // the same decision, still idempotent
  });

  it('lets only the principal decide: never another person, never an agent', async () => {
    const { rs, agent, alice } = await setup({}, { workload_identity: { issuer: idp.issuer, subject: 'spiffe://example/mailer' } });
    await fx.grant(alice, { agent_id: agent.id, resource: rs.audience, action: 'email:read' });
    const procuraToken = await g.token(agent, rs.audience, 'email:read', { principal: alice });
    const id = await pendingApproval(agent, rs.audience, alice);
    const bob = await g.decide('bob', id, 'approve');
    expect(bob.status).toBe(404);
    // The agent's own workload identity is vouched for by a trusted issuer, and is still not a person.
    const asWorkload = await call(app.url, 'POST', `/v1/approvals/${id}/approve`, { token: await idp.token('spiffe://example/mailer'), json: {} });
    expect(asWorkload.status).toBe(403);
    expect(asWorkload.body.code).toBe('agent_cannot_decide');
    const asClient = await call(app.url, 'POST', `/v1/approvals/${id}/approve`, { basic: [agent.id, agent.secret], json: {} });
    expect(asClient.status).toBe(401);
    // Nor is an access token Procura issued to the agent (even one that names alice as its subject).
    const withItsToken = await call(app.url, 'POST', `/v1/approvals/${id}/approve`, { token: procuraToken, json: {} });
    expect(withItsToken.status).toBe(401);
    expectOAuthError(await g.exchange(agent, rs.audience, 'email:send', { principal: alice }), 400, 'authorization_pending');
    expect((await call(app.url, 'GET', `/v1/approvals/${id}`, { token: await idp.token('bob') })).status).toBe(404);
  });

  it('gives concurrent retries one token, not two, across two API processes', async () => {
    const { rs, agent, grant, alice } = await setup();
    const id = await pendingApproval(agent, rs.audience, alice);
    expect((await g.decide(alice, id, 'approve')).status).toBe(200);
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => g.exchange(agent, rs.audience, 'email:send', { principal: alice, app: i % 2 ? second : app })));
    const issued = results.filter((r) => r.status === 200);
    expect(issued).toHaveLength(1);
    for (const r of results.filter((x) => x.status !== 200)) expectOAuthError(r, 400, 'authorization_pending');
    expect(await g.grantTokens(alice, grant.id)).toHaveLength(1);
    const open = (await g.approvals(alice)).filter((a) => a.status === 'pending' || a.status === 'approved');
    expect(open.length).toBeLessThanOrEqual(1); // at most one new request, never a second approved token
  });

  it('checks again at issuance: a grant revoked after approval issues nothing', async () => {
    const { rs, agent, grant, alice } = await setup();
    const id = await pendingApproval(agent, rs.audience, alice);
    expect((await g.decide(alice, id, 'approve')).status).toBe(200);
    await fx.revoke(alice, grant.id, 'changed my mind');
    const res = await g.exchange(agent, rs.audience, 'email:send', { principal: alice });
    expect(res.status).toBe(400);
    expect(res.body.access_token).toBeUndefined();
    expect(await g.grantTokens(alice, grant.id)).toEqual([]);
  });

  it('gates only the capabilities that need approval, and issues the rest with them once approved', async () => {
    const { rs, agent, alice } = await setup();
    await fx.grant(alice, { agent_id: agent.id, resource: rs.audience, action: 'email:read' });
    expect(decodeClaims(await g.token(agent, rs.audience, 'email:read', { principal: alice })).scope).toBe('email:read');
    const id = await pendingApproval(agent, rs.audience, alice, 'email:read email:send');
    const [approval] = await g.approvals(alice, '?status=pending');
    expect(approval).toMatchObject({ id, actions: ['email:send'], scope: 'email:read email:send' });
    await g.decide(alice, id, 'approve');
    expect(decodeClaims(await g.token(agent, rs.audience, 'email:read email:send', { principal: alice })).scope).toBe('email:read email:send');
  });

  it('takes the use when the approved token is issued; a spent budget leaves the approval approved', async () => {
    const { rs, agent, alice } = await setup({ max_uses: 1 });
    const first = await pendingApproval(agent, rs.audience, alice);
    await g.decide(alice, first, 'approve');
    await g.token(agent, rs.audience, 'email:send', { principal: alice });
    const next = await pendingApproval(agent, rs.audience, alice);
    await g.decide(alice, next, 'approve');
    const refused = expectOAuthError(await g.exchange(agent, rs.audience, 'email:send', { principal: alice }), 400, 'access_denied');
    expect(refused.error_description).toMatch(/^budget_exhausted/);
    const seen = await call(app.url, 'GET', `/v1/approvals/${next}`, { token: await idp.token(alice) });
    expect(seen.body.status).toBe('approved');
  });

  it('asks the principal when a sub-grant rests on a grant that requires approval, naming the whole agent chain', async () => {
    const alice = newPerson();
    const rs = await fx.resourceServer();
    const a = await fx.agent();
    const b = await fx.agent();
    const send = await fx.grant(alice, { agent_id: a.id, resource: rs.audience, action: 'email:send', max_delegation_depth: 1, constraints: { requires_approval: true } });
    const sub = await g.delegate(a, send.id, { agent_id: b.id });
    // A gets its upstream token (which itself needs alice's approval), then B exchanges it.
    const upstreamId = await pendingApproval(a, rs.audience, alice);
    await g.decide(alice, upstreamId, 'approve');
    const upstream = await g.token(a, rs.audience, 'email:send', { principal: alice });
    const chained = expectOAuthError(await g.exchange(b, rs.audience, 'email:send', { subjectToken: upstream }), 400, 'authorization_pending');
    const [approval] = await g.approvals(alice, '?status=pending');
    expect(approval).toMatchObject({ id: chained.approval_id, agent_id: b.id, actor_chain: [b.id, a.id], grant_ids: [send.id, sub.id] });
    await g.decide(alice, chained.approval_id, 'approve');
    const token = await g.token(b, rs.audience, 'email:send', { subjectToken: upstream });
    expect(decodeClaims(token).authorization_details[0].grant_chain).toEqual([send.id, sub.id]);
  });

  it("lets an admin decide for an autonomous agent's grant, which no person owns", async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent({ workload_identity: { issuer: idp.issuer, subject: 'spiffe://example/cron' } });
    await fx.grant('admin', { agent_id: agent.id, resource: rs.audience, action: 'reports:publish', autonomous: true, constraints: { requires_approval: true } });
    const workload = await idp.token('spiffe://example/cron');
    const body = expectOAuthError(await g.exchange(agent, rs.audience, 'reports:publish', { subjectToken: workload }), 400, 'authorization_pending');
    expect((await g.decide(newPerson(), body.approval_id, 'approve')).status).toBe(404);
    const byWorkload = await call(app.url, 'POST', `/v1/approvals/${body.approval_id}/approve`, { token: workload, json: {} });
    expect(byWorkload.status).toBe(403);
    expect((await g.decide('admin', body.approval_id, 'approve')).status).toBe(200);
    await g.token(agent, rs.audience, 'reports:publish', { subjectToken: await idp.token('spiffe://example/cron') });
  });

  it('validates the requests of the approvals API', async () => {
    const { rs, agent, alice } = await setup();
    const id = await pendingApproval(agent, rs.audience, alice);
    expect((await call(app.url, 'GET', '/v1/approvals?status=maybe', { token: await idp.token(alice) })).status).toBe(422);
    expect((await call(app.url, 'POST', `/v1/approvals/${id}/deny`, { token: await idp.token(alice), json: { reason: 'x'.repeat(1001) } })).status).toBe(422);
    expect((await call(app.url, 'POST', '/v1/approvals/not-a-uuid/approve', { token: await idp.token(alice), json: {} })).status).toBe(404);
    expect((await call(app.url, 'GET', '/v1/approvals')).status).toBe(401);
    const longPurpose = await g.exchange(agent, rs.audience, 'email:send', { principal: alice, extra: { purpose: 'x'.repeat(1001) } });
    expectOAuthError(longPurpose, 400, 'invalid_request');
  });
});
