import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExpiryService, RetentionService } from '../libs/core/src/index.js';
import { startApp, TestApp, freePort } from './support/app.js';
import { dbUrl } from './support/db.js';
import { Fixtures } from './support/fixtures.js';
import { call } from './support/http.js';
import { TestIdp } from './support/idp.js';
import { ACCESS_TOKEN_TYPE, discover, exchange, introspect, oauth } from './support/oauth.js';
import { until } from './support/poll.js';
import { obliterateQueues, startWorker, TestWorker } from './support/worker.js';

let idp: TestIdp;
let app: TestApp;
let workers: TestWorker[] = [];
let fx: Fixtures;
let as: oauth.AuthorizationServer;

beforeAll(async () => {
  idp = await TestIdp.start();
  app = await startApp({ idp, env: { EXPIRY_SWEEP_SECONDS: '1', AUDIT_SEAL_INTERVAL_MS: '200' } });
  // Two workers on the same database and queues, both running the repeatable sweep every second.
  workers = [await startWorker(app), await startWorker(app, { workerHealthPort: await freePort() })];
  fx = new Fixtures(app, idp);
  as = await discover(app.url);
});
afterAll(async () => {
  for (const w of workers) await w.close();
  if (app) await obliterateQueues(app.config);
  await app?.close();
  await idp?.close();
});

async function sql(text: string, params: unknown[] = []) {
  const client = new pg.Client({ connectionString: dbUrl(app.database) });
  await client.connect();
  try {
    return await client.query(text, params);
  } finally {
    await client.end();
  }
}

/** A sub-grant written directly (delegation has its own API); enough for a subtree. */
async function insertChild(parentId: string): Promise<string> {
  const id = randomUUID();
  await sql(
    `INSERT INTO grants (id, principal_iss, principal_sub, agent_id, resource_server_id, resource, action, parent_id, ancestor_ids, created_by)
     SELECT $1, principal_iss, principal_sub, agent_id, resource_server_id, resource, action, id, ancestor_ids || id, 'test' FROM grants WHERE id = $2`,
    [id, parentId],
  );
  return id;
}

describe('expiry sweep', () => {
  it('expires due grants with their subtrees exactly once, however many workers sweep at the same time', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    const inAnHour = new Date(Date.now() + 3600_000).toISOString();
    const due: string[] = [];
    for (let i = 0; i < 12; i++) due.push((await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: `x:a${i}`, expires_at: inAnHour })).id);
    const keep = (await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'x:keep', expires_at: inAnHour })).id;
    const child = await insertChild(due[0]);
    const grandchild = await insertChild(child);
    const token = await exchange(as, agent, { subject_token: await idp.token('alice'), subject_token_type: ACCESS_TOKEN_TYPE, resource: rs.audience, scope: 'x:a0' });
    expect((await introspect(as, rs, token.access_token)).active).toBe(true);

    // Their time comes while the workers' scheduled sweeps run; race direct calls from both workers too.
    await sql(`UPDATE grants SET expires_at = now() - interval '1 second' WHERE id = ANY($1::uuid[])`, [due]);
    const sweeps = workers.map((w) => w.get(ExpiryService));
    for (let round = 0; round < 5; round++) await Promise.all(sweeps.flatMap((s) => [s.expireDue(new Date(), 3), s.expireDue(new Date(), 3)]));

    const all = [...due, child, grandchild];
    const status = await until(async () => {
      const rows = (await sql('SELECT id, status FROM grants WHERE id = ANY($1::uuid[])', [[...all, keep]])).rows;
      return rows.filter((r) => r.status === 'expired').length === all.length ? rows : undefined;
    }, 'every due grant to expire');
    expect(status.find((r) => r.id === keep).status).toBe('active');

    const events = (await call(app.url, 'GET', `/v1/audit?type=grant.expired&principal=alice&limit=200`, { token: await fx.admin() })).body.data as any[];
    const perGrant = new Map<string, number>();
    for (const e of events) perGrant.set(e.data.grant_id, (perGrant.get(e.data.grant_id) ?? 0) + 1);
    expect([...perGrant.keys()].sort()).toEqual([...all].sort());
    expect([...perGrant.values()].every((n) => n === 1)).toBe(true);
    const byGrant = new Map(events.map((e) => [e.data.grant_id, e]));
    expect(byGrant.get(due[3])).toMatchObject({ actor: 'system', outcome: 'expired', reason: 'expires_at_reached', principal: { sub: 'alice' }, agent_id: agent.id });
    expect(byGrant.get(grandchild)).toMatchObject({ reason: 'ancestor_expired', data: { due_grant_id: due[0] }, grant_ids: [due[0], child, grandchild] });

    // The tombstones are published: the token on an expired grant is inactive at once.
    expect((await introspect(as, rs, token.access_token)).active).toBe(false);
    expect((await call(app.url, 'GET', `/v1/grants/${due[5]}`, { token: await idp.token('alice') })).body.status).toBe('expired');
    // Later sweeps find nothing more to do.
    expect(await sweeps[0].expireDue(new Date())).toEqual({ expired: 0 });
  });
});

describe('retention', () => {
  it('purges token records once they are past expiry plus TOKEN_RETENTION_DAYS, in batches', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    const days = app.config.tokenRetentionDays;
    const insert = (ageDays: number) =>
      sql(
        `INSERT INTO issued_tokens (jti, agent_id, principal_iss, principal_sub, audience, grant_ids, actor_chain, scope, issued_at, expires_at)
         VALUES ($1, $2, 'iss', 'alice', $3, '{}', '[]', 'x:y', now() - make_interval(days => $4), now() - make_interval(days => $4))
         RETURNING jti`,
        [randomUUID(), agent.id, rs.audience, ageDays],
      ).then((r) => r.rows[0].jti as string);
    const old = [];
    for (let i = 0; i < 5; i++) old.push(await insert(days + 1 + i));
    const recent = await insert(days - 1);

    const result = await workers[0].get(RetentionService).purgeTokens(new Date(), 2);
    expect(result.purged).toBe(5);
    const left = (await sql('SELECT jti FROM issued_tokens WHERE jti = ANY($1::uuid[])', [[...old, recent]])).rows.map((r) => r.jti);
    expect(left).toEqual([recent]);
    const [event] = (await call(app.url, 'GET', '/v1/audit?type=retention.purged', { token: await fx.admin() })).body.data;
    expect(event).toMatchObject({ actor: 'system', data: { table: 'issued_tokens', count: 5 } });
  });
});

describe('worker health', () => {
  it('reports Postgres and Redis reachability and when the sweeps last ran', async () => {
    const url = workers[1].healthUrl!;
    const body = await until(async () => {
      const res = await fetch(`${url}/healthz`);
      const json = (await res.json()) as any;
      return res.status === 200 && json.last_expiry_sweep_at && json.last_audit_seal_at ? json : undefined;
    }, 'a healthy report with a completed sweep');
    expect(body).toMatchObject({ status: 'ok', checks: { postgres: 'ok', redis: 'ok' } });
    expect(Date.parse(body.last_expiry_sweep_at)).toBeGreaterThan(Date.now() - 60_000);
    expect((await fetch(`${url}/nope`)).status).toBe(404);
  });
});
