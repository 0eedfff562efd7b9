import { Body, Controller, Get, HttpCode, Param, Post, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { AgentsService, Principal } from '../../../../libs/core/src/index.js';
import { AdminOnly, CurrentPrincipal, PersonAuthGuard } from '../auth/person-auth.guard.js';
import { presentAgent, presentPage } from '../http/presenters.js';
import { paginationQuery, registerAgentBody } from '../http/schemas.js';
import { ApiZodBody, ApiZodQuery, ZodPipe } from '../http/zod.js';
import { uuidPipe } from '../http/uuid.pipe.js';

@ApiTags('agents')
@ApiBearerAuth()
@Controller('v1/agents')
@UseGuards(PersonAuthGuard)
@AdminOnly()
export class AgentsController {
  constructor(private readonly agents: AgentsService) {}

  @Post()
  @ApiOperation({ summary: 'Register an agent; the client_secret is shown only in this response' })
  @ApiZodBody(registerAgentBody)
  async register(@CurrentPrincipal() by: Principal, @Body(new ZodPipe(registerAgentBody)) body: z.infer<typeof registerAgentBody>) {
    const { agent, clientSecret } = await this.agents.register(by, { name: body.name, jwks: body.jwks, workloadIdentity: body.workload_identity });
    return { ...presentAgent(agent), client_secret: clientSecret };
  }

  @Get()
  @ApiZodQuery(paginationQuery)
  async list(@Query(new ZodPipe(paginationQuery, 'query')) q: z.infer<typeof paginationQuery>) {
    return presentPage(await this.agents.list(q.limit, q.cursor), presentAgent);
  }

  @Get(':id')
  async get(@Param('id', uuidPipe) id: string) {
    return presentAgent(await this.agents.get(id));
  }

  @Post(':id/disable')
  @HttpCode(200)
  @ApiOperation({ summary: 'Disable an agent: it can no longer authenticate and all its tokens introspect inactive' })
  async disable(@CurrentPrincipal() by: Principal, @Param('id', uuidPipe) id: string) {
    return presentAgent(await this.agents.disable(id, by));
  }
}

