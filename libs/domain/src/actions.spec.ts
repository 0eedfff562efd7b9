import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ACTION_PATTERN, actionCovers, formatScope, isValidAction, parseScope } from './actions.js';

const segment = fc.stringMatching(/^[a-z0-9_.-]{1,6}$/);
const concreteAction = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join(':'));
const action = fc.oneof(
  concreteAction,
  concreteAction.map((a) => `${a}:*`),
  fc.constant('*'),
  // small alphabet so covering relations actually occur
  fc.array(fc.constantFrom('a', 'b', 'ab'), { minLength: 1, maxLength: 3 }).chain((s) =>
    fc.constantFrom(s.join(':'), `${s.join(':')}:*`),
  ),
);

describe('isValidAction', () => {
  it.each(['email:read', 'calendar:events:write', 'email:*', '*', 'a', 'x_1.y-z:w'])('accepts %s', (a) => {
    expect(isValidAction(a)).toBe(true);
  });
  it.each(['', 'Email:read', 'email:', ':read', 'email::read', 'email:*:read', 'email*', '*:read', 'email:**', 'a b', 'email:read\n', 'a'.repeat(129)])(
    'rejects %j',
    (a) => expect(isValidAction(a)).toBe(false),
  );
  it('accepts exactly 128 characters', () => {
    expect(isValidAction('a'.repeat(128))).toBe(true);
    expect(ACTION_PATTERN.test('a'.repeat(126) + ':*')).toBe(true);
  });
  it('rejects non-strings', () => expect(isValidAction(42)).toBe(false));
});

describe('actionCovers', () => {
  it.each([
    ['email:read', 'email:read', true],
    ['email:*', 'email:read', true],
    ['email:*', 'email:drafts:write', true],
    ['email:*', 'email:drafts:*', true],
    ['email:*', 'email:*', true],
    ['*', 'anything:at:all', true],
    ['*', '*', true],
    ['*', 'email:*', true],
    ['email:*', 'emails:read', false],
    ['email:*', 'email', false],
    ['email:*', '*', false],
    ['email:drafts:*', 'email:*', false],
    ['email:read', 'email:*', false],
    ['email:read', 'email:read:*', false],
    ['email:read', 'email:write', false],
    ['email', 'email:read', false],
    ['email:*', 'EMAIL:read', false],
    ['bad::', 'bad::', false],
  ])('%s covers %s = %s', (p, c, want) => expect(actionCovers(p, c)).toBe(want));

  it('is reflexive on valid actions', () => fc.assert(fc.property(action, (a) => actionCovers(a, a))));
  it('is transitive', () =>
    fc.assert(fc.property(action, action, action, (a, b, c) => !(actionCovers(a, b) && actionCovers(b, c)) || actionCovers(a, c))));
  it('is antisymmetric', () => fc.assert(fc.property(action, action, (a, b) => !(actionCovers(a, b) && actionCovers(b, a)) || a === b)));
  it('a concrete parent covers only itself', () =>
    fc.assert(fc.property(concreteAction, action, (p, c) => actionCovers(p, c) === (p === c))));
  it('a wildcard child is only covered by a wildcard', () =>
    fc.assert(fc.property(action, action, (p, c) => !(actionCovers(p, c) && (c === '*' || c.endsWith(':*'))) || p === '*' || p.endsWith(':*'))));
});

describe('scope', () => {
  it('parses per RFC 6749 §3.3', () => {
    expect(parseScope(undefined)).toEqual([]);
    expect(parseScope('')).toEqual([]);
    expect(parseScope('email:read')).toEqual(['email:read']);
    expect(parseScope('b a b  c')).toEqual(['b', 'a', 'c']);
  });
  it('formats with single spaces and dedupes', () => expect(formatScope(['a', 'b', 'a'])).toBe('a b'));
  it('round-trips', () =>
    fc.assert(
      fc.property(fc.array(action), (as) => {
        const dedup = [...new Set(as)];
        expect(parseScope(formatScope(as))).toEqual(dedup);
      }),
    ));
});
