import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventHash, GENESIS_HASH, verifyChainAt } from '../libs/core/src/index.js';
import { dataSourceOptions } from '../libs/persistence/src/data-source.js';
import { runMigrations } from '../libs/persistence/src/migrate.js';
import { MIGRATIONS } from '../migrations/index.js';
import { adminQuery, dbUrl, dropDatabase } from './support/db.js';

// A database of its own, migrated only up to the schema that kept the chain's links in audit_events.
const DB = `procura_t_${process.env.PROCURA_TEST_RUN ?? 'adhoc'}_audit_migration`;
const BEFORE_SEALS = MIGRATIONS.length - 1;

beforeAll(async () => {
  await dropDatabase(DB);
  await adminQuery(`CREATE DATABASE "${DB}"`);
  const ds = new DataSource({ ...dataSourceOptions(dbUrl(DB)), migrations: MIGRATIONS.slice(0, BEFORE_SEALS) });
  await ds.initialize();
  await ds.runMigrations({ transaction: 'each' });
  await ds.destroy();
});
afterAll(async () => {
  await dropDatabase(DB);
});

const sql = (text: string, params: unknown[] = []) => adminQuery(text, params, DB);

/** Three events sealed by the old sealer (seq and hashes updated in place), and one still unsealed. */
async function oldTrail(): Promise<string[]> {
  const ids = Array.from({ length: 4 }, (_, i) => `0190a000-0000-7000-8000-00000000000${i + 1}`);
  let prev = GENESIS_HASH;
  for (const [i, id] of ids.entries()) {
    const row = {
      id,
      type: 'grant.created',
      occurredAt: new Date(Date.UTC(2030, 0, 1, 0, 0, i)),
      actor: 'alice@https://idp.example',
      actorType: 'person' as const,
      principalIss: 'https://idp.example',
      principalSub: 'alice',
      agentId: null,
      actorChain: [],
      grantIds: [randomUUID()],
      resource: 'https://rs.example',
      actions: ['docs:read'],
      purpose: i === 0 ? 'quarterly report' : null,
      outcome: 'created',
      reason: null,
      data: { n: i, nested: { b: [1, 'x'], a: null } },
    };
    await sql(
      `INSERT INTO audit_events (id, type, occurred_at, actor, actor_type, principal_iss, principal_sub, agent_id, actor_chain, grant_ids, resource, actions, purpose, outcome, reason, data)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
      [row.id, row.type, row.occurredAt, row.actor, row.actorType, row.principalIss, row.principalSub, row.agentId, JSON.stringify(row.actorChain), row.grantIds, row.resource, row.actions, row.purpose, row.outcome, row.reason, JSON.stringify(row.data)],
    );
    if (i === 3) break;
    const hash = eventHash(prev, row, i + 1);
    await sql('UPDATE audit_events SET seq = $2, prev_hash = $3, hash = $4 WHERE id = $1', [id, i + 1, prev, hash]);
    await sql(`INSERT INTO audit_chain_head (id, last_seq, last_hash) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET last_seq = $1, last_hash = $2`, [i + 1, hash]);
    prev = hash;
  }
  return ids;
}

describe('moving the chain links into audit_seals', () => {
  it('keeps a chain sealed before the move verifiable, queues unsealed events for the sealer, and moves back on revert', async () => {
    const ids = await oldTrail();
    expect(await verifyChainAtOld()).toEqual({ sealed: 3, unsealed: 1 });

    expect(await runMigrations(dbUrl(DB))).toEqual(['AuditSeals1795700000000']);
    expect(await verifyChainAt(dbUrl(DB))).toEqual({ ok: true, checked: 3, first_broken: null, unsealed: 1 });
    expect((await sql('SELECT id FROM audit_unsealed')).rows).toEqual([{ id: ids[3] }]);
    expect((await sql('SELECT event_id FROM audit_seals ORDER BY seq')).rows.map((r) => r.event_id)).toEqual(ids.slice(0, 3));
    // New events are queued by the trigger, whichever statement inserts them.
    const fresh = randomUUID();
    await sql(`INSERT INTO audit_events (id, type, occurred_at, actor, actor_type, outcome) VALUES ($1, 'key.rotated', now(), 'system', 'system', 'rotated')`, [fresh]);
    expect((await sql('SELECT id FROM audit_unsealed ORDER BY id')).rows.map((r) => r.id)).toEqual([ids[3], fresh].sort());

    const ds = new DataSource(dataSourceOptions(dbUrl(DB)));
    await ds.initialize();
    try {
      await ds.undoLastMigration({ transaction: 'each' });
    } finally {
      await ds.destroy();
    }
    expect(await verifyChainAtOld()).toEqual({ sealed: 3, unsealed: 2 });
    const [first] = (await sql('SELECT seq, prev_hash FROM audit_events WHERE id = $1', [ids[0]])).rows;
    expect(first).toEqual({ seq: '1', prev_hash: GENESIS_HASH });
    await expect(sql('UPDATE audit_events SET seq = 9 WHERE id = $1', [ids[0]])).rejects.toThrow(/append-only/);
  });
});

/** Counts under the old schema, where an event carried its own seq. */
async function verifyChainAtOld(): Promise<{ sealed: number; unsealed: number }> {
  const [row] = (await sql('SELECT count(seq)::int AS sealed, count(*) FILTER (WHERE seq IS NULL)::int AS unsealed FROM audit_events')).rows;
  return row;
}
