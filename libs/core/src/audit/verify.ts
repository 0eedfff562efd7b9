import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../../persistence/src/data-source.js';
import { AuditRepository } from '../../../persistence/src/index.js';
import { ChainVerifier, VerifyResult } from './chain.js';

const BATCH = 1000;

/** Recomputes the chain from the first sealed event up to the head read at the start. */
export async function verifyChain(events: AuditRepository): Promise<VerifyResult> {
  const head = await events.head();
  const verifier = new ChainVerifier();
  let afterSeq = 0;
  for (;;) {
    const rows = await events.sealedAfter(afterSeq, BATCH);
    // Rows sealed after the head was read belong to the next verification.
    const inScope = head ? rows.filter((r) => Number(r.seal.seq) <= head.seq) : rows;
    for (const row of inScope) {
      const broken = verifier.next(row);
      if (broken) return { ok: false, checked: verifier.checked, first_broken: broken, unsealed: await events.countUnsealed() };
    }
    if (rows.length < BATCH || inScope.length < rows.length) break;
    afterSeq = Number(rows[rows.length - 1].seal.seq);
  }
  const broken = verifier.end(head);
  return { ok: !broken, checked: verifier.checked, first_broken: broken, unsealed: await events.countUnsealed() };
}

/** For `npm run audit:verify`: its own short-lived connection, no Nest, no Redis. */
export async function verifyChainAt(databaseUrl: string): Promise<VerifyResult> {
  const ds = new DataSource({ ...dataSourceOptions(databaseUrl), extra: { max: 2, connectionTimeoutMillis: 5000 } });
  await ds.initialize();
  try {
    return await verifyChain(new AuditRepository(ds));
  } finally {
    await ds.destroy();
  }
}
