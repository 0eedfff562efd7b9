import { Injectable, Logger } from '@nestjs/common';
import { GrantRepository } from '../../../persistence/src/index.js';
import { aboutGrant, actors } from '../audit/audit-events.js';
import { AuditService } from '../audit/audit.service.js';
import { StatusCache } from '../status/status-cache.js';

const BATCH = 500;
const MAX_BATCHES_PER_SWEEP = 20;

/** Marks grants past `expires_at` expired, with their subtrees: run by the worker's expiry sweep. */
@Injectable()
export class ExpiryService {
  private readonly log = new Logger('Expiry');

  constructor(
    private readonly grants: GrantRepository,
    private readonly status: StatusCache,
    private readonly audit: AuditService,
  ) {}

  /**
   * Exactly once per grant however many workers sweep at the same time: each batch locks its rows with
   * SKIP LOCKED (see GrantRepository.expireDue), and the tombstones and `grant.expired` events are
   * written inside that transaction. If the status store is unreachable the batch rolls back and the
   * next sweep retries it (like a revoke, an expiry is never half-done).
   */
  async expireDue(now = new Date(), batchSize = BATCH): Promise<{ expired: number }> {
    let expired = 0;
    for (let i = 0; i < MAX_BATCHES_PER_SWEEP; i++) {
      const rows = await this.grants.expireDue(now, batchSize, async (batch, em) => {
        await this.status.publishGrantsRevoked(batch.map((e) => e.grant.id), 'expired');
        await this.audit.recordMany(
          em,
          batch.map(({ grant, dueGrantId }) => ({
            type: 'grant.expired',
            by: actors.system,
            outcome: 'expired',
            ...aboutGrant(grant),
            reason: grant.id === dueGrantId ? 'expires_at_reached' : 'ancestor_expired',
            data: { grant_id: grant.id, expires_at: grant.expiresAt?.toISOString() ?? null, due_grant_id: dueGrantId },
          })),
        );
      });
      expired += rows.filter((r) => r.grant.id === r.dueGrantId).length;
      if (rows.filter((r) => r.grant.id === r.dueGrantId).length < batchSize) break;
    }
    if (expired) this.log.log(`expired ${expired} grants`);
    return { expired };
  }
}
