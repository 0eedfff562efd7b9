import { EntityMetadata } from 'typeorm';

export interface PlainInsert {
  /** `INSERT INTO "table" ("a", "b") VALUES ($n, $n+1), ...` */
  sql: string;
  values: unknown[];
}

/**
 * A multi-row INSERT of entity-shaped rows as plain SQL, for the hot paths: TypeORM's insert builder
 * (query building, parameter escaping, entity listeners) cost more CPU than the statement itself.
 * Columns are the entity's columns present on the first row (every row must have the same keys);
 * json/jsonb values are serialized here, arrays and dates are left to pg. `firstParam` lets the
 * statement follow others in one query (a CTE).
 */
export function plainInsert(meta: EntityMetadata, rows: Record<string, unknown>[], firstParam = 1): PlainInsert {
  const columns = meta.columns.filter((c) => c.propertyName in rows[0]);
  const json = columns.map((c) => c.type === 'jsonb' || c.type === 'json');
  const values: unknown[] = [];
  const tuples: string[] = [];
  let n = firstParam;
  for (const row of rows) {
    const params: string[] = [];
    columns.forEach((c, i) => {
      const v = row[c.propertyName] ?? null;
      values.push(json[i] && v !== null ? JSON.stringify(v) : v);
      params.push(`$${n++}`);
    });
    tuples.push(`(${params.join(', ')})`);
  }
  return { sql: `INSERT INTO "${meta.tableName}" (${columns.map((c) => `"${c.databaseName}"`).join(', ')}) VALUES ${tuples.join(', ')}`, values };
}

/**
 * `alias."column" AS "property"` for every mapped column of the entity: plain SQL whose rows come back
 * entity-shaped (pg parses dates, arrays and jsonb), for reads where hydrating entities cost too much.
 */
export function selectColumns(meta: EntityMetadata, alias: string): string {
  return meta.columns.map((c) => `${alias}."${c.databaseName}" AS "${c.propertyName}"`).join(', ');
}
