import { Inject, Injectable, Logger } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '../../../config/src/index.js';
import { IssuedTokenRepository } from '../../../persistence/src/index.js';
import { actors } from '../audit/audit-events.js';
import { AuditService } from '../audit/audit.service.js';

const BATCH = 1000;
const MAX_BATCHES_PER_RUN = 100;

/** Deletes token records TOKEN_RETENTION_DAYS after they expired, in batches (short transactions, no long locks). */
@Injectable()
export class RetentionService {
  private readonly log = new Logger('Retention');

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly tokens: IssuedTokenRepository,
    private readonly audit: AuditService,
  ) {}

  async purgeTokens(now = new Date(), batchSize = BATCH): Promise<{ purged: number; cutoff: Date }> {
    const cutoff = new Date(now.getTime() - this.config.tokenRetentionDays * 86_400_000);
    let purged = 0;
    for (let i = 0; i < MAX_BATCHES_PER_RUN; i++) {
      const n = await this.tokens.purgeExpiredBefore(cutoff, batchSize);
      purged += n;
      if (n < batchSize) break;
    }
    if (purged) {
      this.log.log(`purged ${purged} token records that expired before ${cutoff.toISOString()}`);
      // The token.issued events stay: the trail outlives the records it describes.
      await this.audit.record(null, { type: 'retention.purged', by: actors.system, outcome: 'purged', data: { table: 'issued_tokens', count: purged, expired_before: cutoff.toISOString() } });
    }
    return { purged, cutoff };
  }
}
