import { Column, CreateDateColumn, Entity, Index, PrimaryColumn, UpdateDateColumn } from 'typeorm';

export type WebhookDeliveryStatus = 'pending' | 'delivered' | 'dead_letter';
export type WebhookDeliveryKind = 'grant_revoked' | 'approval_requested';

/**
 * One notification to push to one receiver (an outbox row): written in the transaction of the change it
 * announces, then delivered by the worker. Unique per (event, receiver), so a job that runs twice
 * finds the row already delivered instead of sending again.
 */
@Entity('webhook_deliveries')
@Index('webhook_deliveries_event_rs_uq', ['eventId', 'resourceServerId'], { unique: true })
@Index('webhook_deliveries_rs_idx', ['resourceServerId', 'id'])
@Index('webhook_deliveries_pending_idx', ['createdAt'], { where: "status = 'pending'" })
export class WebhookDeliveryEntity {
  /** UUIDv7; also the SET's `jti`, stable across retries so receivers can de-duplicate. */
  @PrimaryColumn('uuid') id: string;
  /** The audit event being announced (e.g. the `grant.revoked` event). */
  @Column('uuid', { name: 'event_id' }) eventId: string;
  /** Null for deliveries that are not addressed to a resource server (approval notifications). */
  @Column('uuid', { name: 'resource_server_id', nullable: true }) resourceServerId: string | null;
  @Column('text') kind: WebhookDeliveryKind;
  @Column('text') url: string;
  /** The SET audience (the resource server's audience) when addressed to a resource server. */
  @Column('text', { nullable: true }) audience: string | null;
  /** Event content of the SET; `jtis` are filled at the first attempt (see WebhooksService). */
  @Column('jsonb') payload: Record<string, unknown>;
  @Column('text', { default: 'pending' }) status: WebhookDeliveryStatus;
  @Column('integer', { default: 0 }) attempts: number;
  /** A worker holds the delivery while sending; another copy of the job skips it until then. */
  @Column('timestamptz', { name: 'lease_until', nullable: true }) leaseUntil: Date | null;
  @Column('integer', { name: 'last_status_code', nullable: true }) lastStatusCode: number | null;
  @Column('text', { name: 'last_error', nullable: true }) lastError: string | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt: Date;
  @Column('timestamptz', { name: 'delivered_at', nullable: true }) deliveredAt: Date | null;
}

/** Every attempt, successful or not. */
@Entity('webhook_delivery_attempts')
@Index('webhook_delivery_attempts_uq', ['deliveryId', 'attempt'], { unique: true })
export class WebhookDeliveryAttemptEntity {
  @PrimaryColumn('uuid') id: string;
  @Column('uuid', { name: 'delivery_id' }) deliveryId: string;
  @Column('integer') attempt: number;
  @Column('timestamptz', { name: 'attempted_at' }) attemptedAt: Date;
  @Column('integer', { name: 'duration_ms' }) durationMs: number;
  @Column('integer', { name: 'status_code', nullable: true }) statusCode: number | null;
  @Column('text', { nullable: true }) error: string | null;
  /** `delivered`, `failed` (will retry) or `dead_letter` (the last allowed attempt failed). */
  @Column('text') outcome: string;
}
