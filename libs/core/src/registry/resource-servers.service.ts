import { Injectable } from '@nestjs/common';
import { uuidv7 } from '../../../domain/src/ids.js';
import { Page, ResourceServerEntity, ResourceServerRepository } from '../../../persistence/src/index.js';
import { generateSecret, hashSecret } from '../clients/secrets.js';
import { ConflictProblem } from '../errors/problem.js';
import { Principal, principalLabel } from '../identity/principal.js';

export interface RegisterResourceServerInput {
  name: string;
  audience: string;
  webhookUrl?: string;
  jwks?: { keys: Record<string, unknown>[] };
}

@Injectable()
export class ResourceServersService {
  constructor(private readonly resourceServers: ResourceServerRepository) {}

  async register(by: Principal, input: RegisterResourceServerInput): Promise<{ resourceServer: ResourceServerEntity; clientSecret: string }> {
    const clientSecret = generateSecret();
    const resourceServer = await this.resourceServers.insertUnlessAudienceTaken({
      id: uuidv7(),
      name: input.name,
      audience: input.audience,
      clientSecretHash: hashSecret(clientSecret),
      jwks: input.jwks ?? null,
      webhookUrl: input.webhookUrl ?? null,
      createdBy: principalLabel(by),
    });
    if (!resourceServer) throw new ConflictProblem('audience_taken', `a resource server with audience ${input.audience} is already registered`);
    return { resourceServer, clientSecret };
  }

  list(limit: number, cursor: string | null): Promise<Page<ResourceServerEntity>> {
    return this.resourceServers.listPage(limit, cursor);
  }
}
