import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * An event's link in the hash chain, written once by the sealer. Kept apart from `audit_events` so sealing
 * inserts a narrow row instead of rewriting a wide, heavily indexed one; `audit_events` is never updated.
 * No foreign key to the event on purpose: checking one locks (and so writes to) every sealed event's row.
 */
@Entity('audit_seals')
@Index('audit_seals_event_uq', ['eventId'], { unique: true })
export class AuditSealEntity {
  /** Position in the chain: 1, 2, 3... without gaps. */
  @PrimaryColumn('bigint') seq: string;
  @Column('uuid', { name: 'event_id' }) eventId: string;
  @Column('text', { name: 'prev_hash' }) prevHash: string;
  @Column('text') hash: string;
}

/** Events waiting for the sealer, filled by a trigger on every insert into `audit_events`. */
@Entity('audit_unsealed')
export class AuditUnsealedEntity {
  @PrimaryColumn('uuid') id: string;
}
