import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobQueues, NotificationsService, QUEUE, SECEVENT, WebhooksService } from '../libs/core/src/index.js';
import { startApp, TestApp } from './support/app.js';
import { dbUrl } from './support/db.js';
import { Fixtures } from './support/fixtures.js';
import { call } from './support/http.js';
import { decodePayload, TestIdp } from './support/idp.js';
import { ACCESS_TOKEN_TYPE, discover, exchange, oauth } from './support/oauth.js';
import { until } from './support/poll.js';
import { WebhookReceiver } from './support/receiver.js';
import { obliterateQueues, startWorker, TestWorker } from './support/worker.js';

const MAX_ATTEMPTS = 3;
const BACKOFF_MS = 50;

let idp: TestIdp;
let app: TestApp;
let worker: TestWorker;
let receiver: WebhookReceiver;
let fx: Fixtures;
let as: oauth.AuthorizationServer;
let approvalsPath: string;

beforeAll(async () => {
  idp = await TestIdp.start();
  receiver = await WebhookReceiver.start();
  approvalsPath = receiver.path('approvals');
  app = await startApp({
    idp,
    env: { WEBHOOK_MAX_ATTEMPTS: String(MAX_ATTEMPTS), WEBHOOK_BACKOFF_MS: String(BACKOFF_MS), WEBHOOK_TIMEOUT_MS: '2000', AUDIT_SEAL_INTERVAL_MS: '200', APPROVAL_WEBHOOK_URL: receiver.url(approvalsPath) },
  });
  worker = await startWorker(app);
  fx = new Fixtures(app, idp);
  as = await discover(app.url);
});
afterAll(async () => {
  await worker?.close();
  if (app) await obliterateQueues(app.config);
  await app?.close();
  await receiver?.close();
  await idp?.close();
});

const jwks = () => createRemoteJWKSet(new URL(`${app.url}/.well-known/jwks.json`));

/** A resource server whose webhook is a fresh path on the receiver, an agent, and a grant on it. */
async function setup(action = 'docs:read') {
  const path = receiver.path('rs');
  const rs = await fx.resourceServer(undefined, { webhook_url: receiver.url(path) });
  const agent = await fx.agent();
  const grant = await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action });
  return { path, rs, agent, grant };
}

async function token(agent: { id: string; secret: string }, audience: string, scope: string) {
  const res = await exchange(as, agent, { subject_token: await idp.token('alice'), subject_token_type: ACCESS_TOKEN_TYPE, resource: audience, scope });
  return decodePayload(res.access_token).jti as string;
}

async function deliveries(rsId: string) {
  const res = await call(app.url, 'GET', `/v1/resource-servers/${rsId}/deliveries`, { token: await fx.admin() });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.data as any[];
}

const settled = (rsId: string, status: string) => until(async () => (await deliveries(rsId)).find((d) => d.status === status), `a ${status} delivery`);

/** A sub-grant written directly (delegation has its own API); enough for a subtree. */
async function insertChild(parent: any, agentId: string): Promise<string> {
  const id = randomUUID();
  const client = new pg.Client({ connectionString: dbUrl(app.database) });
  await client.connect();
  try {
    const [row] = (await client.query('SELECT * FROM grants WHERE id = $1', [parent.id])).rows;
    await client.query(
      `INSERT INTO grants (id, principal_iss, principal_sub, agent_id, resource_server_id, resource, action, parent_id, ancestor_ids, created_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::uuid[], 'test')`,
      [id, row.principal_iss, row.principal_sub, agentId, row.resource_server_id, row.resource, row.action, parent.id, [...row.ancestor_ids, parent.id]],
    );
  } finally {
    await client.end();
  }
  return id;
}

describe('revocation push (RFC 8417 SETs)', () => {
  it('delivers a SET, verifiable with the published JWKS, naming the revoked grants of the subtree and the affected tokens', async () => {
    const { path, rs, agent, grant } = await setup();
    const child = await insertChild(grant, agent.id);
    const jtis = [await token(agent, rs.audience, 'docs:read'), await token(agent, rs.audience, 'docs:read')];
    // A resource server without a webhook, and one whose grants are untouched, hear nothing.
    const quiet = await setup();
    const noHook = await fx.resourceServer();
    await fx.grant('alice', { agent_id: agent.id, resource: noHook.audience, action: 'docs:read' });

    await fx.revoke('alice', grant.id, 'laptop stolen');
    const [req] = await until(() => (receiver.on(path).length ? receiver.on(path) : undefined), 'the SET to arrive');
    expect(req.headers['content-type']).toBe('application/secevent+jwt');
    expect(decodeProtectedHeader(req.body).typ).toBe('secevent+jwt');
    const { payload } = await jwtVerify(req.body, jwks(), { issuer: app.config.issuer, audience: rs.audience, typ: 'secevent+jwt' });
    expect(payload.events).toEqual({ [SECEVENT.grantRevoked]: { grant_ids: [grant.id, child].sort(), jtis: [...jtis].sort(), reason: 'laptop stolen' } });
    expect(payload.jti).toEqual(expect.any(String));

    const [event] = (await call(app.url, 'GET', `/v1/audit?type=grant.revoked&grant_id=${grant.id}`, { token: await fx.admin() })).body.data;
    expect(payload.txn).toBe(event.id);
    expect(event.data).toMatchObject({ cascade_count: 1, revoked_ids: [grant.id, child] });

    const [delivery] = await until(async () => ((await deliveries(rs.id))[0]?.status === 'delivered' ? deliveries(rs.id) : undefined), 'the delivery to be recorded');
    expect(delivery).toMatchObject({ id: payload.jti, event_id: event.id, status: 'delivered', attempts: 1, jtis: [...jtis].sort(), attempt_log: [{ attempt: 1, status_code: 202, outcome: 'delivered', error: null }] });
    expect(receiver.on(quiet.path)).toHaveLength(0);
    expect(await deliveries(quiet.rs.id)).toEqual([]);
    expect(await deliveries(noHook.id)).toEqual([]);
  });

  it('retries with exponential backoff when the receiver fails twice, then delivers the same SET', async () => {
    const { path, rs, grant } = await setup();
    receiver.failNext(path, 2);
    await fx.revoke('alice', grant.id);
    const delivery = await settled(rs.id, 'delivered');
    expect(delivery.attempts).toBe(3);
    expect(delivery.attempt_log.map((a: any) => [a.attempt, a.status_code, a.outcome])).toEqual([
      [1, 500, 'failed'],
      [2, 500, 'failed'],
      [3, 202, 'delivered'],
    ]);
    const requests = receiver.on(path);
    expect(requests.map((r) => r.status)).toEqual([500, 500, 202]);
    // One SET, re-sent: the same jti every time, so a receiver can de-duplicate.
    expect(new Set(requests.map((r) => decodePayload(r.body).jti))).toEqual(new Set([delivery.id]));
    // Waits of at least BACKOFF_MS, then 2 x BACKOFF_MS, between attempts.
    expect(requests[1].at - requests[0].at).toBeGreaterThanOrEqual(BACKOFF_MS * 0.9);
    expect(requests[2].at - requests[1].at).toBeGreaterThanOrEqual(2 * BACKOFF_MS * 0.9);
  });

  it(`moves a delivery to dead_letter after ${MAX_ATTEMPTS} failed attempts`, async () => {
    const { path, rs, grant } = await setup();
    receiver.failNext(path, Infinity);
    await fx.revoke('alice', grant.id);
    const delivery = await settled(rs.id, 'dead_letter');
    expect(delivery).toMatchObject({ attempts: MAX_ATTEMPTS, last_status_code: 500, delivered_at: null });
    expect(delivery.attempt_log.map((a: any) => a.outcome)).toEqual(['failed', 'failed', 'dead_letter']);
    expect(receiver.on(path)).toHaveLength(MAX_ATTEMPTS);
    // The job failed for good in BullMQ too (no retry left).
    const job = await worker.get(JobQueues).queue(QUEUE.webhooks).getJob(`revocation-${delivery.event_id}-${rs.id}`);
    expect(await job?.getState()).toBe('failed');
  });

  it('is idempotent: a job that runs twice, or concurrently, delivers once', async () => {
    const { path, rs, grant } = await setup();
    receiver.slow(path, 300);
    await fx.revoke('alice', grant.id);
    // The outbox row exists once the revoke has returned; race the worker's own job with two more runs.
    const [pending] = await deliveries(rs.id);
    const webhooks = worker.get(WebhooksService);
    const runs = await Promise.all([webhooks.attempt(pending.id, { attemptsMade: 0, maxAttempts: MAX_ATTEMPTS }), webhooks.attempt(pending.id, { attemptsMade: 0, maxAttempts: MAX_ATTEMPTS })]);
    expect(runs.filter((r) => r === 'delivered').length).toBeLessThanOrEqual(1);
    const done = await settled(rs.id, 'delivered');
    expect(done.attempts).toBe(1);

    // BullMQ redelivers a job (at least once): the job id is deterministic and the row is settled.
    const queue = worker.get(JobQueues).queue(QUEUE.webhooks);
    const jobId = `revocation-${done.event_id}-${rs.id}`;
    const job = await until(async () => ((await (await queue.getJob(jobId))?.getState()) === 'completed' ? queue.getJob(jobId) : undefined), 'the original job to complete');
    await job!.remove();
    const rerun = await queue.add('deliver', { deliveryId: done.id }, { jobId });
    await until(async () => (await rerun.getState()) === 'completed', 'the re-run to complete');
    expect((await rerun.getState())).toBe('completed');
    await worker.get(WebhooksService).enqueue([{ ...done, kind: 'grant_revoked', eventId: done.event_id, resourceServerId: rs.id } as never]);
    expect(await queue.getJobCountByTypes('wait', 'active', 'delayed')).toBe(0);

    expect(receiver.on(path)).toHaveLength(1);
    const [after] = await deliveries(rs.id);
    expect(after).toMatchObject({ status: 'delivered', attempts: 1 });
    expect(after.attempt_log).toHaveLength(1);
  });
});

describe('approval notifications', () => {
  it('POSTs each pending approval to APPROVAL_WEBHOOK_URL as a signed SET', async () => {
    const approval = { id: randomUUID(), grant_id: randomUUID(), agent_id: randomUUID(), action: 'payments:send', reason: 'amount above 100 EUR' };
    await app.app.get(NotificationsService).approvalRequested(approval);
    // Twice for the same approval: still one notification.
    await app.app.get(NotificationsService).approvalRequested(approval);
    const [req] = await until(() => (receiver.on(approvalsPath).length ? receiver.on(approvalsPath) : undefined), 'the approval notification');
    const { payload } = await jwtVerify(req.body, jwks(), { issuer: app.config.issuer, audience: receiver.url(approvalsPath), typ: 'secevent+jwt' });
    expect(payload.events).toEqual({ [SECEVENT.approvalRequested]: approval });
    expect(payload.txn).toBe(approval.id);
    expect(receiver.on(approvalsPath)).toHaveLength(1);
  });
});
