import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Logger } from '@nestjs/common';
import { Job, UnrecoverableError } from 'bullmq';
import { AUDIT_BATCH_JOB, AuditService, ExpiryService, QUEUE, QueuedRow, RetentionService, WebhooksService } from '../../../libs/core/src/index.js';
import { MAINTENANCE_JOB } from './jobs.js';
import { WorkerStatus } from './worker-status.service.js';

// Handlers stay thin: each delegates to a service shared with the API (libs/core).

/** High-volume audit events from the API: one insert per batch, then the chain is extended. */
@Processor(QUEUE.audit, { concurrency: 2 })
export class AuditProcessor extends WorkerHost {
  constructor(private readonly audit: AuditService) {
    super();
  }

  async process(job: Job<{ events: QueuedRow[] }>): Promise<{ inserted: number; sealed: number }> {
    if (job.name !== AUDIT_BATCH_JOB) throw new UnrecoverableError(`unknown job ${job.name}`);
    const inserted = await this.audit.ingest(job.data.events);
    return { inserted, sealed: await this.audit.seal() };
  }
}

/** One delivery attempt per run; BullMQ retries failures with exponential backoff. */
@Processor(QUEUE.webhooks, { concurrency: 10 })
export class WebhooksProcessor extends WorkerHost {
  constructor(private readonly webhooks: WebhooksService) {
    super();
  }

  async process(job: Job<{ deliveryId: string }>): Promise<{ outcome: string }> {
    const outcome = await this.webhooks.attempt(job.data.deliveryId, { attemptsMade: job.attemptsMade, maxAttempts: job.opts.attempts ?? 1 });
    if (outcome === 'failed') throw new Error('delivery attempt failed; retrying with backoff');
    // Settled in Postgres as dead_letter; failing the job (without retries) also leaves it in BullMQ's failed set.
    if (outcome === 'dead_letter') throw new UnrecoverableError('delivery dead-lettered');
    return { outcome };
  }
}

/** Repeatable jobs. Concurrency 1 per worker; each job is safe to run on several workers at once. */
@Processor(QUEUE.maintenance, { concurrency: 1 })
export class MaintenanceProcessor extends WorkerHost {
  private readonly log = new Logger('Maintenance');

  constructor(
    private readonly audit: AuditService,
    private readonly expiry: ExpiryService,
    private readonly retention: RetentionService,
    private readonly webhooks: WebhooksService,
    private readonly status: WorkerStatus,
  ) {
    super();
  }

  async process(job: Job): Promise<Record<string, unknown>> {
    switch (job.name) {
      case MAINTENANCE_JOB.sealAudit: {
        const sealed = await this.audit.seal();
        await this.status.done('audit_seal');
        return { sealed };
      }
      case MAINTENANCE_JOB.expireGrants: {
        const { expired } = await this.expiry.expireDue(new Date());
        await this.status.done('expiry_sweep');
        // Same cadence: deliveries whose job was lost (Redis down at commit) are enqueued again.
        const redriven = await this.webhooks.redrive();
        if (redriven) this.log.log(`re-enqueued ${redriven} webhook deliveries`);
        return { expired, redriven };
      }
      case MAINTENANCE_JOB.purgeTokens: {
        const { purged } = await this.retention.purgeTokens(new Date());
        await this.status.done('retention');
        return { purged };
      }
      default:
        throw new UnrecoverableError(`unknown job ${job.name}`);
    }
  }
}
