import { AgentEntity } from './agent.entity.js';
import { ApprovalEntity } from './approval.entity.js';
import { AuditEventEntity } from './audit-event.entity.js';
import { AuditSealEntity, AuditUnsealedEntity } from './audit-seal.entity.js';
import { GrantEntity } from './grant.entity.js';
import { IssuedTokenEntity } from './issued-token.entity.js';
import { ResourceServerEntity } from './resource-server.entity.js';
import { SigningKeyEntity } from './signing-key.entity.js';
import { WebhookDeliveryAttemptEntity, WebhookDeliveryEntity } from './webhook-delivery.entity.js';

export { AgentEntity, GrantEntity, IssuedTokenEntity, ResourceServerEntity, SigningKeyEntity };
export const ENTITIES = [AgentEntity, ResourceServerEntity, GrantEntity, SigningKeyEntity, IssuedTokenEntity, AuditEventEntity, AuditSealEntity, AuditUnsealedEntity, WebhookDeliveryEntity, WebhookDeliveryAttemptEntity, ApprovalEntity];
export * from './audit-event.entity.js';
export * from './audit-seal.entity.js';
export * from './webhook-delivery.entity.js';
export * from './approval.entity.js';
