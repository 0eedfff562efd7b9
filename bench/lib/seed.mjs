// Seeds the benchmark database with set-based SQL (generate_series): 100k grants take seconds, 1M a minute.
//
// Layout (all ids derived with md5(...)::uuid, so the harness can name any row without reading it back):
//   resource server r   audience https://rs-<r>.bench.example, secret bench-rs-secret-<r>
//   agent a             secret bench-agent-secret-<a>
//   grant i             principal user-<i % P>, k = i / P, agent (i % P + 97 k) % A, resource server k % R,
//                       action svc<k>:read; every 50th is revoked, every 10th expires in 30 days
//   trees               a root with two levels of sub-grants (materialized ancestor_ids), for cascade revocation
//   authorize grants    constraints (not_before, args.amount max, args.currency in) and a rate limit, for /v1/authorize
import pg from 'pg';

export const rsAudience = (r) => `https://rs-${r}.bench.example`;
export const rsSecret = (r) => `bench-rs-secret-${r}`;
export const agentSecret = (a) => `bench-agent-secret-${a}`;

export class Layout {
  constructor({ principals, agents, resourceServers }) {
    this.P = principals;
    this.A = agents;
    this.R = resourceServers;
  }
  /** The root grant i = k * P + p and who may exchange it. */
  grant(p, k) {
    const i = k * this.P + p;
    const a = (p + 97 * k) % this.A;
    return { i, principal: `user-${p}`, agent: a, rs: k % this.R, action: `svc${k}:read`, active: i % 50 !== 7 };
  }
}

export async function withClient(url, fn) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function recreateDatabase(adminUrl, name) {
  await withClient(adminUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await c.query(`CREATE DATABASE "${name}"`);
  });
}

const sha256Hex = (expr) => `encode(sha256(convert_to(${expr}, 'UTF8')), 'hex')`;

export async function seedRegistry(c, layout) {
  await c.query(
    `INSERT INTO resource_servers (id, name, audience, client_secret_hash, created_by)
     SELECT md5('rs-' || n)::uuid, 'bench rs ' || n, 'https://rs-' || n || '.bench.example', ${sha256Hex(`'bench-rs-secret-' || n`)}, 'bench'
       FROM generate_series(0, $1 - 1) n`,
    [layout.R],
  );
  await c.query(
    `INSERT INTO agents (id, name, client_secret_hash, created_by)
     SELECT md5('agent-' || n)::uuid, 'bench agent ' || n, ${sha256Hex(`'bench-agent-secret-' || n`)}, 'bench'
       FROM generate_series(0, $1 - 1) n`,
    [layout.A],
  );
}

/** Grants i in [from, to), in batches so one statement never holds too much. */
export async function seedGrants(c, layout, issuer, from, to, onProgress = () => {}) {
  const BATCH = 100_000;
  for (let lo = from; lo < to; lo += BATCH) {
    const hi = Math.min(to, lo + BATCH);
    await c.query(
      `INSERT INTO grants (id, principal_iss, principal_sub, agent_id, resource_server_id, resource, action, constraints,
                           expires_at, status, revoked_at, revoked_by, created_by)
       SELECT md5('grant-' || i)::uuid, $1, 'user-' || (i % $2),
              md5('agent-' || (((i % $2) + 97 * (i / $2)) % $3))::uuid,
              md5('rs-' || ((i / $2) % $4))::uuid, 'https://rs-' || ((i / $2) % $4) || '.bench.example',
              'svc' || (i / $2) || ':read', '{}'::jsonb,
              CASE WHEN i % 10 = 3 THEN now() + interval '30 days' END,
              CASE WHEN i % 50 = 7 THEN 'revoked' ELSE 'active' END,
              CASE WHEN i % 50 = 7 THEN now() END, CASE WHEN i % 50 = 7 THEN 'bench' END,
              'bench'
         FROM generate_series($5::int, $6::int - 1) i`,
      [issuer, layout.P, layout.A, layout.R, lo, hi],
    );
    onProgress(hi - from);
  }
}

/**
 * A delegation tree of exactly `size` grants: a root, `fanout` children, and the rest spread as
 * grandchildren (ancestor_ids materialized as the app does). Returns what the harness needs to exchange on the root.
 */
export async function seedTree(c, layout, issuer, name, size) {
  const children = size >= 10_000 ? 99 : 27;
  const perChild = Math.floor((size - 1 - children) / children);
  const extra = size - 1 - children - children * perChild; // first `extra` children get one more
  const principal = `tree-owner-${name}`;
  const rootAgent = hashIndex(name) % layout.A;
  const root = `md5('tree-${name}')::uuid`;
  const base = `$1, $2, md5('rs-0')::uuid, 'https://rs-0.bench.example', 'tree:read', '{}'::jsonb, 'bench'`;
  const cols = `principal_iss, principal_sub, resource_server_id, resource, action, constraints, created_by`;
  await c.query(
    `INSERT INTO grants (id, agent_id, parent_id, ancestor_ids, max_delegation_depth, ${cols})
     VALUES (${root}, md5('agent-' || $3::int)::uuid, NULL, '{}', 2, ${base})`,
    [issuer, principal, rootAgent],
  );
  await c.query(
    `INSERT INTO grants (id, agent_id, parent_id, ancestor_ids, max_delegation_depth, ${cols})
     SELECT md5('tree-${name}-' || ch)::uuid, md5('agent-' || (($3::int + 1 + ch) % $4::int))::uuid, ${root}, ARRAY[${root}], 1, ${base}
       FROM generate_series(0, $5::int - 1) ch`,
    [issuer, principal, rootAgent, layout.A, children],
  );
  await c.query(
    `INSERT INTO grants (id, agent_id, parent_id, ancestor_ids, max_delegation_depth, ${cols})
     SELECT md5('tree-${name}-' || ch || '-' || g)::uuid, md5('agent-' || (($3::int + 7 + g) % $4::int))::uuid,
            md5('tree-${name}-' || ch)::uuid, ARRAY[${root}, md5('tree-${name}-' || ch)::uuid], 0, ${base}
       FROM generate_series(0, $5::int - 1) ch, generate_series(0, $6::int) g
      WHERE g < $6::int OR ch < $7::int`,
    [issuer, principal, rootAgent, layout.A, children, perChild, extra],
  );
  const { rows } = await c.query(`SELECT count(*)::int AS n FROM grants WHERE id = ${root} OR ancestor_ids @> ARRAY[${root}]`);
  if (rows[0].n !== size) throw new Error(`tree ${name}: seeded ${rows[0].n} grants, expected ${size}`);
  const { rows: r } = await c.query(`SELECT ${root}::text AS id`);
  return { name, size, rootId: r[0].id, principal, agent: rootAgent, rs: 0, action: 'tree:read' };
}

/** Grants for /v1/authorize: constraints to evaluate and a rate limit to count, one per (principal, agent). */
export async function seedAuthorizeGrants(c, layout, issuer, n) {
  await c.query(
    `INSERT INTO grants (id, principal_iss, principal_sub, agent_id, resource_server_id, resource, action, constraints, rate_limit, created_by)
     SELECT md5('authz-' || j)::uuid, $1, 'authz-user-' || j, md5('agent-' || (j % $2::int))::uuid,
            md5('rs-0')::uuid, 'https://rs-0.bench.example', 'payments:send',
            '{"not_before": "2020-01-01T00:00:00Z", "args": {"amount": {"max": 1000}, "currency": {"in": ["EUR", "USD"]}}}'::jsonb,
            '{"max": 100000, "window_seconds": 60}'::jsonb, 'bench'
       FROM generate_series(0, $3::int - 1) j`,
    [issuer, layout.A, n],
  );
  return Array.from({ length: n }, (_, j) => ({ principal: `authz-user-${j}`, agent: j % layout.A, rs: 0, action: 'payments:send' }));
}

function hashIndex(s) {
  let h = 0;
  for (const ch of s) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h;
}
