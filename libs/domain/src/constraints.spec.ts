import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Constraints,
  type EvaluationContext,
  WEEKDAYS,
  effectiveMaxTokenTtl,
  evaluateConstraints,
  globMatch,
  inTimeWindow,
  ipAllowed,
  parseCidr,
  parseRfc3339,
  requiresApproval,
  validateConstraints,
} from './constraints.js';

const paths = (input: unknown) => {
  const r = validateConstraints(input);
  return r.ok ? [] : r.errors.map((e) => e.path);
};
const valid = (input: unknown): Constraints => {
  const r = validateConstraints(input);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
};
const at = (iso: string, extra: Partial<EvaluationContext> = {}): EvaluationContext => ({ now: new Date(iso), phase: 'use', ...extra });

describe('validateConstraints', () => {
  it('accepts the full language', () => {
    const input = {
      not_before: '2026-01-01T09:00:00+01:00',
      time_window: { days: ['mon', 'fri'], start: '09:00', end: '17:00', tz: 'Europe/Berlin' },
      source_ip: ['10.0.0.0/8', '2001:db8::/32', '192.168.1.7', '::1'],
      args: {
        amount: { max: 100, min: 0 },
        currency: { in: ['EUR', 'USD'] },
        to: { glob: '*@example.com' },
        path: { prefix: '/home/' },
        dry_run: { equals: true },
      },
      requires_approval: false,
      max_token_ttl_seconds: 300,
    };
    expect(validateConstraints(input)).toEqual({ ok: true, value: input });
    expect(valid({})).toEqual({});
  });

  it.each([null, [], 'x', 3, new Date(), new Map()])('rejects non-plain-object %j', (input) => {
    expect(paths(input)).toEqual(['constraints']);
  });

  it('rejects unknown keys at every level', () => {
    expect(paths({ expires: 1 })).toEqual(['constraints.expires']);
    expect(paths({ time_window: { start: '09:00', end: '10:00', zone: 'UTC' } })).toEqual(['constraints.time_window.zone']);
    expect(paths({ args: { a: { max: 1, lt: 3 } } })).toEqual(['constraints.args.a.lt']);
  });

  it.each([
    '2026-01-01',
    '2026-01-01T09:00:00',
    '2026-01-01 09:00:00Z',
    '2026-02-30T09:00:00Z',
    '2026-13-01T09:00:00Z',
    '2026-01-01T24:00:00Z',
    '2026-01-01T09:60:00Z',
    '2026-01-01T09:00:60Z',
    '2026-01-01T09:00:00+24:00',
    '2026-01-01T09:00Z',
    'tomorrow',
  ])('rejects not_before %s', (nb) => expect(paths({ not_before: nb })).toEqual(['constraints.not_before']));

  it('accepts RFC 3339 variants', () => {
    for (const s of ['2026-01-01T09:00:00Z', '2026-01-01t09:00:00.123z', '2024-02-29T23:59:59-05:30']) expect(parseRfc3339(s)).not.toBeNull();
    expect(parseRfc3339('2026-01-01T10:00:00+01:00')).toBe(Date.parse('2026-01-01T09:00:00Z'));
  });

  it('validates time_window', () => {
    const tw = (w: unknown) => paths({ time_window: w });
    expect(tw({ start: '09:00', end: '17:00' })).toEqual([]);
    expect(tw({ start: '22:00', end: '06:00' })).toEqual([]);
    expect(tw({ start: '09:00', end: '09:00' })).toEqual(['constraints.time_window.end']);
    expect(tw({ start: '9:00', end: '24:00' })).toEqual(['constraints.time_window.start', 'constraints.time_window.end']);
    expect(tw({ end: '17:00' })).toEqual(['constraints.time_window.start']);
    expect(tw({ start: '09:00', end: '17:00', days: [] })).toEqual(['constraints.time_window.days']);
    expect(tw({ start: '09:00', end: '17:00', days: ['mon', 'mon'] })).toEqual(['constraints.time_window.days']);
    expect(tw({ start: '09:00', end: '17:00', days: ['monday'] })).toEqual(['constraints.time_window.days']);
    expect(tw({ start: '09:00', end: '17:00', tz: 'Mars/Olympus' })).toEqual(['constraints.time_window.tz']);
    expect(tw({ start: '09:00', end: '17:00', tz: 3 })).toEqual(['constraints.time_window.tz']);
    expect(tw('09:00-17:00')).toEqual(['constraints.time_window']);
  });

  it('validates source_ip strictly', () => {
    expect(paths({ source_ip: [] })).toEqual(['constraints.source_ip']);
    expect(paths({ source_ip: '10.0.0.0/8' })).toEqual(['constraints.source_ip']);
    for (const bad of ['10.0.0.0/33', '10.0.0.0/08', '10.0.0.0/', '10.1.0.0/8', '010.0.0.0/8', '10.0.0/8', 'fe80::1%eth0', '2001:db8::/129', '2001:db8::1/32', 'example.com', ' 10.0.0.1', '10.0.0.0/-1', '10.0.0.0/8/8']) {
      expect(paths({ source_ip: ['127.0.0.1', bad] }), bad).toEqual(['constraints.source_ip.1']);
    }
    expect(paths({ source_ip: [42] })).toEqual(['constraints.source_ip.0']);
    for (const good of ['0.0.0.0/0', '::/0', '10.0.0.0/8', '10.1.2.3', '2001:db8::/32', '::ffff:10.0.0.0/104', '::ffff:0:0/96']) expect(parseCidr(good).ok, good).toBe(true);
  });

  it('validates args', () => {
    const a = (args: unknown) => paths({ args });
    expect(a({ amount: {} })).toEqual(['constraints.args.amount']);
    expect(a({ amount: 5 })).toEqual(['constraints.args.amount']);
    expect(a({ amount: { min: 10, max: 1 } })).toEqual(['constraints.args.amount.min']);
    expect(a({ amount: { max: '100' } })).toEqual(['constraints.args.amount.max']);
    expect(a({ amount: { max: Number.POSITIVE_INFINITY } })).toEqual(['constraints.args.amount.max']);
    expect(a({ c: { in: [] } })).toEqual(['constraints.args.c.in']);
    expect(a({ c: { in: [true] } })).toEqual(['constraints.args.c.in']);
    expect(a({ c: { equals: null } })).toEqual(['constraints.args.c.equals']);
    expect(a({ c: { equals: { x: 1 } } })).toEqual(['constraints.args.c.equals']);
    expect(a({ c: { prefix: 1, glob: 2 } })).toEqual(['constraints.args.c.prefix', 'constraints.args.c.glob']);
    expect(a({ 'a.b': { equals: 1 } })).toEqual(['constraints.args.a.b']);
    expect(a([])).toEqual(['constraints.args']);
    expect(a({})).toEqual([]);
  });

  it('validates scalars', () => {
    expect(paths({ requires_approval: 'yes' })).toEqual(['constraints.requires_approval']);
    for (const t of [0, 86401, 1.5, '60']) expect(paths({ max_token_ttl_seconds: t })).toEqual(['constraints.max_token_ttl_seconds']);
    expect(paths({ max_token_ttl_seconds: 86400 })).toEqual([]);
  });

  it('collects several errors at once', () => {
    expect(paths({ not_before: 'x', source_ip: ['nope'], foo: 1 })).toEqual(['constraints.foo', 'constraints.not_before', 'constraints.source_ip.0']);
  });

  it('does not let __proto__ argument names pollute prototypes', () => {
    const c = valid(JSON.parse('{"args":{"__proto__":{"equals":1}}}'));
    expect(Object.getPrototypeOf(c.args)).toBe(Object.prototype);
    expect(Object.keys(c.args!)).toEqual(['__proto__']);
    expect(evaluateConstraints([c], at('2026-01-01T00:00:00Z', { args: {} })).ok).toBe(false);
    expect(evaluateConstraints([c], at('2026-01-01T00:00:00Z', { args: JSON.parse('{"__proto__":1}') })).ok).toBe(true);
  });
});

describe('evaluateConstraints', () => {
  it('passes an empty chain and empty constraints', () => {
    expect(evaluateConstraints([], at('2026-01-01T00:00:00Z'))).toEqual({ ok: true });
    expect(evaluateConstraints([{}], at('2026-01-01T00:00:00Z'))).toEqual({ ok: true });
  });

  it('not_before', () => {
    const c = valid({ not_before: '2026-01-01T10:00:00+01:00' });
    expect(evaluateConstraints([c], at('2026-01-01T08:59:59Z'))).toMatchObject({ ok: false, reason: 'not_yet_valid' });
    expect(evaluateConstraints([c], at('2026-01-01T09:00:00Z')).ok).toBe(true);
    expect(evaluateConstraints([c], { ...at('2026-01-01T09:00:00Z'), now: new Date(Number.NaN) }).ok).toBe(false);
    expect(evaluateConstraints([c], at('2025-01-01T00:00:00Z', { phase: 'exchange' })).ok).toBe(false);
  });

  describe('time_window', () => {
    // 2026-01-05 is a Monday; Berlin is UTC+1 in January, UTC+2 in July.
    const office = valid({ time_window: { days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '17:00', tz: 'Europe/Berlin' } });
    it.each([
      ['2026-01-05T07:59:59Z', false],
      ['2026-01-05T08:00:00Z', true],
      ['2026-01-05T15:59:59Z', true],
      ['2026-01-05T16:00:00Z', false], // 17:00 exactly is outside
      ['2026-01-10T10:00:00Z', false], // Saturday
      ['2026-07-06T07:00:00Z', true], // DST: 09:00 CEST
      ['2026-07-06T15:00:00Z', false], // 17:00 CEST
    ])('office hours at %s -> %s', (iso, ok) => {
      const r = evaluateConstraints([office], at(iso, { phase: 'exchange' }));
      expect(r.ok).toBe(ok);
      if (!r.ok) expect(r.reason).toBe('outside_time_window');
    });

    const night = { days: ['fri' as const], start: '22:00', end: '06:00' }; // UTC; 2026-01-09 is a Friday
    it.each([
      ['2026-01-09T21:59:00Z', false],
      ['2026-01-09T22:00:00Z', true],
      ['2026-01-09T23:59:00Z', true],
      ['2026-01-10T00:00:00Z', true], // Saturday morning belongs to Friday's window
      ['2026-01-10T05:59:00Z', true],
      ['2026-01-10T06:00:00Z', false],
      ['2026-01-10T22:30:00Z', false], // Saturday evening: no window starts on Saturday
      ['2026-01-09T05:00:00Z', false], // Friday morning belongs to Thursday's window
    ])('overnight window at %s -> %s', (iso, ok) => expect(inTimeWindow(night, new Date(iso))).toBe(ok));

    it('end 00:00 means until midnight', () => {
      const w = { start: '20:00', end: '00:00' };
      expect(inTimeWindow(w, new Date('2026-01-09T23:59:00Z'))).toBe(true);
      expect(inTimeWindow(w, new Date('2026-01-10T00:00:00Z'))).toBe(false);
    });

    it('fails closed on a bad zone or invalid date', () => {
      expect(inTimeWindow({ start: '00:00', end: '23:59', tz: 'Nope/Nope' }, new Date())).toBe(false);
      expect(inTimeWindow({ start: '00:00', end: '23:59' }, new Date(Number.NaN))).toBe(false);
    });

    it('days default to all and tz to UTC', () =>
      fc.assert(
        fc.property(fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }), (d) => {
          const m = d.getUTCHours() * 60 + d.getUTCMinutes();
          expect(inTimeWindow({ start: '09:00', end: '17:00' }, d)).toBe(m >= 540 && m < 1020);
          // a wrapping window is the complement of the plain one when every day is allowed
          expect(inTimeWindow({ start: '17:00', end: '09:00' }, d)).toBe(!(m >= 540 && m < 1020));
          expect(inTimeWindow({ start: '09:00', end: '17:00', days: [...WEEKDAYS] }, d)).toBe(m >= 540 && m < 1020);
        }),
      ));
  });

  describe('source_ip', () => {
    const c = valid({ source_ip: ['10.0.0.0/8', '2001:db8::/32', '192.168.1.7'] });
    it.each([
      ['10.1.2.3', true],
      ['::ffff:10.1.2.3', true],
      ['::ffff:a01:203', true],
      ['11.0.0.1', false],
      ['192.168.1.7', true],
      ['192.168.1.8', false],
      ['2001:db8:1::5', true],
      ['2001:db9::1', false],
      ['not-an-ip', false],
      ['', false],
    ])('%s -> %s', (ip, ok) => {
      const r = evaluateConstraints([c], at('2026-01-01T00:00:00Z', { phase: 'exchange', sourceIp: ip }));
      expect(r.ok).toBe(ok);
      if (!r.ok) expect(r.reason).toBe('source_ip_not_allowed');
    });
    it('is skipped when no source IP is given', () => {
      expect(evaluateConstraints([c], at('2026-01-01T00:00:00Z')).ok).toBe(true);
    });
    it('an IPv4 client matches an IPv4-mapped IPv6 rule', () => expect(ipAllowed(['::ffff:10.0.0.0/104'], '10.9.9.9')).toBe(true));
    it('fails closed on an unvalidated list', () => expect(ipAllowed(['garbage', '0.0.0.0/0'], '1.2.3.4')).toBe(false));

    const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
    const toInt = (b: number[]) => b.reduce((a, x) => (a << 8n) | BigInt(x), 0n);
    const v4str = (n: bigint) => [24n, 16n, 8n, 0n].map((s) => Number((n >> s) & 255n)).join('.');
    it('IPv4 matching agrees with a bigint reference', () =>
      fc.assert(
        fc.property(v4, fc.integer({ min: 0, max: 32 }), v4, fc.boolean(), (net, prefix, addr, mapped) => {
          const mask = ((1n << 32n) - 1n) ^ ((1n << BigInt(32 - prefix)) - 1n);
          const network = toInt(net) & mask;
          const a = toInt(addr);
          const client = mapped ? `::ffff:${v4str(a)}` : v4str(a);
          expect(ipAllowed([`${v4str(network)}/${prefix}`], client)).toBe((a & mask) === network);
          const inside = network | (a & ~mask & ((1n << 32n) - 1n));
          expect(ipAllowed([`${v4str(network)}/${prefix}`], v4str(inside))).toBe(true);
        }),
      ));

    const v6str = (n: bigint) => Array.from({ length: 8 }, (_, i) => ((n >> BigInt(112 - 16 * i)) & 0xffffn).toString(16)).join(':');
    it('IPv6 matching agrees with a bigint reference', () =>
      fc.assert(
        fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), fc.integer({ min: 0, max: 128 }), fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (net, prefix, a) => {
          const all = (1n << 128n) - 1n;
          const mask = all ^ ((1n << BigInt(128 - prefix)) - 1n);
          const network = net & mask;
          const isMapped = a >> 32n === 0xffffn;
          fc.pre(!isMapped);
          expect(ipAllowed([`${v6str(network)}/${prefix}`], v6str(a))).toBe((a & mask) === network);
          expect(ipAllowed([`${v6str(network)}/${prefix}`], v6str(network | (a & ~mask & all)))).toBe(true);
        }),
      ));
  });

  describe('args', () => {
    const c = valid({
      args: {
        amount: { min: 1, max: 100 },
        currency: { in: ['EUR', 'USD'] },
        to: { glob: '*@example.com', prefix: 'ops' },
        dry_run: { equals: false },
      },
    });
    const base = { amount: 50, currency: 'EUR', to: 'ops-team@example.com', dry_run: false };
    const run = (args: Record<string, unknown>, phase: 'use' | 'exchange' = 'use') => evaluateConstraints([c], at('2026-01-01T00:00:00Z', { args, phase }));

    it('passes when every condition holds', () => expect(run(base)).toEqual({ ok: true }));
    it('are not checked at exchange', () => expect(run({}, 'exchange')).toEqual({ ok: true }));
    it.each([
      [{ amount: 101 }, 'amount'],
      [{ amount: 0.5 }, 'amount'],
      [{ amount: '50' }, 'amount'], // numeric strings are not numbers
      [{ amount: Number.NaN }, 'amount'],
      [{ amount: Number.POSITIVE_INFINITY }, 'amount'],
      [{ currency: 'GBP' }, 'currency'],
      [{ to: 'ops@example.com.evil' }, 'to'],
      [{ to: 'dev@example.com' }, 'to'],
      [{ to: 42 }, 'to'],
      [{ dry_run: 'false' }, 'dry_run'],
      [{ dry_run: undefined }, 'dry_run'],
    ])('fails %j on %s', (patch, name) => expect(run({ ...base, ...patch })).toMatchObject({ ok: false, reason: `constraint_failed:args.${name}` }));
    it('fails when a constrained argument is missing', () => {
      const { amount: _, ...rest } = base;
      expect(run(rest)).toMatchObject({ ok: false, reason: 'constraint_failed:args.amount' });
      expect(evaluateConstraints([c], at('2026-01-01T00:00:00Z'))).toMatchObject({ ok: false, reason: 'constraint_failed:args.amount' });
    });
    it('ignores unconstrained extra arguments', () => expect(run({ ...base, other: 'x' }).ok).toBe(true));
    it('equals/in compare strictly', () => {
      const e = valid({ args: { n: { equals: 5 }, m: { in: [1, '2'] } } });
      const ev = (args: Record<string, unknown>) => evaluateConstraints([e], at('2026-01-01T00:00:00Z', { args })).ok;
      expect(ev({ n: 5, m: 1 })).toBe(true);
      expect(ev({ n: '5', m: 1 })).toBe(false);
      expect(ev({ n: 5, m: 2 })).toBe(false);
      expect(ev({ n: 5, m: '2' })).toBe(true);
    });
  });

  it('the first failure along the chain wins, root first', () => {
    const root = valid({ source_ip: ['10.0.0.0/8'] });
    const child = valid({ not_before: '2030-01-01T00:00:00Z' });
    const ctx = at('2026-01-01T00:00:00Z', { phase: 'exchange', sourceIp: '8.8.8.8' });
    expect(evaluateConstraints([root, child], ctx)).toMatchObject({ reason: 'source_ip_not_allowed' });
    expect(evaluateConstraints([child, root], ctx)).toMatchObject({ reason: 'not_yet_valid' });
    expect(evaluateConstraints([root, child], { ...ctx, sourceIp: '10.0.0.1' })).toMatchObject({ reason: 'not_yet_valid' });
  });
});

describe('globMatch', () => {
  it.each([
    ['*@example.com', 'a@example.com', true],
    ['*@example.com', '@example.com', true],
    ['*@example.com', 'a@example.com.x', false],
    ['a?c', 'abc', true],
    ['a?c', 'ac', false],
    ['a?c', 'a😀c', true],
    ['a.c', 'abc', false],
    ['[a]', '[a]', true],
    ['', '', true],
    ['', 'x', false],
    ['*', '', true],
    ['**a**', 'bab', true],
  ])('%j ~ %j = %s', (p, v, want) => expect(globMatch(p, v)).toBe(want));

  it('agrees with an anchored regex reference', () => {
    const chars = fc.constantFrom('a', 'b', '.', '*', '?', '😀');
    fc.assert(
      fc.property(fc.array(chars, { maxLength: 8 }), fc.array(fc.constantFrom('a', 'b', '.', '😀'), { maxLength: 10 }), (pc, vc) => {
        const pattern = pc.join('');
        const re = new RegExp(`^${pc.map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('')}$`, 'su');
        expect(globMatch(pattern, vc.join(''))).toBe(re.test(vc.join('')));
      }),
    );
  });

  it('is fast on pathological patterns', () => {
    const t = Date.now();
    expect(globMatch('*a*a*a*a*a*a*a*a*b', 'a'.repeat(5000))).toBe(false);
    expect(Date.now() - t).toBeLessThan(1000);
  });
});

describe('chain helpers', () => {
  it('effectiveMaxTokenTtl is the minimum along the chain', () => {
    expect(effectiveMaxTokenTtl([])).toBeUndefined();
    expect(effectiveMaxTokenTtl([{}, { max_token_ttl_seconds: 600 }, {}, { max_token_ttl_seconds: 60 }, { max_token_ttl_seconds: 300 }])).toBe(60);
  });
  it('requiresApproval is an OR along the chain', () => {
    expect(requiresApproval([{}, { requires_approval: false }])).toBe(false);
    expect(requiresApproval([{ requires_approval: false }, { requires_approval: true }])).toBe(true);
  });
});

// ---------------------------------------------------------------- property tests over random constraints

const hhmm = fc.tuple(fc.integer({ min: 0, max: 23 }), fc.constantFrom(0, 15, 30, 59)).map(([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`);
const condition = fc
  .record(
    {
      equals: fc.oneof(fc.constantFrom('a', 'b'), fc.integer({ min: 0, max: 3 }), fc.boolean()),
      in: fc.array(fc.oneof(fc.constantFrom('a', 'b'), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 3 }),
      max: fc.integer({ min: 0, max: 5 }),
      prefix: fc.constantFrom('', 'a', 'ab'),
      glob: fc.constantFrom('*', 'a*', '?b', 'a?*'),
    },
    { requiredKeys: [] },
  )
  .filter((c) => Object.keys(c).length > 0);
const constraintsArb: fc.Arbitrary<Constraints> = fc.record(
  {
    not_before: fc.constantFrom('2026-01-01T00:00:00Z', '2026-06-01T12:00:00+02:00', '2027-01-01T00:00:00Z'),
    time_window: fc
      .record(
        { start: hhmm, end: hhmm, days: fc.uniqueArray(fc.constantFrom(...WEEKDAYS), { minLength: 1 }), tz: fc.constantFrom('UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata') },
        { requiredKeys: ['start', 'end'] },
      )
      .filter((w) => w.start !== w.end),
    source_ip: fc.uniqueArray(fc.constantFrom('10.0.0.0/8', '10.1.0.0/16', '192.168.0.0/16', '2001:db8::/32', '::1', '0.0.0.0/0'), { minLength: 1 }),
    args: fc.dictionary(fc.constantFrom('x', 'y', 'z'), condition, { maxKeys: 2 }),
    requires_approval: fc.boolean(),
    max_token_ttl_seconds: fc.integer({ min: 1, max: 86_400 }),
  },
  { requiredKeys: [] },
);
const ctxArb: fc.Arbitrary<EvaluationContext> = fc.record(
  {
    now: fc.date({ min: new Date('2025-06-01T00:00:00Z'), max: new Date('2027-06-01T00:00:00Z'), noInvalidDate: true }),
    sourceIp: fc.constantFrom('10.1.2.3', '10.2.0.1', '::ffff:192.168.3.4', '8.8.8.8', '2001:db8::9', '::1'),
    args: fc.dictionary(fc.constantFrom('x', 'y', 'z'), fc.oneof(fc.constantFrom('a', 'b', 'ab', 'abb', '2'), fc.integer({ min: -1, max: 6 }), fc.boolean())),
    phase: fc.constantFrom('exchange' as const, 'use' as const),
  },
  { requiredKeys: ['now', 'phase'] },
);

describe('constraint properties', () => {
  it('generated constraints validate to themselves and survive JSON', () =>
    fc.assert(
      fc.property(constraintsArb, (c) => {
        expect(validateConstraints(c)).toEqual({ ok: true, value: c });
        expect(validateConstraints(JSON.parse(JSON.stringify(c)))).toEqual({ ok: true, value: c });
      }),
    ));

  it('adding a link to the chain can only narrow', () =>
    fc.assert(
      fc.property(fc.array(constraintsArb, { maxLength: 3 }), constraintsArb, ctxArb, (chain, child, ctx) => {
        const withChild = evaluateConstraints([...chain, child], ctx);
        if (withChild.ok) expect(evaluateConstraints(chain, ctx).ok).toBe(true);
        // and a failure of the chain is still reported unchanged with the child appended
        const without = evaluateConstraints(chain, ctx);
        if (!without.ok) expect(withChild).toEqual(without);
      }),
      { numRuns: 500 },
    ));

  it('evaluation is order-independent in its verdict', () =>
    fc.assert(
      fc.property(fc.array(constraintsArb, { maxLength: 4 }), ctxArb, (chain, ctx) => {
        expect(evaluateConstraints([...chain].reverse(), ctx).ok).toBe(evaluateConstraints(chain, ctx).ok);
      }),
    ));

  it('TTL and approval are monotone along the chain', () =>
    fc.assert(
      fc.property(fc.array(constraintsArb, { maxLength: 4 }), constraintsArb, (chain, child) => {
        const before = effectiveMaxTokenTtl(chain);
        const after = effectiveMaxTokenTtl([...chain, child]);
        if (before !== undefined) expect(after).toBeLessThanOrEqual(before);
        if (requiresApproval(chain)) expect(requiresApproval([...chain, child])).toBe(true);
      }),
    ));
});
