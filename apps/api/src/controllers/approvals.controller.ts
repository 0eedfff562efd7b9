import { Body, Controller, Get, HttpCode, Param, Post, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { ApprovalsService, Principal } from '../../../../libs/core/src/index.js';
import { CurrentPrincipal, PersonAuthGuard } from '../auth/person-auth.guard.js';
import { approveBody, denyBody, listApprovalsQuery, presentApproval } from '../http/guardrails.http.js';
import { presentPage } from '../http/presenters.js';
import { uuidPipe } from '../http/uuid.pipe.js';
import { ApiZodBody, ApiZodQuery, ZodPipe } from '../http/zod.js';

@ApiTags('approvals')
@ApiBearerAuth()
@Controller('v1/approvals')
@UseGuards(PersonAuthGuard)
export class ApprovalsController {
  constructor(private readonly approvals: ApprovalsService) {}

  @Get()
  @ApiOperation({ summary: 'Approvals you are asked for (admins: all), newest first; ?status=pending for the ones waiting' })
  @ApiZodQuery(listApprovalsQuery)
  async list(@CurrentPrincipal() principal: Principal, @Query(new ZodPipe(listApprovalsQuery, 'query')) q: z.infer<typeof listApprovalsQuery>) {
    const now = new Date();
    return presentPage(await this.approvals.list(principal, q.status, q.limit, q.cursor), (a) => presentApproval(a, now));
  }

  @Get(':id')
  async get(@CurrentPrincipal() principal: Principal, @Param('id', uuidPipe) id: string) {
    return presentApproval(await this.approvals.get(principal, id));
  }

  @Post(':id/approve')
  @HttpCode(200)
  @ApiOperation({ summary: 'Approve: the agent’s next retry gets exactly one token. Idempotent; 409 if denied or expired' })
  @ApiZodBody(approveBody)
  async approve(@CurrentPrincipal() principal: Principal, @Param('id', uuidPipe) id: string, @Body(new ZodPipe(approveBody)) _b: z.infer<typeof approveBody>) {
    return presentApproval(await this.approvals.decide(principal, id, 'approve', null));
  }

  @Post(':id/deny')
  @HttpCode(200)
  @ApiOperation({ summary: 'Deny: the agent’s retries get access_denied. Idempotent; 409 if approved or expired' })
  @ApiZodBody(denyBody)
  async deny(@CurrentPrincipal() principal: Principal, @Param('id', uuidPipe) id: string, @Body(new ZodPipe(denyBody)) b: z.infer<typeof denyBody>) {
    return presentApproval(await this.approvals.decide(principal, id, 'deny', b.reason ?? null));
  }
}
