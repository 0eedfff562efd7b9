import { CanActivate, createParamDecorator, ExecutionContext, Inject, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { FastifyRequest } from 'fastify';
import { APP_CONFIG, AppConfig } from '../../../../libs/config/src/index.js';
import { ForbiddenProblem, Principal, TrustedIssuers, UnauthorizedProblem } from '../../../../libs/core/src/index.js';

const ADMIN_ONLY = 'procura:admin-only';

/** Route metadata: only people listed in ADMIN_SUBJECTS may call it. */
export const AdminOnly = () => SetMetadata(ADMIN_ONLY, true);

type AuthedRequest = FastifyRequest & { principal?: Principal };

export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext) => ctx.switchToHttp().getRequest<AuthedRequest>().principal!);

/** People authenticate with a Bearer JWT from a trusted issuer. */
@Injectable()
export class PersonAuthGuard implements CanActivate {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly identities: TrustedIssuers,
    private readonly reflector: Reflector,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    const m = /^Bearer ([A-Za-z0-9_\-.~+/]+=*)$/.exec(req.headers.authorization ?? '');
    if (!m) throw new UnauthorizedProblem('a Bearer token from a trusted identity provider is required');
    let identity;
    try {
      identity = await this.identities.verify(m[1], 'any');
    } catch (err) {
      throw new UnauthorizedProblem(`the bearer token was rejected: ${(err as Error).message}`);
    }
    // An entry is a bare `sub` (from any trusted issuer) or `<issuer>#<sub>`, pinned to one issuer
    // (an issuer URL has no fragment, so the first `#` separates them).
    const isAdmin = this.config.adminSubjects.some((a) => a === identity.sub || a === `${identity.iss}#${identity.sub}`);
    req.principal = { iss: identity.iss, sub: identity.sub, isAdmin };
    if (this.reflector.getAllAndOverride<boolean>(ADMIN_ONLY, [ctx.getHandler(), ctx.getClass()]) && !isAdmin) {
      throw new ForbiddenProblem('this operation is reserved to administrators', 'admin_required');
    }
    return true;
  }
}
