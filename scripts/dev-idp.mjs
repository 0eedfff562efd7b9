#!/usr/bin/env node
// A tiny demo identity provider for the quickstart and local testing.
// NOT for production: it mints a token for any subject it is asked for.
//
//   GET /jwks.json                  public JWKS (one ES256 key, generated at start)
//   GET /token?sub=alice            {"access_token": <JWT, typ at+jwt>}
//   GET /token?sub=alice&typ=JWT    same, with header typ "JWT"
//
// Optional /token parameters for testing: aud (default "procura"), scope,
// ttl (seconds, default 3600; negative gives an already expired token).
//
// Only ever binds 127.0.0.1. Run directly (DEV_IDP_PORT, default 3001) or import
// startDevIdp({ port }) -> Promise<{ issuer, jwksUri, tokenEndpoint, port, close() }>.
import { randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';

const HOST = '127.0.0.1';
const ALG = 'ES256';

export async function startDevIdp({ port = 3001 } = {}) {
  const { privateKey, publicKey } = await generateKeyPair(ALG);
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const jwks = { keys: [{ ...publicJwk, kid, alg: ALG, use: 'sig' }] };

  let issuer = '';

  const send = (res, status, body) => {
    res.writeHead(status, {
      'content-type': 'application/json',
      'cache-control': 'no-store',
    });
    res.end(JSON.stringify(body));
  };

  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', issuer);
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        return send(res, 405, { error: 'method_not_allowed' });
      }
      if (url.pathname === '/jwks.json') {
        return send(res, 200, jwks);
      }
      if (url.pathname === '/token') {
        const q = url.searchParams;
        const sub = q.get('sub');
        if (!sub) return send(res, 400, { error: 'invalid_request', error_description: 'sub is required' });
        const typ = q.get('typ') === 'JWT' ? 'JWT' : 'at+jwt';
        const ttl = q.has('ttl') ? Number(q.get('ttl')) : 3600;
        if (!Number.isInteger(ttl)) return send(res, 400, { error: 'invalid_request', error_description: 'ttl must be an integer' });
        const now = Math.floor(Date.now() / 1000);
        const claims = q.has('scope') ? { scope: q.get('scope') } : {};
        const accessToken = await new SignJWT(claims)
          .setProtectedHeader({ alg: ALG, kid, typ })
          .setIssuer(issuer)
          .setSubject(sub)
          .setAudience(q.get('aud') || 'procura')
          .setIssuedAt(now)
          .setExpirationTime(now + ttl)
          .setJti(randomUUID())
          .sign(privateKey);
        return send(res, 200, { access_token: accessToken, token_type: 'Bearer', expires_in: ttl });
      }
      return send(res, 404, { error: 'not_found' });
    } catch (err) {
      return send(res, 500, { error: 'server_error', error_description: String(err?.message ?? err) });
    }
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actualPort = server.address().port;
  issuer = `http://${HOST}:${actualPort}`;

  return {
    issuer,
    jwksUri: `${issuer}/jwks.json`,
    tokenEndpoint: `${issuer}/token`,
    port: actualPort,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}

function isMain() {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const port = Number(process.env.DEV_IDP_PORT || 3001);
  try {
    const idp = await startDevIdp({ port });
    console.log(`dev IdP: issuer ${idp.issuer}, JWKS ${idp.jwksUri}, tokens at ${idp.tokenEndpoint}?sub=alice`);
    const stop = () => idp.close().then(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  } catch (err) {
    console.error(`dev IdP: cannot listen on ${HOST}:${port}: ${err?.message ?? err}`);
    process.exit(1);
  }
}
