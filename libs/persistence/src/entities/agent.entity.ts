import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

export type AgentStatus = 'active' | 'disabled';

@Entity('agents')
@Index('agents_workload_identity_uq', ['workloadIssuer', 'workloadSubject'], { unique: true, where: 'workload_issuer IS NOT NULL' })
export class AgentEntity {
  /** Also the agent's OAuth client_id. */
  @PrimaryColumn('uuid') id: string;
  @Column('text') name: string;
  /** SHA-256 of a 256-bit random secret: high entropy makes a slow KDF unnecessary. */
  @Column('text', { name: 'client_secret_hash', nullable: true }) clientSecretHash: string | null;
  @Column('jsonb', { nullable: true }) jwks: { keys: Record<string, unknown>[] } | null;
  @Column('text', { name: 'workload_issuer', nullable: true }) workloadIssuer: string | null;
  @Column('text', { name: 'workload_subject', nullable: true }) workloadSubject: string | null;
  @Column('text', { default: 'active' }) status: AgentStatus;
  @Column('text', { name: 'created_by' }) createdBy: string;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
  @Column('timestamptz', { name: 'disabled_at', nullable: true }) disabledAt: Date | null;
}
