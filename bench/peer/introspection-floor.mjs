#!/usr/bin/env node
// The introspection's floor: a bare node:http server doing only what RFC 7662 requires of any server,
// answering the same introspection requests as Procura. Run under the same load, it shows the most
// introspections per second, and the lowest p99, this machine allows a server that checks revocation.
//
// Per request, and nothing more:
//   - client_secret_basic: the resource server's stored SHA-256 hash compared in constant time;
//   - the token: ES256-verified against Procura's JWKS (algorithm, issuer and typ pinned) once, then
//     recognised from an in-process Map, with its expiry and audience checked on every use;
//   - revocation: the statuses of the token's grants, read from Postgres once and kept in an in-process
//     Map (a floor: it never learns of a later revocation, which no real server may do);
//   - the answer, serialized once per token.
// Left out: Redis, the audit trail, RFC 6749 error answers beyond a bare 401, Nest and Fastify.
//
//   FLOOR_DATABASE_URL, FLOOR_JWKS_URI, FLOOR_ISSUER; PEER_PORT (default 0 = any free port).
//   Prints one JSON line {"ready":true,"url":...} on stdout.
import { createRemoteJWKSet, jwtVerify } from 'jose';
import pg from 'pg';
import { basicClient, loadClients, serveJson } from './floor-lib.mjs';

const db = new pg.Pool({ connectionString: process.env.FLOOR_DATABASE_URL, max: 4 });
const jwks = createRemoteJWKSet(new URL(process.env.FLOOR_JWKS_URI));
const resourceServers = await loadClients(db, 'resource_servers');
const audiences = new Map((await db.query('SELECT id, audience FROM resource_servers')).rows.map((r) => [r.id, r.audience]));
const tokens = new Map();
const grantActive = new Map();
const INACTIVE = '{"active":false}';

async function verified(raw) {
  let t = tokens.get(raw);
  if (t === undefined) {
    try {
      const { payload } = await jwtVerify(raw, jwks, { algorithms: ['ES256'], issuer: process.env.FLOOR_ISSUER, typ: 'at+jwt', requiredClaims: ['exp', 'jti'] });
      const grantIds = [...new Set(payload.authorization_details.flatMap((d) => d.grant_chain))];
      const missing = grantIds.filter((id) => !grantActive.has(id));
      if (missing.length) for (const r of (await db.query('SELECT id, status FROM grants WHERE id = ANY($1::uuid[])', [missing])).rows) grantActive.set(r.id, r.status === 'active');
      t = { payload, grantIds, answer: JSON.stringify({ active: true, token_type: 'Bearer', ...payload }) };
    } catch {
      t = null;
    }
    tokens.set(raw, t);
  }
  return t;
}

serveJson(async (body, authorization) => {
  const rsId = basicClient(resourceServers, authorization);
  if (!rsId) return [401, '{"error":"invalid_client"}'];
  const t = await verified(new URLSearchParams(body).get('token') ?? '');
  if (!t || t.payload.exp * 1000 <= Date.now() || t.payload.aud !== audiences.get(rsId) || !t.grantIds.every((id) => grantActive.get(id))) return [200, INACTIVE];
  return [200, t.answer];
}, () => db.end());
