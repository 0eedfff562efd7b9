import { actionCovers, isValidAction } from './actions.js';
import type { Constraints } from './constraints.js';

/**
 * Rules for deriving a sub-grant from a parent grant. A child may only narrow: every widening is
 * reported as a violation, nothing is silently clamped. Constraints are not compared here: the
 * child's own constraints are ANDed with the parent's at runtime, so they can only narrow.
 */

export interface RateLimit {
  max: number;
  windowSeconds: number;
}

export interface ParentGrant {
  action: string;
  resource: string;
  constraints: Constraints;
  rateLimit: RateLimit | null;
  /** Lifetime use cap of the parent, null = unlimited. */
  maxUses: number | null;
  /** Uses the parent already consumed (default 0); the child budget must fit in what remains. */
  usesConsumed?: number;
  expiresAt: Date | null;
  maxDelegationDepth: number;
  /** 0 for a root grant. */
  depth: number;
  /** The principal's agent at the root first ... this grant's agent last. */
  chainAgentIds: string[];
  childCount: number;
}

export interface DelegationRequest {
  agentId: string;
  action?: string;
  constraints?: Constraints;
  /** Omitted inherits the parent's; null asks for no limit (a widening if the parent has one). */
  rateLimit?: RateLimit | null;
  maxUses?: number;
  expiresAt?: Date;
  maxDelegationDepth?: number;
}

export interface DelegationLimits {
  maxChainDepth: number;
  maxChildrenPerGrant: number;
  now: Date;
}

export const DEFAULT_MAX_CHAIN_DEPTH = 5;

export interface ChildGrant {
  action: string;
  resource: string;
  constraints: Constraints;
  rateLimit: RateLimit | null;
  maxUses: number | null;
  expiresAt: Date | null;
  maxDelegationDepth: number;
  depth: number;
}

export type AttenuationRule =
  | 'not_delegatable'
  | 'chain_too_deep'
  | 'too_many_children'
  | 'delegation_loop'
  | 'action_widened'
  | 'expiry_widened'
  | 'expiry_in_past'
  | 'depth_widened'
  | 'rate_limit_widened'
  | 'budget_widened'
  | 'budget_exhausted'
  | 'invalid_value';

export interface AttenuationViolation {
  rule: AttenuationRule;
  field: string;
  message: string;
}

export type AttenuationResult = { ok: true; child: ChildGrant } | { ok: false; violations: AttenuationViolation[] };

const isPositiveInt = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) > 0;
const isValidDate = (d: unknown): d is Date => d instanceof Date && !Number.isNaN(d.getTime());

/**
 * A child rate limit is narrower iff max <= parent.max AND windowSeconds >= parent.windowSeconds:
 * any parent-length interval lies inside one child window, so it sees at most child.max <= parent.max uses.
 */
export function rateLimitWithin(child: RateLimit | null, parent: RateLimit | null): boolean {
  if (parent === null) return true;
  return child !== null && child.max <= parent.max && child.windowSeconds >= parent.windowSeconds;
}

/** Remaining lifetime budget of the parent; null = unlimited. */
export function remainingUses(parent: Pick<ParentGrant, 'maxUses' | 'usesConsumed'>): number | null {
  return parent.maxUses === null ? null : Math.max(0, parent.maxUses - (parent.usesConsumed ?? 0));
}

/** All violations are collected (not just the first) so a client can fix a request in one round trip. */
export function attenuate(parent: ParentGrant, request: DelegationRequest, limits: DelegationLimits): AttenuationResult {
  const violations: AttenuationViolation[] = [];
  const v = (rule: AttenuationRule, field: string, message: string) => violations.push({ rule, field, message });
  const depth = parent.depth + 1;

  if (!(parent.maxDelegationDepth > 0)) v('not_delegatable', 'grant', 'the parent grant does not allow delegation');
  if (!(depth <= limits.maxChainDepth)) v('chain_too_deep', 'grant', `delegation chains are limited to depth ${limits.maxChainDepth}`);
  if (!(parent.childCount < limits.maxChildrenPerGrant)) {
    v('too_many_children', 'grant', `a grant may have at most ${limits.maxChildrenPerGrant} sub-grants`);
  }

  if (typeof request.agentId !== 'string' || request.agentId === '') v('invalid_value', 'agentId', 'agentId is required');
  else if (parent.chainAgentIds.includes(request.agentId)) {
    v('delegation_loop', 'agentId', 'the agent already appears in this delegation chain');
  }

  const action = request.action ?? parent.action;
  if (!isValidAction(action)) v('invalid_value', 'action', 'not a valid action');
  else if (!actionCovers(parent.action, action)) v('action_widened', 'action', `"${action}" is not covered by "${parent.action}"`);

  let expiresAt = parent.expiresAt;
  if (request.expiresAt !== undefined) {
    if (!isValidDate(request.expiresAt)) v('invalid_value', 'expiresAt', 'not a valid date');
    else {
      expiresAt = request.expiresAt;
      if (parent.expiresAt && expiresAt.getTime() > parent.expiresAt.getTime()) {
        v('expiry_widened', 'expiresAt', `must not be later than the parent's expiry ${parent.expiresAt.toISOString()}`);
      }
    }
  }
  // Also catches an inherited expiry of an already-expired parent: a child born expired is useless.
  if (expiresAt && isValidDate(expiresAt) && !(expiresAt.getTime() > limits.now.getTime())) {
    v('expiry_in_past', 'expiresAt', 'expiry must be in the future');
  }

  const depthAllowance = Math.max(0, parent.maxDelegationDepth - 1);
  let maxDelegationDepth = depthAllowance;
  if (request.maxDelegationDepth !== undefined) {
    maxDelegationDepth = request.maxDelegationDepth;
    if (!Number.isSafeInteger(maxDelegationDepth) || maxDelegationDepth < 0) {
      v('invalid_value', 'maxDelegationDepth', 'must be a non-negative integer');
    } else if (maxDelegationDepth > parent.maxDelegationDepth - 1) {
      v('depth_widened', 'maxDelegationDepth', `must be at most ${depthAllowance} (parent's minus one)`);
    }
  }

  let rateLimit = parent.rateLimit;
  if (request.rateLimit !== undefined) {
    rateLimit = request.rateLimit;
    if (rateLimit !== null && (!isPositiveInt(rateLimit.max) || !isPositiveInt(rateLimit.windowSeconds))) {
      v('invalid_value', 'rateLimit', 'max and windowSeconds must be positive integers');
    } else if (!rateLimitWithin(rateLimit, parent.rateLimit)) {
      v('rate_limit_widened', 'rateLimit', `must allow at most ${parent.rateLimit!.max} uses per ${parent.rateLimit!.windowSeconds}s or fewer`);
    }
  }

  const remaining = remainingUses(parent);
  let maxUses = remaining;
  if (request.maxUses !== undefined) {
    maxUses = request.maxUses;
    if (!isPositiveInt(maxUses)) v('invalid_value', 'maxUses', 'must be a positive integer');
    else if (remaining !== null && maxUses > remaining) {
      v(remaining === 0 ? 'budget_exhausted' : 'budget_widened', 'maxUses', `must not exceed the parent's remaining ${remaining} uses`);
    }
  } else if (remaining === 0) v('budget_exhausted', 'maxUses', 'the parent grant has no uses left');

  if (violations.length > 0) return { ok: false, violations };
  return {
    ok: true,
    child: {
      action,
      resource: parent.resource,
      constraints: request.constraints ?? {},
      rateLimit: rateLimit && { ...rateLimit },
      maxUses,
      expiresAt: expiresAt && new Date(expiresAt.getTime()),
      maxDelegationDepth,
      depth,
    },
  };
}
