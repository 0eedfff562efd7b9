import { MigrationInterface, QueryRunner } from "typeorm";

export class Init1795409940341 implements MigrationInterface {
    name = 'Init1795409940341'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE TABLE "agents" ("id" uuid NOT NULL, "name" text NOT NULL, "client_secret_hash" text, "jwks" jsonb, "workload_issuer" text, "workload_subject" text, "status" text NOT NULL DEFAULT 'active', "created_by" text NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "disabled_at" TIMESTAMP WITH TIME ZONE, CONSTRAINT "PK_9c653f28ae19c5884d5baf6a1d9" PRIMARY KEY ("id"))`);
        await queryRunner.query(`CREATE UNIQUE INDEX "agents_workload_identity_uq" ON "agents"  ("workload_issuer", "workload_subject") WHERE workload_issuer IS NOT NULL`);
        await queryRunner.query(`CREATE TABLE "grants" ("id" uuid NOT NULL, "principal_iss" text NOT NULL, "principal_sub" text NOT NULL, "autonomous" boolean NOT NULL DEFAULT false, "agent_id" uuid NOT NULL, "resource_server_id" uuid NOT NULL, "resource" text NOT NULL, "action" text NOT NULL, "constraints" jsonb NOT NULL DEFAULT '{}', "rate_limit" jsonb, "max_uses" integer, "expires_at" TIMESTAMP WITH TIME ZONE, "max_delegation_depth" integer NOT NULL DEFAULT '0', "parent_id" uuid, "ancestor_ids" uuid array NOT NULL DEFAULT '{}', "purpose" text, "status" text NOT NULL DEFAULT 'active', "created_by" text NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "revoked_at" TIMESTAMP WITH TIME ZONE, "revoked_by" text, "revocation_reason" text, CONSTRAINT "PK_a25f5f89eff8b3277f7969b7094" PRIMARY KEY ("id"))`);
        await queryRunner.query(`CREATE INDEX "grants_expiry_idx" ON "grants"  ("expires_at") WHERE status = 'active' AND expires_at IS NOT NULL`);
        await queryRunner.query(`CREATE INDEX "grants_parent_idx" ON "grants"  ("parent_id") `);
        await queryRunner.query(`CREATE INDEX "grants_exchange_idx" ON "grants"  ("agent_id", "resource_server_id", "status") `);
        await queryRunner.query(`CREATE INDEX "grants_principal_idx" ON "grants"  ("principal_iss", "principal_sub", "id") `);
        await queryRunner.query(`CREATE TABLE "issued_tokens" ("jti" uuid NOT NULL, "agent_id" uuid NOT NULL, "principal_iss" text NOT NULL, "principal_sub" text NOT NULL, "audience" text NOT NULL, "grant_ids" uuid array NOT NULL, "actor_chain" jsonb NOT NULL, "scope" text NOT NULL, "issued_at" TIMESTAMP WITH TIME ZONE NOT NULL, "expires_at" TIMESTAMP WITH TIME ZONE NOT NULL, "revoked_at" TIMESTAMP WITH TIME ZONE, CONSTRAINT "PK_64112cf84fb0577fecc75a8244f" PRIMARY KEY ("jti"))`);
        await queryRunner.query(`CREATE INDEX "issued_tokens_expires_idx" ON "issued_tokens"  ("expires_at") `);
        await queryRunner.query(`CREATE TABLE "resource_servers" ("id" uuid NOT NULL, "name" text NOT NULL, "audience" text NOT NULL, "client_secret_hash" text, "jwks" jsonb, "webhook_url" text, "created_by" text NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "UQ_3e313d6035ce291db3bf1fa8cd9" UNIQUE ("audience"), CONSTRAINT "PK_eb2b9ba8327e20c467d98763250" PRIMARY KEY ("id"))`);
        await queryRunner.query(`CREATE TABLE "signing_keys" ("kid" text NOT NULL, "alg" text NOT NULL, "public_jwk" jsonb NOT NULL, "private_jwk" text NOT NULL, "encrypted" boolean NOT NULL DEFAULT false, "status" text NOT NULL DEFAULT 'active', "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "retired_at" TIMESTAMP WITH TIME ZONE, "publish_until" TIMESTAMP WITH TIME ZONE, CONSTRAINT "PK_13362ac3e792c69417e1a53d355" PRIMARY KEY ("kid"))`);
        // Reviewed additions the generator cannot express: GIN indexes for subtree and per-grant token
        // lookups, referential integrity, closed status vocabularies, and at most one active signing key.
        await queryRunner.query(`CREATE INDEX "grants_ancestors_gin" ON "grants" USING GIN ("ancestor_ids")`);
        await queryRunner.query(`CREATE INDEX "issued_tokens_grants_gin" ON "issued_tokens" USING GIN ("grant_ids")`);
        await queryRunner.query(`ALTER TABLE "grants" ADD CONSTRAINT "grants_agent_fk" FOREIGN KEY ("agent_id") REFERENCES "agents"("id")`);
        await queryRunner.query(`ALTER TABLE "grants" ADD CONSTRAINT "grants_resource_server_fk" FOREIGN KEY ("resource_server_id") REFERENCES "resource_servers"("id")`);
        await queryRunner.query(`ALTER TABLE "grants" ADD CONSTRAINT "grants_parent_fk" FOREIGN KEY ("parent_id") REFERENCES "grants"("id")`);
        await queryRunner.query(`ALTER TABLE "grants" ADD CONSTRAINT "grants_status_chk" CHECK ("status" IN ('active', 'revoked', 'expired'))`);
        await queryRunner.query(`ALTER TABLE "agents" ADD CONSTRAINT "agents_status_chk" CHECK ("status" IN ('active', 'disabled'))`);
        await queryRunner.query(`ALTER TABLE "signing_keys" ADD CONSTRAINT "signing_keys_status_chk" CHECK ("status" IN ('active', 'retired'))`);
        await queryRunner.query(`CREATE UNIQUE INDEX "signing_keys_one_active_uq" ON "signing_keys" ("status") WHERE status = 'active'`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "grants" DROP CONSTRAINT "grants_parent_fk"`);
        await queryRunner.query(`ALTER TABLE "grants" DROP CONSTRAINT "grants_resource_server_fk"`);
        await queryRunner.query(`ALTER TABLE "grants" DROP CONSTRAINT "grants_agent_fk"`);
        await queryRunner.query(`DROP TABLE "signing_keys"`);
        await queryRunner.query(`DROP TABLE "resource_servers"`);
        await queryRunner.query(`DROP INDEX "public"."issued_tokens_expires_idx"`);
        await queryRunner.query(`DROP TABLE "issued_tokens"`);
        await queryRunner.query(`DROP INDEX "public"."grants_principal_idx"`);
        await queryRunner.query(`DROP INDEX "public"."grants_exchange_idx"`);
        await queryRunner.query(`DROP INDEX "public"."grants_parent_idx"`);
        await queryRunner.query(`DROP INDEX "public"."grants_expiry_idx"`);
        await queryRunner.query(`DROP TABLE "grants"`);
        await queryRunner.query(`DROP INDEX "public"."agents_workload_identity_uq"`);
        await queryRunner.query(`DROP TABLE "agents"`);
    }

}
