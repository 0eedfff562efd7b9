import { describe, expect, it } from 'vitest';
import { AuditEventRow, SealedAuditEvent } from '../../../persistence/src/index.js';
import { withoutSecrets } from './audit.service.js';
import { canonicalJson, ChainVerifier, eventHash, GENESIS_HASH } from './chain.js';

const event = (n: number, patch: Partial<AuditEventRow> = {}): AuditEventRow => ({
  id: `0190a000-0000-7000-8000-00000000000${n}`,
  type: 'grant.created',
  occurredAt: new Date('2030-01-01T00:00:00.000Z'),
  actor: 'alice@https://idp.example',
  actorType: 'person',
  principalIss: 'https://idp.example',
  principalSub: 'alice',
  agentId: null,
  actorChain: [],
  grantIds: [],
  resource: 'https://rs.example',
  actions: ['docs:read'],
  purpose: null,
  outcome: 'created',
  reason: null,
  data: { b: 1, a: { d: [1, 'x'], c: null } },
  ...patch,
});

function chain(n: number): SealedAuditEvent[] {
  let prev = GENESIS_HASH;
  return Array.from({ length: n }, (_, i) => {
    const e = event(i + 1);
    const hash = eventHash(prev, e, i + 1);
    const sealed = { ...e, seal: { seq: String(i + 1), eventId: e.id, prevHash: prev, hash } };
    prev = hash;
    return sealed;
  });
}

describe('canonical JSON', () => {
  it('sorts keys recursively, drops undefined members and writes dates as ISO strings', () => {
    expect(canonicalJson({ b: 1, a: { z: undefined, y: [new Date(0), { k: 'v', c: null }] } })).toBe('{"a":{"y":["1970-01-01T00:00:00.000Z",{"c":null,"k":"v"}]},"b":1}');
  });

  it('does not depend on the order keys were written in', () => {
    expect(eventHash(GENESIS_HASH, event(1, { data: { x: 1, y: 2 } }), 1)).toBe(eventHash(GENESIS_HASH, event(1, { data: { y: 2, x: 1 } }), 1));
  });

  it('hashes an event exactly as chains sealed before the links moved to their own table', () => {
    // Frozen: existing chains must keep verifying, whatever the tables or the API look like.
    expect(eventHash(GENESIS_HASH, event(1), 1)).toBe('b3234ac18b126fa9529c2a0a6608f249fee5e141ad0abd4711ecf07d5a1c58ab');
    expect(eventHash(GENESIS_HASH, event(1), 2)).not.toBe(eventHash(GENESIS_HASH, event(1), 1));
  });
});

describe('chain verification', () => {
  it('accepts an intact chain that ends at the head', () => {
    const rows = chain(3);
    const v = new ChainVerifier();
    expect(rows.map((r) => v.next(r))).toEqual([null, null, null]);
    expect(v.end({ seq: 3, hash: rows[2].seal.hash })).toBeNull();
    expect(v.checked).toBe(3);
  });

  it('names the first broken link and why', () => {
    const walk = (rows: SealedAuditEvent[]) => {
      const v = new ChainVerifier();
      for (const r of rows) {
        const broken = v.next(r);
        if (broken) return broken;
      }
      return v.end({ seq: 3, hash: chain(3)[2].seal.hash });
    };
    const edited = chain(3);
    edited[1] = { ...edited[1], outcome: 'denied' };
    expect(walk(edited)).toEqual({ id: edited[1].id, reason: 'hash_mismatch' });
    const relinked = chain(3);
    relinked[2] = { ...relinked[2], seal: { ...relinked[2].seal, prevHash: 'f'.repeat(64) } };
    expect(walk(relinked)).toEqual({ id: relinked[2].id, reason: 'prev_hash_mismatch' });
    const gap = chain(3);
    expect(walk([gap[0], gap[2]])).toEqual({ id: gap[2].id, reason: 'sequence_gap' });
    expect(walk(chain(2))).toEqual({ id: chain(2)[1].id, reason: 'truncated' });
  });
});

describe('withoutSecrets', () => {
  it('drops credential-named members and redacts anything shaped like a JWT', () => {
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';
    expect(withoutSecrets({ jti: 'j', access_token: jwt, client_secret: 's', subject_token_type: 'urn:x', nested: { note: `got ${jwt}` } })).toEqual({
      jti: 'j',
      subject_token_type: 'urn:x',
      nested: { note: 'got [redacted]' },
    });
  });
});
