import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Human approvals (issue 5). Hand-written and reviewed: rate-limit counters live in Redis, so this is
 * the only table guardrails need. The partial unique index is what makes concurrent first requests
 * create one pending approval, and lets a consumed one be followed by a new one for the same request.
 */
export class Guardrails1795500000000 implements MigrationInterface {
  name = 'Guardrails1795500000000';

  public async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE "approvals" (
      "id" uuid NOT NULL,
      "status" text NOT NULL,
      "match_key" text NOT NULL,
      "principal_iss" text NOT NULL,
      "principal_sub" text NOT NULL,
      "autonomous" boolean NOT NULL DEFAULT false,
      "agent_id" uuid NOT NULL,
      "actor_chain" jsonb NOT NULL,
      "resource_server_id" uuid NOT NULL,
      "resource" text NOT NULL,
      "actions" text array NOT NULL,
      "grant_ids" uuid array NOT NULL,
      "scope" text NOT NULL,
      "purpose" text,
      "created_at" TIMESTAMP WITH TIME ZONE NOT NULL,
      "expires_at" TIMESTAMP WITH TIME ZONE NOT NULL,
      "decided_at" TIMESTAMP WITH TIME ZONE,
      "decided_by" text,
      "decision_reason" text,
      "consumed_at" TIMESTAMP WITH TIME ZONE,
      "token_jti" uuid,
      CONSTRAINT "approvals_pkey" PRIMARY KEY ("id"),
      CONSTRAINT "approvals_status_chk" CHECK ("status" IN ('pending', 'approved', 'denied', 'expired', 'consumed')),
      CONSTRAINT "approvals_decided_chk" CHECK (("status" IN ('approved', 'denied', 'consumed')) = ("decided_at" IS NOT NULL) OR "status" = 'expired'),
      CONSTRAINT "approvals_consumed_chk" CHECK (("status" = 'consumed') = ("consumed_at" IS NOT NULL)),
      CONSTRAINT "approvals_expiry_chk" CHECK ("expires_at" > "created_at"),
      CONSTRAINT "approvals_agent_fk" FOREIGN KEY ("agent_id") REFERENCES "agents"("id"),
      CONSTRAINT "approvals_resource_server_fk" FOREIGN KEY ("resource_server_id") REFERENCES "resource_servers"("id")
    )`);
    await q.query(`CREATE UNIQUE INDEX "approvals_open_uq" ON "approvals" ("match_key") WHERE status IN ('pending', 'approved')`);
    await q.query(`CREATE INDEX "approvals_match_idx" ON "approvals" ("match_key", "id")`);
    await q.query(`CREATE INDEX "approvals_principal_idx" ON "approvals" ("principal_iss", "principal_sub", "id")`);
  }

  public async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE "approvals"`);
  }
}
