import { z } from 'zod';
import { decodeCursor } from '../../../../libs/persistence/src/index.js';

const jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(20) });
const url = z.string().url().max(2048);
const uuid = z.string().uuid();

export const paginationQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z
    .string()
    .max(200)
    .optional()
    .transform((c, ctx) => {
      if (c === undefined) return null;
      const id = decodeCursor(c);
      if (!id) ctx.addIssue({ code: 'custom', message: 'not a cursor this API issued' });
      return id;
    }),
});

export const registerAgentBody = z
  .object({
    name: z.string().trim().min(1).max(200),
    jwks: jwks.optional(),
    workload_identity: z.object({ issuer: url, subject: z.string().min(1).max(500) }).strict().optional(),
  })
  .strict();

export const registerResourceServerBody = z
  .object({
    name: z.string().trim().min(1).max(200),
    audience: z.string().min(1).max(2048),
    webhook_url: url.optional(),
    jwks: jwks.optional(),
  })
  .strict();

export const rateLimit = z.object({ max: z.number().int().min(1).max(1_000_000_000), window_seconds: z.number().int().min(1).max(31_536_000) }).strict();

export const createGrantBody = z
  .object({
    agent_id: uuid,
    resource: z.string().min(1).max(2048),
    action: z.string().min(1).max(128),
    constraints: z.record(z.string(), z.unknown()).optional(),
    rate_limit: rateLimit.optional(),
    max_uses: z.number().int().min(1).max(1_000_000_000).optional(),
    expires_at: z.iso.datetime({ offset: true }).optional(),
    max_delegation_depth: z.number().int().min(0).max(32).optional(),
    purpose: z.string().max(1000).optional(),
    autonomous: z.boolean().optional(),
  })
  .strict();

export const listGrantsQuery = paginationQuery.extend({
  agent_id: uuid.optional(),
  resource: z.string().max(2048).optional(),
  action: z.string().max(128).optional(),
  status: z.enum(['active', 'revoked', 'expired']).optional(),
});

export const revokeGrantBody = z.object({ reason: z.string().max(1000).optional() }).strict();

export const uuidParam = uuid;

/** The fields a grant body and a sub-grant body share. */
interface GrantTermsBody {
  agent_id: string;
  action?: string;
  constraints?: Record<string, unknown>;
  rate_limit?: unknown;
  max_uses?: number;
  expires_at?: string;
  max_delegation_depth?: number;
  purpose?: string;
}

/** Those shared fields as the grant services take them (field types follow the body's own schema). */
export function grantTerms<B extends GrantTermsBody>(b: B) {
  return {
    agentId: b.agent_id.toLowerCase(),
    action: b.action as B['action'],
    constraints: b.constraints,
    rateLimit: b.rate_limit as B['rate_limit'],
    maxUses: b.max_uses,
    expiresAt: b.expires_at ? new Date(b.expires_at) : undefined,
    maxDelegationDepth: b.max_delegation_depth,
    purpose: b.purpose,
  };
}
