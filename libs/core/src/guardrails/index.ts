import { ApprovalsService } from './approvals.service.js';
import { AuthorizeService } from './authorize.service.js';
import { IssuanceGuard } from './issuance-guard.js';
import { RateLimiter } from './rate-limiter.js';

export * from './budget.js';
export * from './decision.js';
export * from './rate-limiter.js';
export * from './approvals.service.js';
export * from './issuance-guard.js';
export * from './authorize.service.js';

/** Constraints at use, rate limits and budgets, human approval, action-level decisions (docs/constraints.md). */
export const GUARDRAIL_SERVICES = [RateLimiter, ApprovalsService, IssuanceGuard, AuthorizeService];
