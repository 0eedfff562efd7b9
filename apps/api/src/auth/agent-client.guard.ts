import { CanActivate, createParamDecorator, ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { FastifyRequest } from 'fastify';
import { APP_CONFIG, AppConfig } from '../../../../libs/config/src/index.js';
import { ClientAuthenticator, OAuthError, Principal, TemporarilyUnavailableError, UnauthorizedProblem, UnavailableProblem } from '../../../../libs/core/src/index.js';
import { AgentEntity } from '../../../../libs/persistence/src/index.js';
import { PersonAuthGuard } from './person-auth.guard.js';

/** Who called a route that both people and agents may use. */
export type Actor = { kind: 'person'; principal: Principal } | { kind: 'agent'; agent: AgentEntity };

type ActorRequest = FastifyRequest & { principal?: Principal; agent?: AgentEntity; actor?: Actor };

export const CurrentAgent = createParamDecorator((_: unknown, ctx: ExecutionContext) => ctx.switchToHttp().getRequest<ActorRequest>().agent!);
export const CurrentActor = createParamDecorator((_: unknown, ctx: ExecutionContext) => ctx.switchToHttp().getRequest<ActorRequest>().actor!);

const BASIC_CHALLENGE = 'Basic realm="procura"';
/** Client credentials an agent may also send in a JSON body, as it would in a token request (client_secret_post, private_key_jwt). */
const CREDENTIAL_FIELDS = ['client_id', 'client_secret', 'client_assertion', 'client_assertion_type'] as const;

function bodyObject(req: FastifyRequest): Record<string, unknown> | null {
  return req.body !== null && typeof req.body === 'object' && !Array.isArray(req.body) ? (req.body as Record<string, unknown>) : null;
}

const carriesClientCredentials = (req: FastifyRequest) => {
  const body = bodyObject(req);
  return /^Basic\s/i.test(req.headers.authorization ?? '') || (body !== null && CREDENTIAL_FIELDS.some((f) => f in body));
};

/**
 * Authenticates an agent exactly as the token endpoint does (client_secret_basic, client_secret_post,
 * private_key_jwt), then strips the credentials from the body: they never reach validation or services.
 */
async function authenticateAgentClient(req: FastifyRequest, clients: ClientAuthenticator, config: AppConfig): Promise<AgentEntity> {
  const body = bodyObject(req);
  const params: Record<string, string | undefined> = {};
  for (const f of CREDENTIAL_FIELDS) {
    const v = body?.[f];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw new UnauthorizedProblem(`${f} must be a string`, BASIC_CHALLENGE);
    params[f] = v;
    delete body![f];
  }
  let agent: AgentEntity | null;
  try {
    agent = await clients.authenticateAgent({ authorization: req.headers.authorization, params, endpoint: `${config.issuer}${req.url.split('?')[0]}` });
  } catch (err) {
    if (err instanceof TemporarilyUnavailableError) throw new UnavailableProblem(err.description);
    if (err instanceof OAuthError) throw new UnauthorizedProblem(`agent authentication failed: ${err.description}`, BASIC_CHALLENGE);
    throw err;
  }
  if (!agent) throw new UnauthorizedProblem('authenticate as the agent, with its client credentials', BASIC_CHALLENGE);
  return agent;
}

/** Sets `request.agent` and `request.actor` to the authenticated agent. */
async function actAsAgent(req: ActorRequest, clients: ClientAuthenticator, config: AppConfig): Promise<void> {
  req.agent = await authenticateAgentClient(req, clients, config);
  req.actor = { kind: 'agent', agent: req.agent };
}

/** Agents authenticate as OAuth clients, with the same methods as at the token endpoint. Sets `request.agent`. */
@Injectable()
export class AgentClientGuard implements CanActivate {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly clients: ClientAuthenticator,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<ActorRequest>();
    await actAsAgent(req, this.clients, this.config);
    return true;
  }
}

/**
 * A person (Bearer JWT from a trusted issuer) or an agent (client credentials). Sets `request.actor`;
 * with no credentials at all, the 401 offers both challenges.
 */
@Injectable()
export class PersonOrAgentGuard implements CanActivate {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly clients: ClientAuthenticator,
    private readonly people: PersonAuthGuard,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<ActorRequest>();
    if (carriesClientCredentials(req)) {
      await actAsAgent(req, this.clients, this.config);
      return true;
    }
    if (!/^Bearer\s/i.test(req.headers.authorization ?? '')) {
      throw new UnauthorizedProblem('a Bearer token from a trusted identity provider, or agent client credentials, is required', `Bearer realm="procura", ${BASIC_CHALLENGE}`);
    }
    await this.people.canActivate(ctx);
    req.actor = { kind: 'person', principal: req.principal! };
    return true;
  }
}
