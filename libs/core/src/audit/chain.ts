import { createHash } from 'node:crypto';
import { AuditEventRow, SealedAuditEvent } from '../../../persistence/src/index.js';

/** The `prev_hash` of the first event. */
export const GENESIS_HASH = '0'.repeat(64);

export type BrokenReason = 'sequence_gap' | 'prev_hash_mismatch' | 'hash_mismatch' | 'truncated' | 'head_mismatch';

export interface VerifyResult {
  ok: boolean;
  /** Sealed events whose link was verified. */
  checked: number;
  first_broken: { id: string | null; reason: BrokenReason } | null;
  /** Events recorded but not sealed yet: not covered by this verification. */
  unsealed: number;
}

/**
 * Canonical JSON: object keys sorted (recursively), no whitespace, dates as ISO 8601 strings,
 * `undefined` members dropped. The same event always serializes to the same bytes.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** What the hash covers: every field of the event, its position included; not the chain fields themselves. */
export function hashedContent(e: AuditEventRow, seq: number): Record<string, unknown> {
  return {
    id: e.id,
    seq,
    type: e.type,
    occurred_at: e.occurredAt,
    actor: e.actor,
    actor_type: e.actorType,
    principal_iss: e.principalIss,
    principal_sub: e.principalSub,
    agent_id: e.agentId,
    actor_chain: e.actorChain,
    grant_ids: e.grantIds,
    resource: e.resource,
    actions: e.actions,
    purpose: e.purpose,
    outcome: e.outcome,
    reason: e.reason,
    data: e.data,
  };
}

/** hash = sha256(prev_hash || canonical JSON of the event at position `seq`), hex. */
export function eventHash(prevHash: string, e: AuditEventRow, seq: number): string {
  return createHash('sha256').update(prevHash).update(canonicalJson(hashedContent(e, seq))).digest('hex');
}

/** Walks sealed events in `seq` order and stops at the first broken link. */
export class ChainVerifier {
  private lastSeq = 0;
  private lastId: string | null = null;
  private prev = GENESIS_HASH;
  checked = 0;

  /** Null while the chain holds; the first broken link otherwise. */
  next(e: SealedAuditEvent): { id: string; reason: BrokenReason } | null {
    const seq = Number(e.seal.seq);
    if (seq !== this.lastSeq + 1) return { id: e.id, reason: 'sequence_gap' };
    if (e.seal.prevHash !== this.prev) return { id: e.id, reason: 'prev_hash_mismatch' };
    if (eventHash(this.prev, e, seq) !== e.seal.hash) return { id: e.id, reason: 'hash_mismatch' };
    this.lastSeq = seq;
    this.lastId = e.id;
    this.prev = e.seal.hash;
    this.checked += 1;
    return null;
  }

  /**
   * The sealer records the chain's head in the same transaction as each batch. Events cut off the end
   * leave the head ahead of the rows (`truncated`); a chain rebuilt from some point on leaves a head
   * that no longer matches (`head_mismatch`).
   */
  end(head: { seq: number; hash: string } | null): { id: string | null; reason: BrokenReason } | null {
    if (!head) return this.lastSeq === 0 ? null : { id: this.lastId, reason: 'head_mismatch' };
    if (head.seq > this.lastSeq) return { id: this.lastId, reason: 'truncated' };
    if (head.seq < this.lastSeq || head.hash !== this.prev) return { id: this.lastId, reason: 'head_mismatch' };
    return null;
  }
}
