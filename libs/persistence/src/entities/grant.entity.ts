import { Column, CreateDateColumn, Entity, Index, PrimaryColumn, UpdateDateColumn } from 'typeorm';

export type GrantStatus = 'active' | 'revoked' | 'expired';

@Entity('grants')
@Index('grants_principal_idx', ['principalIss', 'principalSub', 'id'])
@Index('grants_exchange_idx', ['agentId', 'resourceServerId', 'status'])
@Index('grants_parent_idx', ['parentId'])
@Index('grants_expiry_idx', ['expiresAt'], { where: "status = 'active' AND expires_at IS NOT NULL" })
export class GrantEntity {
  /** UUIDv7: time-ordered, so it doubles as the pagination key. */
  @PrimaryColumn('uuid') id: string;
  @Column('text', { name: 'principal_iss' }) principalIss: string;
  @Column('text', { name: 'principal_sub' }) principalSub: string;
  @Column('boolean', { default: false }) autonomous: boolean;
  @Column('uuid', { name: 'agent_id' }) agentId: string;
  @Column('uuid', { name: 'resource_server_id' }) resourceServerId: string;
  @Column('text') resource: string;
  @Column('text') action: string;
  @Column('jsonb', { default: {} }) constraints: Record<string, unknown>;
  @Column('jsonb', { name: 'rate_limit', nullable: true }) rateLimit: { max: number; window_seconds: number } | null;
  @Column('integer', { name: 'max_uses', nullable: true }) maxUses: number | null;
  @Column('timestamptz', { name: 'expires_at', nullable: true }) expiresAt: Date | null;
  @Column('integer', { name: 'max_delegation_depth', default: 0 }) maxDelegationDepth: number;
  @Column('uuid', { name: 'parent_id', nullable: true }) parentId: string | null;
  /**
   * Materialized path (root first, excluding this grant). A GIN index on it finds a whole
   * subtree with one indexed `@>` lookup, with no recursive query and no extension (ltree).
   */
  @Index('grants_ancestors_gin', { synchronize: false })
  @Column('uuid', { name: 'ancestor_ids', array: true, default: () => "'{}'" }) ancestorIds: string[];
  @Column('text', { nullable: true }) purpose: string | null;
  @Column('text', { default: 'active' }) status: GrantStatus;
  @Column('text', { name: 'created_by' }) createdBy: string;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt: Date;
  @Column('timestamptz', { name: 'revoked_at', nullable: true }) revokedAt: Date | null;
  @Column('text', { name: 'revoked_by', nullable: true }) revokedBy: string | null;
  @Column('text', { name: 'revocation_reason', nullable: true }) revocationReason: string | null;
}
