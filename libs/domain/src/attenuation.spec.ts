import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { actionCovers } from './actions.js';
import {
  type DelegationLimits,
  type DelegationRequest,
  type ParentGrant,
  type RateLimit,
  DEFAULT_MAX_CHAIN_DEPTH,
  attenuate,
  remainingUses,
} from './attenuation.js';

const NOW = new Date('2026-01-01T00:00:00Z');
const HOUR = 3_600_000;
const later = (h: number) => new Date(NOW.getTime() + h * HOUR);
const limits: DelegationLimits = { maxChainDepth: DEFAULT_MAX_CHAIN_DEPTH, maxChildrenPerGrant: 10, now: NOW };

const parent = (over: Partial<ParentGrant> = {}): ParentGrant => ({
  action: 'email:*',
  resource: 'mailbox:alice',
  constraints: { source_ip: ['10.0.0.0/8'] },
  rateLimit: { max: 10, windowSeconds: 60 },
  maxUses: 100,
  expiresAt: later(24),
  maxDelegationDepth: 2,
  depth: 0,
  chainAgentIds: ['agent-a'],
  childCount: 0,
  ...over,
});
const rules = (p: ParentGrant, r: Partial<DelegationRequest>, l: DelegationLimits = limits) => {
  const res = attenuate(p, { agentId: 'agent-b', ...r }, l);
  return res.ok ? [] : res.violations.map((v) => v.rule);
};

describe('attenuate', () => {
  it('inherits every omitted field', () => {
    const res = attenuate(parent(), { agentId: 'agent-b' }, limits);
    expect(res).toEqual({
      ok: true,
      child: {
        action: 'email:*',
        resource: 'mailbox:alice',
        constraints: {},
        rateLimit: { max: 10, windowSeconds: 60 },
        maxUses: 100,
        expiresAt: later(24),
        maxDelegationDepth: 1,
        depth: 1,
      },
    });
  });

  it('carries a narrower request through unchanged', () => {
    const req = {
      agentId: 'agent-b',
      action: 'email:drafts:write',
      constraints: { args: { to: { glob: '*@example.com' } } },
      rateLimit: { max: 5, windowSeconds: 3600 },
      maxUses: 3,
      expiresAt: later(1),
      maxDelegationDepth: 0,
    };
    const res = attenuate(parent(), req, limits);
    expect(res.ok && res.child).toEqual({ ...req, agentId: undefined, resource: 'mailbox:alice', depth: 1 });
  });

  it('does not alias the parent objects', () => {
    const p = parent();
    const res = attenuate(p, { agentId: 'agent-b' }, limits);
    if (!res.ok) throw new Error('expected ok');
    expect(res.child.rateLimit).not.toBe(p.rateLimit);
    expect(res.child.expiresAt).not.toBe(p.expiresAt);
  });

  it.each<[string, Partial<ParentGrant>, Partial<DelegationRequest>, Partial<DelegationLimits>, string[]]>([
    ['not_delegatable', { maxDelegationDepth: 0 }, {}, {}, ['not_delegatable']],
    ['chain_too_deep', { depth: 5, chainAgentIds: ['a0', 'a1', 'a2', 'a3', 'a4', 'a5'] }, {}, {}, ['chain_too_deep']],
    ['too_many_children', { childCount: 10 }, {}, {}, ['too_many_children']],
    ['delegation_loop (self)', {}, { agentId: 'agent-a' }, {}, ['delegation_loop']],
    ['delegation_loop (ancestor)', { depth: 1, chainAgentIds: ['agent-x', 'agent-a'] }, { agentId: 'agent-x' }, {}, ['delegation_loop']],
    ['action_widened sibling', {}, { action: 'emails:read' }, {}, ['action_widened']],
    ['action_widened wildcard', {}, { action: '*' }, {}, ['action_widened']],
    ['action_widened bare', {}, { action: 'email' }, {}, ['action_widened']],
    ['action invalid', {}, { action: 'email:' }, {}, ['invalid_value']],
    ['expiry_widened', {}, { expiresAt: later(25) }, {}, ['expiry_widened']],
    ['expiry_in_past', {}, { expiresAt: later(-1) }, {}, ['expiry_in_past']],
    ['expiry now', {}, { expiresAt: NOW }, {}, ['expiry_in_past']],
    ['expired parent', { expiresAt: later(-1) }, {}, {}, ['expiry_in_past']],
    ['expiry invalid', {}, { expiresAt: new Date(Number.NaN) }, {}, ['invalid_value']],
    ['depth_widened', {}, { maxDelegationDepth: 2 }, {}, ['depth_widened']],
    ['depth negative', {}, { maxDelegationDepth: -1 }, {}, ['invalid_value']],
    ['depth fractional', {}, { maxDelegationDepth: 0.5 }, {}, ['invalid_value']],
    ['rate more uses', {}, { rateLimit: { max: 11, windowSeconds: 60 } }, {}, ['rate_limit_widened']],
    ['rate shorter window', {}, { rateLimit: { max: 10, windowSeconds: 59 } }, {}, ['rate_limit_widened']],
    ['rate removed', {}, { rateLimit: null }, {}, ['rate_limit_widened']],
    ['rate invalid', {}, { rateLimit: { max: 0, windowSeconds: 60 } }, {}, ['invalid_value']],
    ['budget_widened', {}, { maxUses: 101 }, {}, ['budget_widened']],
    ['budget beyond remaining', { usesConsumed: 98 }, { maxUses: 3 }, {}, ['budget_widened']],
    ['budget exhausted (inherit)', { usesConsumed: 100 }, {}, {}, ['budget_exhausted']],
    ['budget exhausted (explicit)', { usesConsumed: 100 }, { maxUses: 1 }, {}, ['budget_exhausted']],
    ['budget zero', {}, { maxUses: 0 }, {}, ['invalid_value']],
    ['agentId empty', {}, { agentId: '' }, {}, ['invalid_value']],
  ])('%s', (_, p, r, l, want) => expect(rules(parent(p), r, { ...limits, ...l })).toEqual(want));

  it('reports every violation at once', () => {
    expect(
      rules(parent({ maxDelegationDepth: 0, childCount: 10 }), {
        agentId: 'agent-a',
        action: '*',
        expiresAt: later(48),
        maxDelegationDepth: 3,
        rateLimit: null,
        maxUses: 1000,
      }),
    ).toEqual(['not_delegatable', 'too_many_children', 'delegation_loop', 'action_widened', 'expiry_widened', 'depth_widened', 'rate_limit_widened', 'budget_widened']);
  });

  it('an unlimited parent accepts any valid child values', () => {
    const p = parent({ action: '*', rateLimit: null, maxUses: null, expiresAt: null });
    const res = attenuate(p, { agentId: 'b', action: 'x:y', rateLimit: { max: 1000, windowSeconds: 1 }, maxUses: 1e6, expiresAt: later(1e5) }, limits);
    expect(res.ok).toBe(true);
    expect(attenuate(p, { agentId: 'b' }, limits)).toMatchObject({ ok: true, child: { rateLimit: null, maxUses: null, expiresAt: null } });
  });

  it('remainingUses', () => {
    expect(remainingUses({ maxUses: null })).toBeNull();
    expect(remainingUses({ maxUses: 5, usesConsumed: 2 })).toBe(3);
    expect(remainingUses({ maxUses: 5, usesConsumed: 9 })).toBe(0);
  });
});

// ---------------------------------------------------------------- properties

const ACTIONS = ['*', 'email:*', 'email:read', 'email:drafts:*', 'email:drafts:write', 'calendar:read', 'emails:read', 'email'];
const AGENTS = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
const dateArb = fc.constantFrom(-1, 0, 1, 24, 168, 720).map(later);
const rateArb: fc.Arbitrary<RateLimit> = fc.record({ max: fc.integer({ min: 1, max: 10 }), windowSeconds: fc.constantFrom(1, 60, 3600) });

const parentArb: fc.Arbitrary<ParentGrant> = fc
  .record({
    action: fc.constantFrom(...ACTIONS),
    rateLimit: fc.option(rateArb),
    maxUses: fc.option(fc.integer({ min: 0, max: 10 })),
    usesConsumed: fc.option(fc.integer({ min: 0, max: 10 }), { nil: undefined }),
    expiresAt: fc.option(dateArb),
    maxDelegationDepth: fc.integer({ min: 0, max: 4 }),
    chainAgentIds: fc.uniqueArray(fc.constantFrom(...AGENTS), { minLength: 1, maxLength: 4 }),
    childCount: fc.integer({ min: 0, max: 3 }),
  })
  .map((p) => ({ ...p, resource: 'r', constraints: {}, depth: p.chainAgentIds.length - 1 }));

const requestArb: fc.Arbitrary<DelegationRequest> = fc.record(
  {
    agentId: fc.constantFrom(...AGENTS),
    action: fc.constantFrom(...ACTIONS),
    rateLimit: fc.option(rateArb),
    maxUses: fc.integer({ min: 0, max: 12 }),
    expiresAt: dateArb,
    maxDelegationDepth: fc.integer({ min: -1, max: 5 }),
  },
  { requiredKeys: ['agentId'] },
);
/** A parent that can still delegate, so acceptance is common enough to exercise the invariants. */
const livelyParentArb = parentArb.map((p) => ({
  ...p,
  maxDelegationDepth: Math.max(1, p.maxDelegationDepth),
  chainAgentIds: p.chainAgentIds.slice(0, 1),
  depth: 0,
  childCount: 0,
  usesConsumed: 0,
  maxUses: p.maxUses === null ? null : p.maxUses + 1,
  expiresAt: p.expiresAt && new Date(Math.max(p.expiresAt.getTime(), later(1).getTime())),
}));

/** Requests near the parent's values (mix of narrower, equal and wider) so both outcomes are common. */
const nearRequestArb = (p: ParentGrant): fc.Arbitrary<DelegationRequest> =>
  fc.record(
    {
      agentId: fc.constantFrom(...AGENTS),
      action: fc.oneof(fc.constantFrom(...ACTIONS.filter((a) => actionCovers(p.action, a)), p.action), fc.constantFrom(...ACTIONS)),
      rateLimit: p.rateLimit
        ? fc.oneof(
            fc.record({ max: fc.integer({ min: 0, max: p.rateLimit.max + 1 }), windowSeconds: fc.constantFrom(p.rateLimit.windowSeconds - 1, p.rateLimit.windowSeconds, p.rateLimit.windowSeconds * 2) }),
            fc.constant(p.rateLimit),
            fc.constant(null),
          )
        : fc.option(rateArb),
      maxUses: fc.integer({ min: 0, max: (p.maxUses ?? 10) + 1 }),
      expiresAt: dateArb,
      maxDelegationDepth: fc.integer({ min: -1, max: p.maxDelegationDepth + 1 }),
    },
    { requiredKeys: ['agentId'] },
  );
const limitsArb: fc.Arbitrary<DelegationLimits> = fc.record({
  maxChainDepth: fc.integer({ min: 1, max: 6 }),
  maxChildrenPerGrant: fc.integer({ min: 1, max: 8 }),
  now: fc.constant(NOW),
});

/** Independent statement of "child is within parent", used as the oracle. */
function expectWithin(
  child: { action: string; resource: string; rateLimit: RateLimit | null; maxUses: number | null; expiresAt: Date | null; maxDelegationDepth: number; depth: number },
  anc: ParentGrant,
  levels: number,
) {
  expect(actionCovers(anc.action, child.action)).toBe(true);
  expect(child.resource).toBe(anc.resource);
  if (anc.expiresAt) expect(child.expiresAt!.getTime()).toBeLessThanOrEqual(anc.expiresAt.getTime());
  if (child.expiresAt) expect(child.expiresAt.getTime()).toBeGreaterThan(NOW.getTime());
  expect(child.maxDelegationDepth).toBeGreaterThanOrEqual(0);
  expect(child.maxDelegationDepth).toBeLessThanOrEqual(anc.maxDelegationDepth - levels);
  expect(child.depth).toBe(anc.depth + levels);
  if (anc.rateLimit) {
    expect(child.rateLimit!.max).toBeLessThanOrEqual(anc.rateLimit.max);
    expect(child.rateLimit!.windowSeconds).toBeGreaterThanOrEqual(anc.rateLimit.windowSeconds);
  }
  if (anc.maxUses !== null) {
    expect(child.maxUses).not.toBeNull();
    expect(child.maxUses!).toBeGreaterThanOrEqual(1);
    expect(child.maxUses!).toBeLessThanOrEqual(anc.maxUses - (anc.usesConsumed ?? 0));
  }
}

describe('attenuation properties', () => {
  it('an accepted child never widens its parent', () => {
    let accepted = 0;
    fc.assert(
      fc.property(
        fc.oneof(
          fc.oneof(parentArb, livelyParentArb).chain((p) => fc.tuple(fc.constant(p), nearRequestArb(p))),
          fc.tuple(parentArb, requestArb),
        ),
        limitsArb, ([p, r], l) => {
        const res = attenuate(p, r, l);
        if (!res.ok) {
          expect(res.violations.length).toBeGreaterThan(0);
          return;
        }
        accepted++;
        expectWithin(res.child, p, 1);
        expect(p.chainAgentIds).not.toContain(r.agentId);
        expect(p.childCount).toBeLessThan(l.maxChildrenPerGrant);
        expect(res.child.depth).toBeLessThanOrEqual(l.maxChainDepth);
      }),
      { numRuns: 3000 },
    );
    expect(accepted).toBeGreaterThan(30); // guards against a generator that never reaches the ok branch
  });

  it('a request that only narrows is accepted (no false rejections)', () =>
    fc.assert(
      fc.property(parentArb.chain((p) => fc.tuple(fc.constant(p), fc.oneof(nearRequestArb(p), requestArb))), ([p, r]) => {
        const l = { maxChainDepth: p.depth + 1, maxChildrenPerGrant: p.childCount + 1, now: NOW };
        fc.pre(p.maxDelegationDepth > 0 && !p.chainAgentIds.includes(r.agentId) && (p.expiresAt === null || p.expiresAt > NOW));
        const remaining = remainingUses(p);
        fc.pre(remaining !== 0);
        const narrowing =
          (r.action === undefined || actionCovers(p.action, r.action)) &&
          (r.expiresAt === undefined || (r.expiresAt > NOW && (p.expiresAt === null || r.expiresAt <= p.expiresAt))) &&
          (r.maxDelegationDepth === undefined || (r.maxDelegationDepth >= 0 && r.maxDelegationDepth <= p.maxDelegationDepth - 1)) &&
          (r.rateLimit === undefined ||
            r.rateLimit === null ? p.rateLimit === null || r.rateLimit === undefined
            : r.rateLimit.max >= 1 && r.rateLimit.windowSeconds >= 1 &&
              (p.rateLimit === null || (r.rateLimit.max <= p.rateLimit.max && r.rateLimit.windowSeconds >= p.rateLimit.windowSeconds))) &&
          (r.maxUses === undefined || (r.maxUses >= 1 && (remaining === null || r.maxUses <= remaining)));
        expect(attenuate(p, r, l).ok).toBe(narrowing);
      }),
      { numRuns: 2000 },
    ));

  // Plain data per step (not fc.gen) so failures shrink cheaply. Each step is resolved against the
  // current parent: usually a narrowing request, sometimes (raw) a random one, so chains grow and widenings still occur.
  const stepArb = fc.record({
    raw: fc.oneof({ arbitrary: fc.constant(null), weight: 4 }, { arbitrary: requestArb, weight: 1 }),
    reuseAgent: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
    pick: fc.nat(),
    fields: fc.uniqueArray(fc.constantFrom('action', 'expiresAt', 'maxDelegationDepth', 'rateLimit', 'maxUses'), { maxLength: 5 }),
  });
  const narrowRequest = (cur: ParentGrant, step: { pick: number; fields: string[] }, agentId: string): DelegationRequest => {
    const req: DelegationRequest = { agentId };
    const f = new Set(step.fields);
    const covered = ACTIONS.filter((a) => actionCovers(cur.action, a));
    if (f.has('action') && covered.length > 0) req.action = covered[step.pick % covered.length];
    if (f.has('expiresAt')) req.expiresAt = new Date(Math.min(cur.expiresAt?.getTime() ?? Infinity, later(1 + (step.pick % 48)).getTime()));
    if (f.has('maxDelegationDepth')) req.maxDelegationDepth = Math.max(0, cur.maxDelegationDepth - 1 - (step.pick % 2));
    if (f.has('rateLimit') && cur.rateLimit) req.rateLimit = { max: Math.max(1, cur.rateLimit.max - (step.pick % 3)), windowSeconds: cur.rateLimit.windowSeconds * (1 + (step.pick % 2)) };
    const remaining = remainingUses(cur);
    if (f.has('maxUses') && remaining !== 0) req.maxUses = Math.max(1, (remaining ?? 10) - (step.pick % 3));
    return req;
  };

  it('every descendant of a chain of delegations stays within the root', () => {
    let deepest = 0;
    fc.assert(
      fc.property(fc.oneof(parentArb, livelyParentArb), limitsArb, fc.array(stepArb, { minLength: 1, maxLength: 8 }), (root0, l, steps) => {
        const root = { ...root0, depth: 0, chainAgentIds: ['a'], childCount: 0 };
        let current: ParentGrant = root;
        for (const [i, step] of steps.entries()) {
          const cur = current;
          const agentId = step.reuseAgent ? cur.chainAgentIds[step.pick % cur.chainAgentIds.length]! : `agent-${i}`;
          const req = step.raw ?? narrowRequest(cur, step, agentId);
          const res = attenuate(cur, req, { ...l, maxChildrenPerGrant: 5 });
          if (!res.ok) continue;
          const c = res.child;
          expectWithin(c, root, c.depth);
          expectWithin(c, cur, 1);
          expect(c.depth).toBeLessThanOrEqual(l.maxChainDepth);
          const chainAgentIds = [...cur.chainAgentIds, req.agentId];
          expect(new Set(chainAgentIds).size).toBe(chainAgentIds.length);
          deepest = Math.max(deepest, c.depth);
          current = { ...c, chainAgentIds, childCount: 0 };
        }
      }),
      { numRuns: 1000 },
    );
    expect(deepest).toBeGreaterThanOrEqual(4);
  });
});
