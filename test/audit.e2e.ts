import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditService, QueuedRow, verifyChainAt } from '../libs/core/src/index.js';
import { uuidv7 } from '../libs/domain/src/ids.js';
import { startApp, TestApp } from './support/app.js';
import { dbUrl } from './support/db.js';
import { Fixtures } from './support/fixtures.js';
import { call } from './support/http.js';
import { decodePayload, TestIdp } from './support/idp.js';
import { ACCESS_TOKEN_TYPE, discover, exchange, introspect, oauth, revokeToken } from './support/oauth.js';
import { until } from './support/poll.js';
import { obliterateQueues, startWorker, TestWorker } from './support/worker.js';

let idp: TestIdp;
let app: TestApp;
let worker: TestWorker;
let fx: Fixtures;
let as: oauth.AuthorizationServer;

beforeAll(async () => {
  idp = await TestIdp.start();
  app = await startApp({ idp, env: { AUDIT_FLUSH_MS: '20', AUDIT_SEAL_INTERVAL_MS: '100', AUDIT_COALESCE_MS: '1000' } });
  worker = await startWorker(app);
  fx = new Fixtures(app, idp);
  as = await discover(app.url);
});
afterAll(async () => {
  await worker?.close();
  if (app) await obliterateQueues(app.config);
  await app?.close();
  await idp?.close();
});

const audit = async (as: string, query: Record<string, string> = {}) => {
  const res = await call(app.url, 'GET', `/v1/audit?${new URLSearchParams(query)}`, { token: await idp.token(as) });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as { data: any[]; next_cursor: string | null };
};

/** Polls until an event of `type` matching `where` is listed (async events travel through the worker). */
const eventually = (type: string, where: (e: any) => boolean = () => true, query: Record<string, string> = {}) =>
  until(async () => (await audit('admin', { type, ...query })).data.find(where), `a ${type} event`);

const exchangeParams = async (scope: string, resource: string, sub = 'alice') => ({
  subject_token: await idp.token(sub),
  subject_token_type: ACCESS_TOKEN_TYPE,
  resource,
  scope,
});

/** Bypasses the append-only trigger, as someone with superuser rights on the database could. */
async function tamper(sql: string, params: unknown[]): Promise<void> {
  const client = new pg.Client({ connectionString: dbUrl(app.database) });
  await client.connect();
  try {
    await client.query('SET session_replication_role = replica');
    await client.query(sql, params);
  } finally {
    await client.end();
  }
}

async function allSealed() {
  return until(async () => {
    const v = (await call(app.url, 'GET', '/v1/audit/verify', { token: await fx.admin() })).body;
    return v.unsealed === 0 && v.checked > 0 ? v : undefined;
  }, 'every event to be sealed');
}

describe('the audit trail', () => {
  it('answers who authorized, which agent, which capability, on what, why, when and with what outcome', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    const grant = await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'docs:read', purpose: 'summarize the Q3 reports' });

    // Transactional: the event is there as soon as the grant is, before any worker touches it.
    const created = (await audit('alice', { grant_id: grant.id })).data;
    expect(created).toHaveLength(1);
    expect(created[0]).toMatchObject({
      type: 'grant.created',
      actor: `alice@${idp.issuer}`,
      actor_type: 'person',
      principal: { iss: idp.issuer, sub: 'alice' },
      agent_id: agent.id,
      grant_ids: [grant.id],
      resource: rs.audience,
      actions: ['docs:read'],
      purpose: 'summarize the Q3 reports',
      outcome: 'created',
    });
    expect(Date.parse(created[0].occurred_at)).toBeGreaterThan(Date.now() - 60_000);

    const token = await exchange(as, agent, await exchangeParams('docs:read', rs.audience));
    const jti = decodePayload(token.access_token).jti;
    const issued = (await audit('alice', { grant_id: grant.id, type: 'token.issued' })).data;
    expect(issued).toHaveLength(1);
    expect(issued[0]).toMatchObject({ actor: agent.id, actor_type: 'agent', agent_id: agent.id, actor_chain: [agent.id], grant_ids: [grant.id], principal: { sub: 'alice' }, outcome: 'issued' });
    expect(issued[0].data).toMatchObject({ jti, scope: 'docs:read', lifetime_seconds: token.expires_in, capabilities: [{ grant_id: grant.id, actions: ['docs:read'], grant_chain: [grant.id] }] });

    // Refusals carry their OAuth error code; introspections their decision (both via the queue).
    const refused = await tokenCall(agent, { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', ...(await exchangeParams('docs:delete', rs.audience)) });
    expect(refused.body.error).toBe('invalid_scope');
    const refusal = await eventually('exchange.refused', (e) => e.agent_id === agent.id);
    expect(refusal).toMatchObject({ outcome: 'refused', reason: 'invalid_scope', resource: rs.audience, actions: ['docs:delete'], principal: { iss: idp.issuer, sub: 'alice' } });

    // Three introspections of one token by one resource server within the window: one event that counts them.
    for (let i = 0; i < 3; i++) expect((await introspect(as, rs, token.access_token)).active).toBe(true);
    const decision = await eventually('token.introspected', (e) => e.data.jti === jti);
    expect(decision).toMatchObject({ actor: rs.id, actor_type: 'resource_server', outcome: 'active', grant_ids: [grant.id], agent_id: agent.id, actions: ['docs:read'], data: { count: 3 } });
    expect(decision.data.last_at).toEqual(expect.any(String));

    await revokeToken(as, agent, token.access_token);
    expect((await audit('alice', { type: 'token.revoked', grant_id: grant.id })).data[0]).toMatchObject({ actor: agent.id, outcome: 'revoked', data: { jti } });
    expect((await introspect(as, rs, token.access_token)).active).toBe(false);
    expect(await eventually('token.introspected', (e) => e.data.jti === jti && e.outcome === 'inactive')).toMatchObject({ reason: 'revoked_or_expired' });

    await fx.revoke('alice', grant.id, 'project finished');
    const revoked = (await audit('alice', { type: 'grant.revoked', grant_id: grant.id })).data;
    expect(revoked).toHaveLength(1);
    expect(revoked[0]).toMatchObject({ actor: `alice@${idp.issuer}`, reason: 'project finished', data: { cascade_count: 0, revoked_ids: [grant.id] } });
    // Revoking again changes nothing and records nothing.
    await fx.revoke('alice', grant.id);
    expect((await audit('alice', { type: 'grant.revoked', grant_id: grant.id })).data).toHaveLength(1);

    // No secrets: neither the token nor the client secret appear anywhere in the trail.
    const dump = (await call(app.url, 'GET', '/v1/audit/export', { token: await fx.admin() })).body as string;
    expect(dump).toContain(jti);
    expect(dump).not.toContain(token.access_token);
    expect(dump).not.toContain(token.access_token.split('.')[2]);
    expect(dump).not.toContain(agent.secret);
    expect(dump).not.toContain(rs.secret);
  });

  it('records administration: agents registered and disabled, keys rotated', async () => {
    const agent = await fx.agent({ name: 'reporter' });
    const disabled = await call(app.url, 'POST', `/v1/agents/${agent.id}/disable`, { token: await fx.admin() });
    expect(disabled.status).toBe(200);
    const events = (await audit('admin', { agent_id: agent.id })).data;
    expect(events.map((e) => e.type).sort()).toEqual(['agent.disabled', 'agent.registered']);
    expect(events.find((e) => e.type === 'agent.registered')).toMatchObject({ actor: `admin@${idp.issuer}`, data: { name: 'reporter' } });
    expect(JSON.stringify(events)).not.toContain(agent.secret);

    const rotated = await call(app.url, 'POST', '/v1/keys/rotate', { token: await fx.admin() });
    const keyEvents = (await audit('admin', { type: 'key.rotated' })).data;
    expect(keyEvents[0]).toMatchObject({ actor: `admin@${idp.issuer}`, data: { kid: rotated.body.kid, retired_kid: rotated.body.retired_kid } });
  });

  it('shows a person only the events about their own grants; admins see everything', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    const alices = await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'mail:read' });
    const bobs = await fx.grant('bob', { agent_id: agent.id, resource: rs.audience, action: 'mail:read' });

    const seenByBob = (await audit('bob', { limit: '200' })).data;
    expect(seenByBob.some((e) => e.grant_ids.includes(bobs.id))).toBe(true);
    expect(seenByBob.some((e) => e.grant_ids.includes(alices.id))).toBe(false);
    expect(seenByBob.every((e) => e.principal?.sub === 'bob' || e.grant_ids.length > 0)).toBe(true);
    expect((await audit('bob', { grant_id: alices.id })).data).toEqual([]);
    expect((await audit('bob', { agent_id: agent.id })).data.every((e) => e.principal.sub === 'bob')).toBe(true);
    expect((await audit('admin', { grant_id: alices.id })).data).toHaveLength(1);

    // Not even agent registrations (admin business) leak to people.
    expect(seenByBob.some((e) => e.type.startsWith('agent.'))).toBe(false);
    const bobExport = (await call(app.url, 'GET', '/v1/audit/export', { token: await idp.token('bob') })).body as string;
    expect(bobExport).not.toContain(alices.id);
    expect((await call(app.url, 'GET', '/v1/audit/verify', { token: await idp.token('bob') })).status).toBe(403);
  });

  it('filters by principal, type and time, and pages with a cursor', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    const before = new Date().toISOString();
    const ids = [];
    for (const action of ['a:one', 'a:two', 'a:three', 'a:four', 'a:five']) ids.push((await fx.grant('carol', { agent_id: agent.id, resource: rs.audience, action })).id);
    const after = new Date(Date.now() + 1).toISOString();

    const seen: string[] = [];
    const eventIds: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await audit('admin', { principal: `carol@${idp.issuer}`, type: 'grant.created', limit: '2', ...(cursor ? { cursor } : {}) });
      expect(page.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.data.map((e) => e.grant_ids[0]));
      eventIds.push(...page.data.map((e) => e.id));
      cursor = page.next_cursor;
    } while (cursor);
    expect([...seen].sort()).toEqual([...ids].sort()); // each once
    expect(eventIds).toEqual([...eventIds].sort().reverse()); // newest (highest UUIDv7) first

    expect((await audit('admin', { principal: 'carol', type: 'grant.created,grant.revoked', since: before, until: after })).data).toHaveLength(5);
    expect((await audit('admin', { principal: 'carol', since: after })).data).toHaveLength(0);
    expect((await audit('admin', { principal: 'carol', type: 'token.issued' })).data).toHaveLength(0);
    const bad = await call(app.url, 'GET', '/v1/audit?since=yesterday', { token: await fx.admin() });
    expect(bad.status).toBe(422);
  });

  it('exports the matching events as an NDJSON stream, oldest first', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    for (const action of ['b:one', 'b:two', 'b:three']) await fx.grant('dave', { agent_id: agent.id, resource: rs.audience, action });
    const res = await fetch(`${app.url}/v1/audit/export?principal=dave`, { headers: { authorization: `Bearer ${await idp.token('dave')}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((e) => e.actions[0]).sort()).toEqual(['b:one', 'b:three', 'b:two']);
    expect(lines.map((e) => e.id)).toEqual(lines.map((e) => e.id).sort()); // oldest first
    expect(lines.every((e) => e.principal.sub === 'dave' && e.type === 'grant.created')).toBe(true);
  });
});

describe('events that travel through the queue', () => {
  it('are inserted and sealed once, even when a batch is delivered again, before or after sealing', async () => {
    const service = app.app.get(AuditService);
    const batch: QueuedRow[] = ['q:one', 'q:two'].map((action) => ({
      id: uuidv7(),
      type: 'introspection',
      occurredAt: new Date().toISOString(),
      actor: 'rs-redelivered',
      actorType: 'resource_server',
      principalIss: null,
      principalSub: null,
      agentId: null,
      actorChain: [],
      grantIds: [],
      resource: 'https://redelivered.example',
      actions: [action],
      purpose: null,
      outcome: 'active',
      reason: null,
      data: {},
    }));
    expect(await service.ingest(batch)).toBe(2);
    expect(await service.ingest(batch)).toBe(0); // BullMQ delivers at least once
    await allSealed();
    expect(await service.ingest(batch)).toBe(0);
    const seals = await adminSql('SELECT count(*)::int AS n FROM audit_seals WHERE event_id = ANY($1::uuid[])', [batch.map((e) => e.id)]);
    expect(seals.rows[0].n).toBe(2);
    expect((await call(app.url, 'GET', '/v1/audit/verify', { token: await fx.admin() })).body).toMatchObject({ ok: true, unsealed: 0 });
  });
});

describe('tamper evidence', () => {
  it('verifies the hash chain, and reports the first broken link when a row is edited in Postgres', async () => {
    const rs = await fx.resourceServer();
    const agent = await fx.agent();
    for (const action of ['c:one', 'c:two', 'c:three', 'c:four']) await fx.grant('erin', { agent_id: agent.id, resource: rs.audience, action });
    const sealed = await allSealed();
    expect(sealed).toMatchObject({ ok: true, first_broken: null });
    // The CLI's verification agrees (events from earlier tests may have been sealed in between).
    const cli = await verifyChainAt(dbUrl(app.database));
    expect(cli).toMatchObject({ ok: true, first_broken: null });
    expect(cli.checked).toBeGreaterThanOrEqual(sealed.checked);

    const events = (await audit('admin', { principal: 'erin' })).data.sort((a, b) => a.seq - b.seq);
    expect(events.every((e) => e.hash && e.prev_hash && e.seq)).toBe(true);
    const victim = events[1];

    // The database itself refuses edits and deletions of the trail and of its links.
    await expect(adminSql('UPDATE audit_events SET reason = $2 WHERE id = $1', [victim.id, 'nothing to see'])).rejects.toThrow(/append-only/);
    await expect(adminSql('DELETE FROM audit_events WHERE id = $1', [victim.id])).rejects.toThrow(/append-only/);
    await expect(adminSql('UPDATE audit_seals SET hash = $2 WHERE event_id = $1', [victim.id, 'f'.repeat(64)])).rejects.toThrow(/append-only/);
    await expect(adminSql('DELETE FROM audit_seals WHERE event_id = $1', [victim.id])).rejects.toThrow(/append-only/);

    // Someone who bypasses that is caught by the chain, at the very row they edited.
    await tamper('UPDATE audit_events SET purpose = $2 WHERE id = $1', [victim.id, 'nothing to see']);
    const broken = (await call(app.url, 'GET', '/v1/audit/verify', { token: await fx.admin() })).body;
    expect(broken).toMatchObject({ ok: false, checked: victim.seq - 1, first_broken: { id: victim.id, reason: 'hash_mismatch' } });
    expect(await verifyChainAt(dbUrl(app.database))).toMatchObject({ ok: false, first_broken: { id: victim.id, reason: 'hash_mismatch' } });
    await tamper('UPDATE audit_events SET purpose = NULL WHERE id = $1', [victim.id]);
    expect((await call(app.url, 'GET', '/v1/audit/verify', { token: await fx.admin() })).body).toMatchObject({ ok: true });

    // Re-hashing the edited row to match hides nothing: the next link no longer points at it.
    const [row] = (await adminSql('SELECT hash FROM audit_seals WHERE event_id = $1', [victim.id])).rows;
    await tamper('UPDATE audit_seals SET hash = $2 WHERE event_id = $1', [victim.id, 'f'.repeat(64)]);
    expect((await call(app.url, 'GET', '/v1/audit/verify', { token: await fx.admin() })).body.first_broken).toEqual({ id: victim.id, reason: 'hash_mismatch' });
    await tamper('UPDATE audit_seals SET hash = $2 WHERE event_id = $1', [victim.id, row.hash]);

    // A deleted event leaves a gap before the next one.
    const [full] = (await adminSql('SELECT * FROM audit_events WHERE id = $1', [victim.id])).rows;
    await tamper('DELETE FROM audit_events WHERE id = $1', [victim.id]);
    expect((await call(app.url, 'GET', '/v1/audit/verify', { token: await fx.admin() })).body.first_broken).toEqual({ id: events[2].id, reason: 'sequence_gap' });
    const cols = Object.keys(full);
    await tamper(`INSERT INTO audit_events (${cols.map((c) => `"${c}"`).join(',')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(',')})`, cols.map((c) => (c === 'actor_chain' || c === 'data' ? JSON.stringify(full[c]) : full[c])));
    expect((await call(app.url, 'GET', '/v1/audit/verify', { token: await fx.admin() })).body).toMatchObject({ ok: true, first_broken: null });
  });

  it('notices events cut off the end of the chain', async () => {
    const sealed = await allSealed();
    const [last] = (await adminSql('SELECT e.id FROM audit_events e JOIN audit_seals s ON s.event_id = e.id ORDER BY s.seq DESC LIMIT 1', [])).rows;
    await tamper('DELETE FROM audit_events WHERE id = $1', [last.id]);
    const res = (await call(app.url, 'GET', '/v1/audit/verify', { token: await fx.admin() })).body;
    expect(res).toMatchObject({ ok: false, checked: sealed.checked - 1, first_broken: { reason: 'truncated' } });
  });
});

async function adminSql(sql: string, params: unknown[]) {
  const client = new pg.Client({ connectionString: dbUrl(app.database) });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

const tokenCall = (client: { id: string; secret: string }, form: Record<string, string>) => call(app.url, 'POST', '/oauth/token', { form, basic: [client.id, client.secret] });
