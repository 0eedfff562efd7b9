import { describe, expect, it } from 'vitest';
import { bindingBudget, GrantLimits, GrantUsage, remainingUses } from './budget.js';

const NOW = 1_900_000_000_000;
const grant = (id: string, rate: [number, number] | null, maxUses: number | null = null): GrantLimits => ({
  id,
  rateLimit: rate && { max: rate[0], window_seconds: rate[1] },
  maxUses,
  expiresAt: null,
});
const usage = (entries: [string, Partial<GrantUsage>][]) =>
  new Map(entries.map(([id, u]) => [id, { windowUsed: 0, windowResetsAt: null, usesUsed: 0, ...u }]));

describe('remainingUses', () => {
  it('is null when nothing in the chain is limited', () => {
    expect(remainingUses([grant('a', null)], new Map(), NOW)).toBeNull();
  });

  it('is the smallest room left over every window and lifetime budget of the chain', () => {
    const chain = [grant('root', [10, 60], 100), grant('leaf', [3, 3600])];
    const u = usage([
      ['root', { windowUsed: 4, windowResetsAt: NOW + 1000, usesUsed: 98 }],
      ['leaf', { windowUsed: 1, windowResetsAt: NOW + 1000 }],
    ]);
    expect(remainingUses(chain, u, NOW)).toBe(2); // root lifetime: 100 - 98
  });

  it('ignores a window that has ended but was not evicted yet', () => {
    const chain = [grant('a', [3, 60])];
    expect(remainingUses(chain, usage([['a', { windowUsed: 3, windowResetsAt: NOW }]]), NOW)).toBe(3);
    expect(remainingUses(chain, usage([['a', { windowUsed: 3, windowResetsAt: NOW + 1 }]]), NOW)).toBe(0);
  });

  it('never goes below zero', () => {
    expect(remainingUses([grant('a', null, 2)], usage([['a', { usesUsed: 5 }]]), NOW)).toBe(0);
  });
});

describe('bindingBudget', () => {
  it('reports the limit closest to refusing, with its reset time in seconds', () => {
    const chain = [grant('root', [10, 60]), grant('leaf', [3, 3600])];
    const u = usage([
      ['root', { windowUsed: 2, windowResetsAt: NOW + 30_500 }],
      ['leaf', { windowUsed: 1, windowResetsAt: NOW + 10_000 }],
    ]);
    expect(bindingBudget(chain, u, NOW)).toEqual({ grant_id: 'leaf', used: 1, max: 3, resets_at: Math.ceil((NOW + 10_000) / 1000) });
  });

  it('prefers the lifetime budget on a tie (it never resets), then the grant nearest the root', () => {
    const u = usage([['a', { windowUsed: 1, windowResetsAt: NOW + 1000, usesUsed: 1 }]]);
    expect(bindingBudget([grant('a', [3, 60], 3)], u, NOW)).toEqual({ grant_id: 'a', used: 1, max: 3, resets_at: null });
    expect(bindingBudget([grant('root', [5, 60]), grant('leaf', [5, 60])], new Map(), NOW)).toMatchObject({ grant_id: 'root', used: 0, resets_at: null });
  });

  it('is null without limits', () => {
    expect(bindingBudget([grant('a', null)], new Map(), NOW)).toBeNull();
  });
});
