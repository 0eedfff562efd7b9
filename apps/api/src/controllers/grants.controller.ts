import { Body, Controller, Get, HttpCode, Param, Post, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { GrantsService, Principal } from '../../../../libs/core/src/index.js';
import { Actor, CurrentActor, PersonOrAgentGuard } from '../auth/agent-client.guard.js';
import { CurrentPrincipal, PersonAuthGuard } from '../auth/person-auth.guard.js';
import { presentGrant, presentIssuedToken, presentPage } from '../http/presenters.js';
import { createGrantBody, grantTerms, listGrantsQuery, paginationQuery, revokeGrantBody } from '../http/schemas.js';
import { uuidPipe } from '../http/uuid.pipe.js';
import { ApiZodBody, ApiZodQuery, ZodPipe } from '../http/zod.js';

@ApiTags('grants')
@ApiBearerAuth()
@Controller('v1/grants')
export class GrantsController {
  constructor(private readonly grants: GrantsService) {}

  @Post()
  @UseGuards(PersonAuthGuard)
  @ApiOperation({ summary: 'Grant one capability (an action on a resource) to an agent' })
  @ApiZodBody(createGrantBody)
  async create(@CurrentPrincipal() principal: Principal, @Body(new ZodPipe(createGrantBody)) b: z.infer<typeof createGrantBody>) {
    const grant = await this.grants.create(principal, { ...grantTerms(b), resource: b.resource, autonomous: b.autonomous });
    return presentGrant(grant);
  }

  @Get()
  @UseGuards(PersonAuthGuard)
  @ApiOperation({ summary: 'List the grants you gave (admins: all grants), newest first' })
  @ApiZodQuery(listGrantsQuery)
  async list(@CurrentPrincipal() principal: Principal, @Query(new ZodPipe(listGrantsQuery, 'query')) q: z.infer<typeof listGrantsQuery>) {
    const page = await this.grants.list(principal, { agentId: q.agent_id, resource: q.resource, action: q.action, status: q.status }, q.limit, q.cursor);
    return presentPage(page, presentGrant);
  }

  @Get(':id')
  @UseGuards(PersonAuthGuard)
  async get(@CurrentPrincipal() principal: Principal, @Param('id', uuidPipe) id: string) {
    return presentGrant(await this.grants.get(principal, id));
  }

  @Get(':id/tokens')
  @UseGuards(PersonAuthGuard)
  @ApiOperation({ summary: 'Tokens issued on this grant (records, never the tokens themselves)' })
  @ApiZodQuery(paginationQuery)
  async tokens(@CurrentPrincipal() principal: Principal, @Param('id', uuidPipe) id: string, @Query(new ZodPipe(paginationQuery, 'query')) q: z.infer<typeof paginationQuery>) {
    return presentPage(await this.grants.listTokens(principal, id, q.limit, q.cursor), presentIssuedToken);
  }

  @Post(':id/revoke')
  @HttpCode(200)
  // People: the principal (admins: any grant). Agents, as OAuth clients: what they delegated (docs/delegation.md).
  @UseGuards(PersonOrAgentGuard)
  @ApiOperation({ summary: 'Revoke a grant and its delegation subtree; idempotent' })
  @ApiZodBody(revokeGrantBody)
  async revoke(@CurrentActor() actor: Actor, @Param('id', uuidPipe) id: string, @Body(new ZodPipe(revokeGrantBody)) b: z.infer<typeof revokeGrantBody>) {
    const reason = b.reason ?? null;
    const { grant } = actor.kind === 'person' ? await this.grants.revoke(actor.principal, id, reason) : await this.grants.revokeAsAgent(actor.agent.id, id, reason);
    return presentGrant(grant);
  }
}
