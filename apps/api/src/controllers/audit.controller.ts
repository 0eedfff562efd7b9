import { Controller, Get, Query, Res, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { FastifyReply } from 'fastify';
import { Readable } from 'node:stream';
import { z } from 'zod';
import { AuditService, Principal } from '../../../../libs/core/src/index.js';
import { AdminOnly, CurrentPrincipal, PersonAuthGuard } from '../auth/person-auth.guard.js';
import { auditFiltersQuery, listAuditQuery, presentAuditEvent, toAuditFilters } from '../http/audit-http.js';
import { presentPage } from '../http/presenters.js';
import { ApiZodQuery, ZodPipe } from '../http/zod.js';

@ApiTags('audit')
@ApiBearerAuth()
@Controller('v1/audit')
@UseGuards(PersonAuthGuard)
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @ApiOperation({ summary: 'Audit events, newest first: yours (events about your grants), or all for admins' })
  @ApiZodQuery(listAuditQuery)
  async list(@CurrentPrincipal() principal: Principal, @Query(new ZodPipe(listAuditQuery, 'query')) q: z.infer<typeof listAuditQuery>) {
    return presentPage(await this.audit.list(principal, toAuditFilters(q), q.limit, q.cursor), presentAuditEvent);
  }

  @Get('export')
  @ApiOperation({ summary: 'Stream the matching audit events as NDJSON, oldest first' })
  @ApiProduces('application/x-ndjson')
  @ApiZodQuery(auditFiltersQuery)
  export(@CurrentPrincipal() principal: Principal, @Query(new ZodPipe(auditFiltersQuery, 'query')) q: z.infer<typeof auditFiltersQuery>, @Res() reply: FastifyReply) {
    const events = this.audit.export(principal, toAuditFilters(q));
    const lines = Readable.from(
      (async function* () {
        for await (const e of events) yield `${JSON.stringify(presentAuditEvent(e))}\n`;
      })(),
    );
    return reply.header('content-type', 'application/x-ndjson; charset=utf-8').header('cache-control', 'no-store').send(lines);
  }

  @Get('verify')
  @AdminOnly()
  @ApiOperation({ summary: 'Recompute the hash chain and report the first broken link' })
  verify() {
    return this.audit.verify();
  }
}
