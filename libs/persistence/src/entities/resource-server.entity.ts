import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

@Entity('resource_servers')
export class ResourceServerEntity {
  /** Also the resource server's OAuth client_id. */
  @PrimaryColumn('uuid') id: string;
  @Column('text') name: string;
  @Column('text', { unique: true }) audience: string;
  @Column('text', { name: 'client_secret_hash', nullable: true }) clientSecretHash: string | null;
  @Column('jsonb', { nullable: true }) jwks: { keys: Record<string, unknown>[] } | null;
  @Column('text', { name: 'webhook_url', nullable: true }) webhookUrl: string | null;
  @Column('text', { name: 'created_by' }) createdBy: string;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
}
