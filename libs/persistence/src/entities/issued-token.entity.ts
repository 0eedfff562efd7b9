import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/** A record of every issued token (never the token itself): listable per grant, revocable, auditable. */
@Entity('issued_tokens')
@Index('issued_tokens_expires_idx', ['expiresAt'])
export class IssuedTokenEntity {
  @PrimaryColumn('uuid') jti: string;
  @Column('uuid', { name: 'agent_id' }) agentId: string;
  @Column('text', { name: 'principal_iss' }) principalIss: string;
  @Column('text', { name: 'principal_sub' }) principalSub: string;
  @Column('text') audience: string;
  @Index('issued_tokens_grants_gin', { synchronize: false })
  @Column('uuid', { name: 'grant_ids', array: true }) grantIds: string[];
  /** Agent ids from the outermost actor inwards. */
  @Column('jsonb', { name: 'actor_chain' }) actorChain: string[];
  @Column('text') scope: string;
  @Column('timestamptz', { name: 'issued_at' }) issuedAt: Date;
  @Column('timestamptz', { name: 'expires_at' }) expiresAt: Date;
  @Column('timestamptz', { name: 'revoked_at', nullable: true }) revokedAt: Date | null;
}
