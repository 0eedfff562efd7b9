import { Body, Controller, Get, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { ApiBasicAuth, ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { DelegationsService, DelegationTreeNode, Principal } from '../../../../libs/core/src/index.js';
import { AgentEntity } from '../../../../libs/persistence/src/index.js';
import { AgentClientGuard, CurrentAgent } from '../auth/agent-client.guard.js';
import { CurrentPrincipal, PersonAuthGuard } from '../auth/person-auth.guard.js';
import { iso, presentGrant } from '../http/presenters.js';
import { grantTerms, rateLimit } from '../http/schemas.js';
import { uuidPipe } from '../http/uuid.pipe.js';
import { ApiZodBody, ZodPipe } from '../http/zod.js';

/** Omitted fields inherit the parent's; `rate_limit: null` asks for no limit (refused when the parent has one). */
export const delegateBody = z
  .object({
    agent_id: z.string().uuid(),
    action: z.string().min(1).max(128).optional(),
    constraints: z.record(z.string(), z.unknown()).optional(),
    rate_limit: rateLimit.nullable().optional(),
    max_uses: z.number().int().min(1).max(1_000_000_000).optional(),
    expires_at: z.iso.datetime({ offset: true }).optional(),
    max_delegation_depth: z.number().int().min(0).max(32).optional(),
    purpose: z.string().max(1000).optional(),
  })
  .strict();

export interface TreeNodeJson {
  id: string;
  agent_id: string;
  action: string;
  status: string;
  expires_at: string | null;
  live_tokens: number;
  children: TreeNodeJson[];
}

/** Iterative, so a deep or wide tree cannot exhaust the stack. */
export function presentTree(root: DelegationTreeNode): TreeNodeJson {
  const toJson = (n: DelegationTreeNode): TreeNodeJson => ({
    id: n.grant.id,
    agent_id: n.grant.agentId,
    action: n.grant.action,
    status: n.status,
    expires_at: iso(n.grant.expiresAt),
    live_tokens: n.liveTokens,
    children: [],
  });
  const out = toJson(root);
  const stack: [DelegationTreeNode, TreeNodeJson][] = [[root, out]];
  while (stack.length) {
    const [node, json] = stack.pop()!;
    for (const child of node.children) {
      const c = toJson(child);
      json.children.push(c);
      stack.push([child, c]);
    }
  }
  return out;
}

@ApiTags('grants')
@Controller('v1/grants')
export class DelegationsController {
  constructor(private readonly delegations: DelegationsService) {}

  @Post(':id/delegations')
  @HttpCode(201)
  @UseGuards(AgentClientGuard)
  @ApiBasicAuth()
  @ApiOperation({ summary: 'The grant\'s agent hands a narrower part of it to another agent (a sub-grant); 422 attenuation_violation names every widening' })
  @ApiZodBody(delegateBody)
  async delegate(@CurrentAgent() agent: AgentEntity, @Param('id', uuidPipe) id: string, @Body(new ZodPipe(delegateBody)) b: z.infer<typeof delegateBody>) {
    const grant = await this.delegations.delegate(agent, id, grantTerms(b));
    return presentGrant(grant);
  }

  @Get(':id/tree')
  @UseGuards(PersonAuthGuard)
  @ApiBearerAuth()
  @ApiOperation({ summary: 'The delegation tree under a grant: per node the agent, action, status, expiry and live tokens' })
  async tree(@CurrentPrincipal() principal: Principal, @Param('id', uuidPipe) id: string) {
    return presentTree(await this.delegations.tree(principal, id));
  }
}
