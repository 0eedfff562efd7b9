#!/usr/bin/env node
// The exchange's floor: a bare node:http server doing only what the exchange target requires of any
// server, answering the same token-exchange requests as Procura. Run under the same load, it shows the
// most exchanges per second this machine allows a server that checks grants and records every token.
//
// Per request, and nothing more:
//   - client_secret_basic: the agent's stored SHA-256 hash compared in constant time (hashes loaded at start);
//   - the subject token: ES256-verified against the IdP's JWKS once, then recognised from an in-process Map
//     (Procura's verified-token cache does the same), with its expiry checked on every use;
//   - the grant: the agent's active grants for this person and resource server, read from Postgres once and
//     kept in an in-process Map (no revocation check, no constraints, no rate limits);
//   - an ES256 JWT access token with the claims Procura's carry (RFC 9068);
//   - the token's row (and with FLOOR_AUDIT=1 its audit event), written in one statement per event-loop
//     turn (group commit) into Procura's own tables, with their indexes, before the answer is sent.
// Left out, because a floor should be below anything real: Redis, revocation state, RFC 6749 error
// answers beyond a bare 400/401, Nest and Fastify.
//
//   FLOOR_DATABASE_URL, FLOOR_JWKS_URI, FLOOR_ISSUER, FLOOR_AUDIT; PEER_PORT (default 0 = any free port).
//   Prints one JSON line {"ready":true,"url":...} on stdout.
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import pg from 'pg';
import { basicClient, loadClients, serveJson } from './floor-lib.mjs';

const ISSUER = process.env.FLOOR_ISSUER ?? 'http://127.0.0.1:0';
const TTL = 300;
const db = new pg.Pool({ connectionString: process.env.FLOOR_DATABASE_URL, max: 4 });
const jwks = createRemoteJWKSet(new URL(process.env.FLOOR_JWKS_URI));
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const kid = 'floor';

const agents = await loadClients(db, 'agents');
const servers = new Map((await db.query('SELECT id, audience FROM resource_servers')).rows.map((r) => [r.audience, r.id]));
const subjects = new Map();
const held = new Map();

const b64url = (s) => Buffer.from(s, 'utf8').toString('base64url');
const header = b64url(JSON.stringify({ alg: 'ES256', kid, typ: 'at+jwt' }));

async function subjectOf(token) {
  let s = subjects.get(token);
  if (!s) {
    const { payload } = await jwtVerify(token, jwks, { algorithms: ['ES256'] });
    subjects.set(token, (s = { iss: payload.iss, sub: payload.sub, exp: payload.exp }));
  }
  return s.exp * 1000 > Date.now() ? s : null;
}

async function grantsOf(agentId, rsId, subject) {
  const key = `${agentId}|${rsId}|${subject.iss}|${subject.sub}`;
  let rows = held.get(key);
  if (!rows) {
    rows = (await db.query("SELECT id, action, expires_at FROM grants WHERE agent_id = $1 AND resource_server_id = $2 AND principal_iss = $3 AND principal_sub = $4 AND status = 'active' AND parent_id IS NULL", [agentId, rsId, subject.iss, subject.sub])).rows;
    held.set(key, rows);
  }
  return rows;
}

// Group commit: every record of one event-loop turn goes into one statement.
const ROWS = `unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::uuid[], $11::jsonb[])
  AS r(jti, agent, iss, sub, aud, grant_id, scope, iat, exp, event_id, data)`;
const TOKEN_ROWS = `INSERT INTO issued_tokens (jti, agent_id, principal_iss, principal_sub, audience, grant_ids, actor_chain, scope, issued_at, expires_at)
  SELECT jti, agent, iss, sub, aud, ARRAY[grant_id], jsonb_build_array(agent), scope, iat, exp FROM ${ROWS}`;
// With FLOOR_AUDIT=1 each token's `token.issued` event is written in the same statement; the audit trail's
// trigger queues it and Procura's worker seals it, as it does Procura's own.
const RECORD = process.env.FLOOR_AUDIT === '1'
  ? `WITH t AS (${TOKEN_ROWS})
     INSERT INTO audit_events (id, type, occurred_at, actor, actor_type, principal_iss, principal_sub, agent_id, actor_chain, grant_ids, resource, actions, outcome, data)
     SELECT event_id, 'token.issued', iat, agent::text, 'agent', iss, sub, agent, jsonb_build_array(agent), ARRAY[grant_id], aud, ARRAY[scope], 'issued', data FROM ${ROWS}`
  : TOKEN_ROWS;
let pending = [];
let scheduled = false;
function record(r) {
  return new Promise((resolve, reject) => {
    pending.push({ r, resolve, reject });
    if (scheduled) return;
    scheduled = true;
    setImmediate(async () => {
      scheduled = false;
      const batch = pending;
      pending = [];
      const cols = Array.from({ length: 11 }, () => []);
      for (const { r: x } of batch) [x.jti, x.agent, x.iss, x.sub, x.aud, x.grantId, x.scope, x.iat, x.exp, randomUUID(), x.data].forEach((v, i) => cols[i].push(v));
      try {
        await db.query({ name: 'record', text: RECORD, values: cols });
        for (const b of batch) b.resolve();
      } catch (err) {
        for (const b of batch) b.reject(err);
      }
    });
  });
}

async function exchange(body, authorization) {
  const agentId = basicClient(agents, authorization);
  if (!agentId) return [401, { error: 'invalid_client' }];
  const p = new URLSearchParams(body);
  if (p.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:token-exchange' || !p.get('subject_token_type')) return [400, { error: 'invalid_request' }];
  const rsId = servers.get(p.get('resource'));
  if (!rsId) return [400, { error: 'invalid_target' }];
  const subject = await subjectOf(p.get('subject_token')).catch(() => null);
  if (!subject) return [400, { error: 'invalid_request' }];
  const scope = p.get('scope');
  const now = Date.now();
  const grant = (await grantsOf(agentId, rsId, subject)).find((g) => g.action === scope && (!g.expires_at || g.expires_at.getTime() > now));
  if (!grant) return [400, { error: 'invalid_scope' }];
  const iat = Math.floor(now / 1000);
  const jti = randomUUID();
  const aud = p.get('resource');
  const claims = {
    iss: ISSUER, sub: subject.sub, aud, client_id: agentId, act: { sub: agentId }, scope, iat, exp: iat + TTL, jti,
    authorization_details: [{ type: 'capability', grant_id: grant.id, actions: [scope], locations: [aud], constraints: [{}], grant_chain: [grant.id] }],
  };
  const input = `${header}.${b64url(JSON.stringify(claims))}`;
  const token = `${input}.${sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  const data = JSON.stringify({ jti, scope, lifetime_seconds: TTL, issued_at: new Date(iat * 1000).toISOString(), expires_at: new Date((iat + TTL) * 1000).toISOString() });
  await record({ jti, agent: agentId, iss: subject.iss, sub: subject.sub, aud, grantId: grant.id, scope, iat: new Date(iat * 1000), exp: new Date((iat + TTL) * 1000), data });
  return [200, { access_token: token, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: TTL, scope }];
}

serveJson(async (body, authorization) => {
  const [status, json] = await exchange(body, authorization);
  return [status, JSON.stringify(json)];
}, () => db.end());
