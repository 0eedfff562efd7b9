#!/usr/bin/env node
// The harness's ceiling: a bare node:http server that reads each POST body and answers a fixed
// introspection-shaped JSON body, doing no work at all. Run under the same load as Procura and the peer,
// it shows the most req/s the load generator and this machine allow any Node.js server to reach.
//
//   PEER_PORT (default 0 = any free port). Prints one JSON line {"ready":true,"url":...} on stdout.
import { createServer } from 'node:http';

const BODY = JSON.stringify({
  active: true,
  iss: 'http://127.0.0.1:3000',
  sub: 'bench-user-00001',
  aud: 'https://rs-1.bench.example',
  client_id: '00000000-0000-7000-8000-000000000001',
  scope: 'docs:read',
  token_type: 'Bearer',
  exp: 2000000000,
  iat: 1999999700,
  jti: '00000000-0000-7000-8000-000000000002',
  authorization_details: [
    { type: 'capability', grant_id: '00000000-0000-7000-8000-000000000003', actions: ['docs:read'], locations: ['https://rs-1.bench.example'], constraints: [{}], grant_chain: ['00000000-0000-7000-8000-000000000003'] },
  ],
});

const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(BODY), 'cache-control': 'no-store' });
    res.end(BODY);
  });
});
server.keepAliveTimeout = 72_000;
server.listen(Number(process.env.PEER_PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ ready: true, url: `http://127.0.0.1:${server.address().port}` })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
