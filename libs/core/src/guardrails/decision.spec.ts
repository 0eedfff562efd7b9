import { describe, expect, it } from 'vitest';
import { CapabilityDetail } from '../tokens/token-types.js';
import { decideCapability, resourceWithin } from './decision.js';

const RS = 'https://pay.example';
const detail = (grantId: string, action: string, constraints: Record<string, unknown>[] = [{}], locations = [RS]): CapabilityDetail => ({
  type: 'capability',
  grant_id: grantId,
  actions: [action],
  locations,
  constraints,
  grant_chain: constraints.map((_, i) => `${grantId}-${i}`),
});
const now = new Date('2030-01-07T10:00:00Z'); // Monday 11:00 in Berlin

describe('decideCapability', () => {
  it('allows an action carried by a live capability whose constraints hold', () => {
    const d = detail('g1', 'payments:send');
    expect(decideCapability({ live: [d], issued: [d], action: 'payments:send', now })).toEqual({ ok: true, detail: d });
  });

  it('tells a revoked capability from an action that was never granted', () => {
    const send = detail('g1', 'payments:send');
    expect(decideCapability({ live: [], issued: [send], action: 'payments:send', now })).toMatchObject({ ok: false, reason: 'capability_revoked', grantId: 'g1' });
    expect(decideCapability({ live: [send], issued: [send], action: 'payments:refund', now })).toMatchObject({ ok: false, reason: 'action_not_granted', grantId: null });
  });

  it('lets a wildcard capability cover a concrete action, never the reverse', () => {
    const all = detail('g1', 'payments:*');
    expect(decideCapability({ live: [all], issued: [all], action: 'payments:send', now }).ok).toBe(true);
    const one = detail('g2', 'payments:send');
    expect(decideCapability({ live: [one], issued: [one], action: 'payments:*', now })).toMatchObject({ reason: 'action_not_granted' });
  });

  it('checks the resource against the capability locations, path-segment wise', () => {
    const d = detail('g1', 'payments:send');
    expect(decideCapability({ live: [d], issued: [d], action: 'payments:send', resource: `${RS}/accounts/1`, now }).ok).toBe(true);
    expect(decideCapability({ live: [d], issued: [d], action: 'payments:send', resource: `${RS}.evil`, now })).toMatchObject({ reason: 'resource_not_granted', grantId: 'g1' });
  });

  it('ANDs the constraints of every grant along the chain', () => {
    const d = detail('leaf', 'payments:send', [{ args: { amount: { max: 500 } } }, { args: { amount: { max: 1000 } } }]);
    const ask = (amount: number) => decideCapability({ live: [d], issued: [d], action: 'payments:send', context: { amount }, now });
    expect(ask(500).ok).toBe(true);
    expect(ask(501)).toMatchObject({ ok: false, reason: 'constraint_failed:args.amount', grantId: 'leaf' });
  });

  it('evaluates time windows at the given instant, boundaries included', () => {
    const d = detail('g1', 'payments:send', [{ time_window: { start: '09:00', end: '17:00', tz: 'Europe/Berlin' } }]);
    const at = (iso: string) => decideCapability({ live: [d], issued: [d], action: 'payments:send', now: new Date(iso) });
    expect(at('2030-01-07T08:00:00Z').ok).toBe(true);
    expect(at('2030-01-07T15:59:59Z').ok).toBe(true);
    expect(at('2030-01-07T16:00:00Z')).toMatchObject({ reason: 'outside_time_window' });
    expect(at('2030-01-07T07:59:59Z')).toMatchObject({ reason: 'outside_time_window' });
  });

  it('ignores source_ip at use (it binds the exchange) and fails a missing constrained argument', () => {
    const d = detail('g1', 'payments:send', [{ source_ip: ['10.0.0.0/8'], args: { channel: { in: ['#ops'] } } }]);
    expect(decideCapability({ live: [d], issued: [d], action: 'payments:send', context: { channel: '#ops' }, now }).ok).toBe(true);
    expect(decideCapability({ live: [d], issued: [d], action: 'payments:send', now })).toMatchObject({ reason: 'constraint_failed:args.channel' });
  });

  it('uses any capability whose constraints hold, and reports the first failure when none does', () => {
    const small = detail('small', 'payments:send', [{ args: { amount: { max: 100 } } }]);
    const big = detail('big', 'payments:send', [{ args: { amount: { max: 1000 } } }]);
    expect(decideCapability({ live: [small, big], issued: [small, big], action: 'payments:send', context: { amount: 700 }, now })).toMatchObject({ ok: true, detail: big });
    expect(decideCapability({ live: [small, big], issued: [small, big], action: 'payments:send', context: { amount: 7000 }, now })).toMatchObject({ ok: false, grantId: 'small' });
  });

  it('fails closed on a capability without a constraints array', () => {
    const d = { ...detail('g1', 'payments:send'), constraints: undefined } as unknown as CapabilityDetail;
    expect(decideCapability({ live: [d], issued: [d], action: 'payments:send', now })).toMatchObject({ ok: false, reason: 'constraint_failed:malformed' });
  });
});

describe('resourceWithin', () => {
  it.each([
    [RS, RS, true],
    [RS, `${RS}/a`, true],
    [RS, `${RS}?q=1`, true],
    [RS, `${RS}#x`, true],
    [`${RS}/`, `${RS}/a`, true],
    [RS, `${RS}.evil.example`, false],
    [RS, `${RS}:8443`, false],
    [RS, 'https://other.example', false],
  ])('%s covers %s: %s', (location, resource, expected) => {
    expect(resourceWithin(location, resource)).toBe(expected);
  });
});
