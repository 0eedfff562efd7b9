import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Audit trail (hash-chained, append-only) and the webhook outbox with its delivery attempts. Hand-written
 * and reviewed: the generator cannot express the trigger, NULLS NOT DISTINCT or the GIN index.
 */
export class Audit1795600000000 implements MigrationInterface {
  name = 'Audit1795600000000';

  public async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE "audit_events" (
      "id" uuid NOT NULL,
      "seq" bigint,
      "type" text NOT NULL,
      "occurred_at" TIMESTAMP WITH TIME ZONE NOT NULL,
      "actor" text NOT NULL,
      "actor_type" text NOT NULL,
      "principal_iss" text,
      "principal_sub" text,
      "agent_id" uuid,
      "actor_chain" jsonb NOT NULL DEFAULT '[]',
      "grant_ids" uuid array NOT NULL DEFAULT '{}',
      "resource" text,
      "actions" text array NOT NULL DEFAULT '{}',
      "purpose" text,
      "outcome" text NOT NULL,
      "reason" text,
      "data" jsonb NOT NULL DEFAULT '{}',
      "prev_hash" text,
      "hash" text,
      CONSTRAINT "audit_events_pkey" PRIMARY KEY ("id"),
      CONSTRAINT "audit_events_seq_uq" UNIQUE ("seq"),
      CONSTRAINT "audit_events_actor_type_chk" CHECK ("actor_type" IN ('person', 'agent', 'resource_server', 'system')),
      CONSTRAINT "audit_events_sealed_chk" CHECK (("seq" IS NULL) = ("hash" IS NULL) AND ("hash" IS NULL) = ("prev_hash" IS NULL))
    )`);
    await q.query(`CREATE INDEX "audit_events_unsealed_idx" ON "audit_events" ("id") WHERE seq IS NULL`);
    await q.query(`CREATE INDEX "audit_events_principal_idx" ON "audit_events" ("principal_iss", "principal_sub", "id")`);
    await q.query(`CREATE INDEX "audit_events_agent_idx" ON "audit_events" ("agent_id", "id")`);
    await q.query(`CREATE INDEX "audit_events_type_idx" ON "audit_events" ("type", "id")`);
    await q.query(`CREATE INDEX "audit_events_occurred_idx" ON "audit_events" ("occurred_at")`);
    await q.query(`CREATE INDEX "audit_events_grants_gin" ON "audit_events" USING GIN ("grant_ids")`);

    // Append-only, enforced by the database: a row may only be sealed once (chain fields NULL -> set) and
    // never deleted. Tampering then needs deliberate DDL or superuser rights, and the hash chain exposes it.
    await q.query(`CREATE FUNCTION "audit_events_append_only"() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP <> 'UPDATE' THEN
          RAISE EXCEPTION 'audit_events is append-only (%)', TG_OP;
        END IF;
        IF OLD.seq IS NOT NULL OR NEW.seq IS NULL
           OR (to_jsonb(NEW) - 'seq' - 'prev_hash' - 'hash') IS DISTINCT FROM (to_jsonb(OLD) - 'seq' - 'prev_hash' - 'hash') THEN
          RAISE EXCEPTION 'audit_events is append-only: a row may only be sealed, once';
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER "audit_events_append_only_row" BEFORE UPDATE OR DELETE ON "audit_events" FOR EACH ROW EXECUTE FUNCTION "audit_events_append_only"()`);
    await q.query(`CREATE TRIGGER "audit_events_append_only_truncate" BEFORE TRUNCATE ON "audit_events" FOR EACH STATEMENT EXECUTE FUNCTION "audit_events_append_only"()`);

    // The chain's head, written by the sealer in the same transaction: verification compares against it
    // to notice events cut off the end of the chain, which no link could reveal.
    await q.query(`CREATE TABLE "audit_chain_head" (
      "id" smallint NOT NULL,
      "last_seq" bigint NOT NULL,
      "last_hash" text NOT NULL,
      "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
      CONSTRAINT "audit_chain_head_pkey" PRIMARY KEY ("id"),
      CONSTRAINT "audit_chain_head_single_chk" CHECK ("id" = 1)
    )`);

    await q.query(`CREATE TABLE "webhook_deliveries" (
      "id" uuid NOT NULL,
      "event_id" uuid NOT NULL,
      "resource_server_id" uuid,
      "kind" text NOT NULL,
      "url" text NOT NULL,
      "audience" text,
      "payload" jsonb NOT NULL,
      "status" text NOT NULL DEFAULT 'pending',
      "attempts" integer NOT NULL DEFAULT 0,
      "lease_until" TIMESTAMP WITH TIME ZONE,
      "last_status_code" integer,
      "last_error" text,
      "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
      "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
      "delivered_at" TIMESTAMP WITH TIME ZONE,
      CONSTRAINT "webhook_deliveries_pkey" PRIMARY KEY ("id"),
      CONSTRAINT "webhook_deliveries_status_chk" CHECK ("status" IN ('pending', 'delivered', 'dead_letter')),
      CONSTRAINT "webhook_deliveries_kind_chk" CHECK ("kind" IN ('grant_revoked', 'approval_requested')),
      CONSTRAINT "webhook_deliveries_rs_fk" FOREIGN KEY ("resource_server_id") REFERENCES "resource_servers"("id") ON DELETE CASCADE
    )`);
    // One delivery per (event, receiver); approval notifications have no resource server, hence NULLS NOT DISTINCT.
    await q.query(`CREATE UNIQUE INDEX "webhook_deliveries_event_rs_uq" ON "webhook_deliveries" ("event_id", "resource_server_id") NULLS NOT DISTINCT`);
    await q.query(`CREATE INDEX "webhook_deliveries_rs_idx" ON "webhook_deliveries" ("resource_server_id", "id")`);
    await q.query(`CREATE INDEX "webhook_deliveries_pending_idx" ON "webhook_deliveries" ("created_at") WHERE status = 'pending'`);

    await q.query(`CREATE TABLE "webhook_delivery_attempts" (
      "id" uuid NOT NULL,
      "delivery_id" uuid NOT NULL,
      "attempt" integer NOT NULL,
      "attempted_at" TIMESTAMP WITH TIME ZONE NOT NULL,
      "duration_ms" integer NOT NULL,
      "status_code" integer,
      "error" text,
      "outcome" text NOT NULL,
      CONSTRAINT "webhook_delivery_attempts_pkey" PRIMARY KEY ("id"),
      CONSTRAINT "webhook_delivery_attempts_outcome_chk" CHECK ("outcome" IN ('delivered', 'failed', 'dead_letter')),
      CONSTRAINT "webhook_delivery_attempts_delivery_fk" FOREIGN KEY ("delivery_id") REFERENCES "webhook_deliveries"("id") ON DELETE CASCADE
    )`);
    await q.query(`CREATE UNIQUE INDEX "webhook_delivery_attempts_uq" ON "webhook_delivery_attempts" ("delivery_id", "attempt")`);
  }

  public async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE "webhook_delivery_attempts"`);
    await q.query(`DROP TABLE "webhook_deliveries"`);
    await q.query(`DROP TABLE "audit_chain_head"`);
    await q.query(`DROP TABLE "audit_events"`);
    await q.query(`DROP FUNCTION "audit_events_append_only"()`);
  }
}
