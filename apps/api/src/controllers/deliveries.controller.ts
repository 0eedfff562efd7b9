import { Controller, Get, Param, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { WebhooksService } from '../../../../libs/core/src/index.js';
import { AdminOnly, PersonAuthGuard } from '../auth/person-auth.guard.js';
import { presentDelivery } from '../http/audit-http.js';
import { presentPage } from '../http/presenters.js';
import { paginationQuery } from '../http/schemas.js';
import { uuidPipe } from '../http/uuid.pipe.js';
import { ApiZodQuery, ZodPipe } from '../http/zod.js';

@ApiTags('resource servers')
@ApiBearerAuth()
@Controller('v1/resource-servers')
@UseGuards(PersonAuthGuard)
@AdminOnly()
export class DeliveriesController {
  constructor(private readonly webhooks: WebhooksService) {}

  @Get(':id/deliveries')
  @ApiOperation({ summary: 'Revocation pushes (SETs) sent to this resource server, newest first, each with every attempt' })
  @ApiZodQuery(paginationQuery)
  async list(@Param('id', uuidPipe) id: string, @Query(new ZodPipe(paginationQuery, 'query')) q: z.infer<typeof paginationQuery>) {
    return presentPage(await this.webhooks.listForResourceServer(id, q.limit, q.cursor), presentDelivery);
  }
}
