import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { AuditSealEntity } from './audit-seal.entity.js';

export type AuditActorType = 'person' | 'agent' | 'resource_server' | 'system';

/**
 * One accountable decision or change. Rows are immutable: the API inserts them, and the worker, as the
 * single writer of the chain, seals them by adding their link to `audit_seals`.
 * Never holds a token or a secret: tokens are named by their `jti`.
 */
@Entity('audit_events')
@Index('audit_events_principal_idx', ['principalIss', 'principalSub', 'id'])
@Index('audit_events_agent_idx', ['agentId', 'id'])
@Index('audit_events_type_idx', ['type', 'id'])
@Index('audit_events_occurred_idx', ['occurredAt'])
export class AuditEventEntity {
  /** UUIDv7, minted when the event happens: the keyset cursor and the sealing order. */
  @PrimaryColumn('uuid') id: string;
  @Column('text') type: string;
  @Column('timestamptz', { name: 'occurred_at' }) occurredAt: Date;
  /** Who: a person `sub@iss`, an agent id, a resource server id, or `system`. */
  @Column('text') actor: string;
  @Column('text', { name: 'actor_type' }) actorType: AuditActorType;
  /** Whose authority: the principal of the grants concerned. */
  @Column('text', { name: 'principal_iss', nullable: true }) principalIss: string | null;
  @Column('text', { name: 'principal_sub', nullable: true }) principalSub: string | null;
  /** Which agent acted (the current actor of a chain). */
  @Column('uuid', { name: 'agent_id', nullable: true }) agentId: string | null;
  /** Agent ids from the outermost actor inwards. */
  @Column('jsonb', { name: 'actor_chain', default: () => "'[]'" }) actorChain: string[];
  @Index('audit_events_grants_gin', { synchronize: false })
  @Column('uuid', { name: 'grant_ids', array: true, default: () => "'{}'" }) grantIds: string[];
  @Column('text', { nullable: true }) resource: string | null;
  @Column('text', { array: true, default: () => "'{}'" }) actions: string[];
  @Column('text', { nullable: true }) purpose: string | null;
  @Column('text') outcome: string;
  @Column('text', { nullable: true }) reason: string | null;
  @Column('jsonb', { default: () => "'{}'" }) data: Record<string, unknown>;
  /** The event's link in the hash chain, when read joined with it; null until sealed. Not a column. */
  seal?: AuditSealEntity | null;
}
