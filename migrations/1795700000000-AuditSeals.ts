import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The hash chain's links move out of `audit_events` into `audit_seals` (issue 7). Sealing used to UPDATE
 * each event's `seq` and hashes; since `seq` was indexed the update was never HOT, so every seal wrote a
 * second copy of a wide row and an entry into each of its seven indexes (one GIN), and left a dead row.
 * Now sealing inserts one narrow row, and `audit_events` is never updated at all. Events waiting to be
 * sealed are listed in `audit_unsealed` by a statement trigger, whichever way they were inserted.
 * Hand-written and reviewed: the generator cannot express triggers or the data move.
 */
export class AuditSeals1795700000000 implements MigrationInterface {
  name = 'AuditSeals1795700000000';

  public async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE "audit_seals" (
      "seq" bigint NOT NULL,
      "event_id" uuid NOT NULL,
      "prev_hash" text NOT NULL,
      "hash" text NOT NULL,
      CONSTRAINT "audit_seals_pkey" PRIMARY KEY ("seq")
    )`);
    await q.query(`CREATE UNIQUE INDEX "audit_seals_event_uq" ON "audit_seals" ("event_id")`);
    await q.query(`CREATE TABLE "audit_unsealed" ("id" uuid NOT NULL, CONSTRAINT "audit_unsealed_pkey" PRIMARY KEY ("id"))`);

    await q.query(`INSERT INTO "audit_seals" ("seq", "event_id", "prev_hash", "hash") SELECT "seq", "id", "prev_hash", "hash" FROM "audit_events" WHERE "seq" IS NOT NULL`);
    await q.query(`INSERT INTO "audit_unsealed" ("id") SELECT "id" FROM "audit_events" WHERE "seq" IS NULL`);
    await q.query(`DROP INDEX "audit_events_unsealed_idx"`);
    await q.query(`ALTER TABLE "audit_events" DROP CONSTRAINT "audit_events_sealed_chk", DROP CONSTRAINT "audit_events_seq_uq"`);
    await q.query(`ALTER TABLE "audit_events" DROP COLUMN "seq", DROP COLUMN "prev_hash", DROP COLUMN "hash"`);

    // Both tables strictly append-only now: no row is ever updated or deleted, by anyone but a superuser
    // who disables the triggers first, and the hash chain exposes what such a person changes.
    await q.query(`CREATE FUNCTION "audit_append_only"() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION '% is append-only (%)', TG_TABLE_NAME, TG_OP;
      END $$`);
    for (const table of ['audit_events', 'audit_seals']) {
      await q.query(`DROP TRIGGER IF EXISTS "${table}_append_only_row" ON "${table}"`);
      await q.query(`DROP TRIGGER IF EXISTS "${table}_append_only_truncate" ON "${table}"`);
      await q.query(`CREATE TRIGGER "${table}_append_only_row" BEFORE UPDATE OR DELETE ON "${table}" FOR EACH ROW EXECUTE FUNCTION "audit_append_only"()`);
      await q.query(`CREATE TRIGGER "${table}_append_only_truncate" BEFORE TRUNCATE ON "${table}" FOR EACH STATEMENT EXECUTE FUNCTION "audit_append_only"()`);
    }
    await q.query(`DROP FUNCTION "audit_events_append_only"()`);

    // One INSERT ... SELECT per statement (not per row): the exchange's group commit inserts up to 64 events at once.
    await q.query(`CREATE FUNCTION "audit_events_enqueue_unsealed"() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO "audit_unsealed" ("id") SELECT "id" FROM "inserted_events";
        RETURN NULL;
      END $$`);
    await q.query(`CREATE TRIGGER "audit_events_enqueue_unsealed" AFTER INSERT ON "audit_events" REFERENCING NEW TABLE AS "inserted_events" FOR EACH STATEMENT EXECUTE FUNCTION "audit_events_enqueue_unsealed"()`);
  }

  public async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER "audit_events_enqueue_unsealed" ON "audit_events"`);
    await q.query(`DROP FUNCTION "audit_events_enqueue_unsealed"()`);
    await q.query(`ALTER TABLE "audit_events" ADD "seq" bigint, ADD "prev_hash" text, ADD "hash" text`);
    await q.query(`ALTER TABLE "audit_events" DISABLE TRIGGER "audit_events_append_only_row"`);
    await q.query(`UPDATE "audit_events" AS e SET "seq" = s."seq", "prev_hash" = s."prev_hash", "hash" = s."hash" FROM "audit_seals" AS s WHERE s."event_id" = e."id"`);
    await q.query(`ALTER TABLE "audit_events" ENABLE TRIGGER "audit_events_append_only_row"`);
    await q.query(`ALTER TABLE "audit_events" ADD CONSTRAINT "audit_events_seq_uq" UNIQUE ("seq"),
      ADD CONSTRAINT "audit_events_sealed_chk" CHECK (("seq" IS NULL) = ("hash" IS NULL) AND ("hash" IS NULL) = ("prev_hash" IS NULL))`);
    await q.query(`CREATE INDEX "audit_events_unsealed_idx" ON "audit_events" ("id") WHERE seq IS NULL`);
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
    await q.query(`DROP TRIGGER "audit_events_append_only_row" ON "audit_events"`);
    await q.query(`DROP TRIGGER "audit_events_append_only_truncate" ON "audit_events"`);
    await q.query(`CREATE TRIGGER "audit_events_append_only_row" BEFORE UPDATE OR DELETE ON "audit_events" FOR EACH ROW EXECUTE FUNCTION "audit_events_append_only"()`);
    await q.query(`CREATE TRIGGER "audit_events_append_only_truncate" BEFORE TRUNCATE ON "audit_events" FOR EACH STATEMENT EXECUTE FUNCTION "audit_events_append_only"()`);
    await q.query(`DROP TABLE "audit_unsealed"`);
    await q.query(`DROP TABLE "audit_seals"`);
    await q.query(`DROP FUNCTION "audit_append_only"()`);
  }
}
