import { actionCovers } from '../../../domain/src/actions.js';
import { Constraints, evaluateConstraints } from '../../../domain/src/constraints.js';
import { CapabilityDetail } from '../tokens/token-types.js';

/**
 * Stable reason codes of `POST /v1/authorize` (documented in docs/constraints.md). Constraint failures
 * add their own: `not_yet_valid`, `outside_time_window`, `constraint_failed:args.<name>`.
 */
export const REASON = {
  allowed: 'allowed',
  tokenInactive: 'token_inactive',
  actionNotGranted: 'action_not_granted',
  capabilityRevoked: 'capability_revoked',
  resourceNotGranted: 'resource_not_granted',
  rateLimited: 'rate_limited',
  budgetExhausted: 'budget_exhausted',
} as const;

export type CapabilityDecision = { ok: true; detail: CapabilityDetail } | { ok: false; reason: string; grantId: string | null; description: string };

export interface DecisionInput {
  /** Capabilities of the token that are still valid (every grant of their chain live). */
  live: CapabilityDetail[];
  /** Every capability the token was issued with, to tell "revoked" from "never granted". */
  issued: CapabilityDetail[];
  action: string;
  resource?: string;
  context?: Record<string, unknown>;
  now: Date;
}

/**
 * `resource` names the audience itself or something under it: `https://mail.example/inbox/42` is under
 * `https://mail.example`, `https://mail.example.evil` is not.
 */
export function resourceWithin(location: string, resource: string): boolean {
  if (resource === location) return true;
  if (!resource.startsWith(location)) return false;
  return location.endsWith('/') || ['/', '?', '#'].includes(resource[location.length]);
}

const covers = (d: CapabilityDetail, action: string) => Array.isArray(d.actions) && d.actions.some((a) => actionCovers(a, action));

/**
 * Which capability of a token (if any) allows `action` on `resource` with these call arguments, now.
 * Checks in a fixed order so the reason is predictable: action, then liveness, then resource, then the
 * constraints of every grant along the chain (AND). Rate limits are counted afterwards, by the caller.
 */
export function decideCapability(input: DecisionInput): CapabilityDecision {
  const { action, resource, context, now } = input;
  const granted = input.live.filter((d) => covers(d, action));
  if (!granted.length) {
    const dead = input.issued.find((d) => covers(d, action));
    if (dead) return { ok: false, reason: REASON.capabilityRevoked, grantId: dead.grant_id, description: 'the capability was revoked or has expired' };
    return { ok: false, reason: REASON.actionNotGranted, grantId: null, description: `the token does not carry "${action}"` };
  }
  const here = resource === undefined ? granted : granted.filter((d) => Array.isArray(d.locations) && d.locations.some((l) => resourceWithin(l, resource)));
  if (!here.length) return { ok: false, reason: REASON.resourceNotGranted, grantId: granted[0].grant_id, description: `"${action}" is not granted on ${resource}` };

  let firstFailure: CapabilityDecision | null = null;
  for (const d of here) {
    if (!Array.isArray(d.constraints)) {
      firstFailure ??= { ok: false, reason: 'constraint_failed:malformed', grantId: d.grant_id, description: 'the capability carries no readable constraints' };
      continue;
    }
    const r = evaluateConstraints(d.constraints as Constraints[], { now, args: context ?? {}, phase: 'use' });
    if (r.ok) return { ok: true, detail: d };
    firstFailure ??= { ok: false, reason: r.reason, grantId: d.grant_id, description: r.detail };
  }
  return firstFailure!;
}
