// What the two floor servers (exchange-floor.mjs, introspection-floor.mjs) share: client_secret_basic
// against stored SHA-256 hashes, and a bare node:http server answering JSON.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';

/** `table`'s client ids and secret hashes, loaded once (a floor never re-reads them). */
export async function loadClients(db, table) {
  return new Map((await db.query(`SELECT id, client_secret_hash FROM ${table}`)).rows.map((r) => [r.id, Buffer.from(r.client_secret_hash ?? '', 'hex')]));
}

/** The authenticated client id, or null: RFC 6749 §2.3.1 Basic credentials, hashes compared in constant time. */
export function basicClient(clients, authorization) {
  if (!authorization?.startsWith('Basic ')) return null;
  const [id, secret = ''] = Buffer.from(authorization.slice(6), 'base64').toString('utf8').split(':').map(decodeURIComponent);
  const stored = clients.get(id);
  if (!stored || stored.length !== 32) return null;
  return timingSafeEqual(createHash('sha256').update(secret, 'utf8').digest(), stored) ? id : null;
}

/**
 * Serves `answer(body, authorization) -> Promise<[status, json string]>` on 127.0.0.1 (PEER_PORT, default any
 * free port) and prints {"ready":true,"url":...} on stdout, as the bench's startPeer expects; `close` runs on SIGTERM.
 */
export function serveJson(answer, close = async () => undefined) {
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      answer(Buffer.concat(chunks).toString('utf8'), req.headers.authorization)
        .catch(() => [500, '{"error":"server_error"}'])
        .then(([status, json]) => {
          res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json), 'cache-control': 'no-store' });
          res.end(json);
        });
    });
  });
  server.keepAliveTimeout = 72_000;
  server.listen(Number(process.env.PEER_PORT ?? 0), '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ ready: true, url: `http://127.0.0.1:${server.address().port}` })}\n`);
  });
  process.on('SIGTERM', () => server.close(() => close().then(() => process.exit(0))));
}
