import { Controller, HttpCode, Post, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { KeysService, Principal } from '../../../../libs/core/src/index.js';
import { AdminOnly, CurrentPrincipal, PersonAuthGuard } from '../auth/person-auth.guard.js';

@ApiTags('keys')
@ApiBearerAuth()
@Controller('v1/keys')
@UseGuards(PersonAuthGuard)
@AdminOnly()
export class KeysController {
  constructor(private readonly keys: KeysService) {}

  @Post('rotate')
  @HttpCode(200)
  @ApiOperation({ summary: 'Rotate the signing key; the retired key stays in the JWKS until its last token expires' })
  rotate(@CurrentPrincipal() by: Principal) {
    return this.keys.rotate(by).then(({ kid, retiredKid }) => ({ kid, retired_kid: retiredKid }));
  }
}
