import { describe, expect, it } from 'vitest';
import { AuditEventEntity } from '../../../persistence/src/index.js';
import { withoutSecrets } from './audit.service.js';
import { canonicalJson, ChainVerifier, eventHash, GENESIS_HASH } from './chain.js';

const event = (seq: number, patch: Partial<AuditEventEntity> = {}): AuditEventEntity => ({
  id: `0190a000-0000-7000-8000-00000000000${seq}`,
  seq: String(seq),
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
  prevHash: null,
  hash: null,
  ...patch,
});

function chain(n: number): AuditEventEntity[] {
  let prev = GENESIS_HASH;
  return Array.from({ length: n }, (_, i) => {
    const e = event(i + 1);
    e.prevHash = prev;
    e.hash = eventHash(prev, e);
    prev = e.hash;
    return e;
  });
}

describe('canonical JSON', () => {
  it('sorts keys recursively, drops undefined members and writes dates as ISO strings', () => {
    expect(canonicalJson({ b: 1, a: { z: undefined, y: [new Date(0), { k: 'v', c: null }] } })).toBe('{"a":{"y":["1970-01-01T00:00:00.000Z",{"c":null,"k":"v"}]},"b":1}');
  });

  it('does not depend on the order keys were written in', () => {
    expect(eventHash(GENESIS_HASH, event(1, { data: { x: 1, y: 2 } }))).toBe(eventHash(GENESIS_HASH, event(1, { data: { y: 2, x: 1 } })));
  });
});

describe('chain verification', () => {
  it('accepts an intact chain that ends at the head', () => {
    const rows = chain(3);
    const v = new ChainVerifier();
    expect(rows.map((r) => v.next(r))).toEqual([null, null, null]);
    expect(v.end({ seq: 3, hash: rows[2].hash! })).toBeNull();
    expect(v.checked).toBe(3);
  });

  it('names the first broken link and why', () => {
    const walk = (rows: AuditEventEntity[]) => {
      const v = new ChainVerifier();
      for (const r of rows) {
        const broken = v.next(r);
        if (broken) return broken;
      }
      return v.end({ seq: 3, hash: chain(3)[2].hash! });
    };
    const edited = chain(3);
    edited[1] = { ...edited[1], outcome: 'denied' };
    expect(walk(edited)).toEqual({ id: edited[1].id, reason: 'hash_mismatch' });
    const relinked = chain(3);
    relinked[2] = { ...relinked[2], prevHash: 'f'.repeat(64) };
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
