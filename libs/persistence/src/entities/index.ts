import { AgentEntity } from './agent.entity.js';
import { GrantEntity } from './grant.entity.js';
import { IssuedTokenEntity } from './issued-token.entity.js';
import { ResourceServerEntity } from './resource-server.entity.js';
import { SigningKeyEntity } from './signing-key.entity.js';

export { AgentEntity, GrantEntity, IssuedTokenEntity, ResourceServerEntity, SigningKeyEntity };
export const ENTITIES = [AgentEntity, ResourceServerEntity, GrantEntity, SigningKeyEntity, IssuedTokenEntity];
