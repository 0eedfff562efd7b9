import { Body, Controller, Get, Post, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { Principal, ResourceServersService } from '../../../../libs/core/src/index.js';
import { AdminOnly, CurrentPrincipal, PersonAuthGuard } from '../auth/person-auth.guard.js';
import { presentPage, presentResourceServer } from '../http/presenters.js';
import { paginationQuery, registerResourceServerBody } from '../http/schemas.js';
import { ApiZodBody, ApiZodQuery, ZodPipe } from '../http/zod.js';

@ApiTags('resource servers')
@ApiBearerAuth()
@Controller('v1/resource-servers')
@UseGuards(PersonAuthGuard)
@AdminOnly()
export class ResourceServersController {
  constructor(private readonly resourceServers: ResourceServersService) {}

  @Post()
  @ApiOperation({ summary: 'Register a resource server (an audience); it authenticates with these credentials to introspect' })
  @ApiZodBody(registerResourceServerBody)
  async register(@CurrentPrincipal() by: Principal, @Body(new ZodPipe(registerResourceServerBody)) body: z.infer<typeof registerResourceServerBody>) {
    const { resourceServer, clientSecret } = await this.resourceServers.register(by, { name: body.name, audience: body.audience, webhookUrl: body.webhook_url, jwks: body.jwks });
    return { ...presentResourceServer(resourceServer), client_secret: clientSecret };
  }

  @Get()
  @ApiZodQuery(paginationQuery)
  async list(@Query(new ZodPipe(paginationQuery, 'query')) q: z.infer<typeof paginationQuery>) {
    return presentPage(await this.resourceServers.list(q.limit, q.cursor), presentResourceServer);
  }
}
