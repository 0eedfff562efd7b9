import { Body, Controller, Header, Headers, HttpCode, Post } from '@nestjs/common';
import { ApiBasicAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { AuthorizeService } from '../../../../libs/core/src/index.js';
import { authorizeBody } from '../http/guardrails.http.js';
import { ApiZodBody, ZodPipe } from '../http/zod.js';

@ApiTags('authorize')
@ApiBasicAuth()
@Controller('v1/authorize')
export class AuthorizeController {
  constructor(private readonly authz: AuthorizeService) {}

  @Post()
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  @ApiOperation({
    summary: 'Resource servers: may this token do this action, on this resource, with these arguments, now?',
    description: 'Always 200 {allowed, reason, grant_id, remaining} once the resource server is authenticated; reason codes are in docs/constraints.md.',
  })
  @ApiZodBody(authorizeBody)
  async authorize(@Headers('authorization') authorization: string | undefined, @Body(new ZodPipe(authorizeBody)) b: z.infer<typeof authorizeBody>) {
    return this.authz.authorize({
      authorization,
      credentials: { client_id: b.client_id, client_secret: b.client_secret, client_assertion: b.client_assertion, client_assertion_type: b.client_assertion_type },
      token: b.token,
      action: b.action,
      resource: b.resource,
      context: b.context,
    });
  }
}
