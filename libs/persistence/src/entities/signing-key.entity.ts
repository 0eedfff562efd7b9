import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

export type SigningKeyStatus = 'active' | 'retired';

@Entity('signing_keys')
export class SigningKeyEntity {
  @PrimaryColumn('text') kid: string;
  @Column('text') alg: string;
  @Column('jsonb', { name: 'public_jwk' }) publicJwk: Record<string, unknown>;
  /** JSON of the private JWK, or AES-256-GCM ciphertext of it when `encrypted`. */
  @Column('text', { name: 'private_jwk' }) privateJwk: string;
  @Column('boolean', { default: false }) encrypted: boolean;
  @Column('text', { default: 'active' }) status: SigningKeyStatus;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
  @Column('timestamptz', { name: 'retired_at', nullable: true }) retiredAt: Date | null;
  /** Once retired: when the last token it signed expires; the JWKS drops it after that. */
  @Column('timestamptz', { name: 'publish_until', nullable: true }) publishUntil: Date | null;
}
