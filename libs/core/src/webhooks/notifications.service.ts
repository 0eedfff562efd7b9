import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { WebhookDeliveryEntity } from '../../../persistence/src/index.js';
import { ApprovalNotice, WebhooksService } from './webhooks.service.js';

/**
 * Notification hooks for other features. The approvals feature calls `approvalRequested` when an
 * approval becomes pending; when APPROVAL_WEBHOOK_URL is set the worker POSTs a signed SET
 * (event `https://procura.dev/secevent/approval-requested`) to it, with retries and a dead-letter state.
 */
@Injectable()
export class NotificationsService {
  constructor(private readonly webhooks: WebhooksService) {}

  /**
   * Without `em`: records and enqueues at once. With `em` (inside the approval's transaction), the
   * outbox row commits with the approval; call `dispatch` with the result after commit.
   */
  async approvalRequested(approval: ApprovalNotice, em?: EntityManager): Promise<WebhookDeliveryEntity[]> {
    const deliveries = await this.webhooks.prepareApprovalRequested(em ?? null, approval);
    if (!em) await this.webhooks.enqueue(deliveries);
    return deliveries;
  }

  /** After commit, for deliveries prepared inside a transaction. Never throws. */
  dispatch(deliveries: WebhookDeliveryEntity[]): Promise<void> {
    return this.webhooks.enqueue(deliveries);
  }
}
