import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * `pending` waits for the principal; `approved` waits for the agent to collect its one token; `consumed`
 * means that token was issued. `denied` and `expired` are final. A pending or approved approval whose
 * `expires_at` has passed is expired even before a retry or a decision marks it so.
 */
export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'consumed';

/** A person's checkpoint before a token for a capability that requires approval exists. */
@Entity('approvals')
@Index('approvals_principal_idx', ['principalIss', 'principalSub', 'id'])
@Index('approvals_match_idx', ['matchKey', 'id'])
@Index('approvals_open_uq', ['matchKey'], { unique: true, where: "status IN ('pending', 'approved')" })
export class ApprovalEntity {
  /** UUIDv7: time-ordered, so it doubles as the pagination key. */
  @PrimaryColumn('uuid') id: string;
  @Column('text') status: ApprovalStatus;
  /**
   * What a retry of the same exchange matches on: agent, actor chain, principal, resource server and the
   * sorted (action, grant) pairs that need approval. At most one open (pending/approved) row per key.
   */
  @Column('text', { name: 'match_key' }) matchKey: string;
  /** The grant's principal: the only person who decides. */
  @Column('text', { name: 'principal_iss' }) principalIss: string;
  @Column('text', { name: 'principal_sub' }) principalSub: string;
  /** True when the principal is the agent itself (autonomous grant): an admin decides. */
  @Column('boolean', { default: false }) autonomous: boolean;
  @Column('uuid', { name: 'agent_id' }) agentId: string;
  /** Agent ids from the requesting agent inwards (empty for an autonomous agent). */
  @Column('jsonb', { name: 'actor_chain' }) actorChain: string[];
  @Column('uuid', { name: 'resource_server_id' }) resourceServerId: string;
  @Column('text') resource: string;
  /** The actions that need approval, sorted. */
  @Column('text', { array: true }) actions: string[];
  /** Grant ids of every capability chain that needs approval (root first per chain, deduplicated). */
  @Column('uuid', { name: 'grant_ids', array: true }) grantIds: string[];
  /** Everything the token will carry, including actions that need no approval. */
  @Column('text') scope: string;
  /** Why the agent asks, as it said in the `purpose` parameter of the exchange. */
  @Column('text', { nullable: true }) purpose: string | null;
  @Column('timestamptz', { name: 'created_at' }) createdAt: Date;
  @Column('timestamptz', { name: 'expires_at' }) expiresAt: Date;
  @Column('timestamptz', { name: 'decided_at', nullable: true }) decidedAt: Date | null;
  @Column('text', { name: 'decided_by', nullable: true }) decidedBy: string | null;
  @Column('text', { name: 'decision_reason', nullable: true }) decisionReason: string | null;
  @Column('timestamptz', { name: 'consumed_at', nullable: true }) consumedAt: Date | null;
  /** The one token this approval yielded. */
  @Column('uuid', { name: 'token_jti', nullable: true }) tokenJti: string | null;
}
