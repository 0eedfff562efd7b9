import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotateKeys } from '../apps/api/src/cli/rotate-keys.js';
import { createApp } from '../apps/api/src/app.factory.js';
import { loadConfig } from '../libs/config/src/index.js';
import { startApp, startReplica, TestApp } from './support/app.js';
import { adminQuery } from './support/db.js';
import { Fixtures } from './support/fixtures.js';
import { call } from './support/http.js';
import { decodeHeader, TestIdp } from './support/idp.js';
import { ACCESS_TOKEN_TYPE, discover, exchange, introspect } from './support/oauth.js';

const KEK = Buffer.alloc(32, 7).toString('base64');

let idp: TestIdp;
beforeAll(async () => {
  idp = await TestIdp.start();
});
afterAll(async () => {
  await idp?.close();
});

async function issueOne(app: TestApp) {
  const fx = new Fixtures(app, idp);
  const rs = await fx.resourceServer();
  const agent = await fx.agent();
  await fx.grant('alice', { agent_id: agent.id, resource: rs.audience, action: 'docs:read' });
  const as = await discover(app.url);
  const params = { subject_token: await idp.token('alice'), subject_token_type: ACCESS_TOKEN_TYPE, resource: rs.audience, scope: 'docs:read' };
  return { as, rs, agent, params, token: (await exchange(as, agent, params)).access_token };
}

describe('signing keys', () => {
  it('keeps private keys encrypted at rest with KEY_ENCRYPTION_KEY, and refuses to start without it', async () => {
    const app = await startApp({ idp, env: { KEY_ENCRYPTION_KEY: KEK } });
    try {
      const { as, rs, token } = await issueOne(app);
      expect((await introspect(as, rs, token)).active).toBe(true);
      const [row] = (await adminQuery('SELECT encrypted, private_jwk FROM signing_keys', [], app.database)).rows;
      expect(row.encrypted).toBe(true);
      expect(row.private_jwk).not.toContain('"d"');
      // A process without the key-encryption key cannot use the stored key: it does not start.
      const config = loadConfig({ ...process.env, DATABASE_URL: app.config.databaseUrl, REDIS_PREFIX: app.config.redisPrefix, LOG_LEVEL: 'fatal', MIGRATE_ON_START: 'false', KEY_ENCRYPTION_KEY: undefined });
      const withoutKek = await createApp(config);
      await expect(withoutKek.init()).rejects.toThrow(/KEY_ENCRYPTION_KEY/);
      await withoutKek.close().catch(() => undefined);
    } finally {
      await app.close();
    }
  });

  it('signs with EdDSA when configured', async () => {
    const app = await startApp({ idp, env: { SIGNING_ALG: 'EdDSA' } });
    try {
      const { as, rs, token } = await issueOne(app);
      expect(decodeHeader(token).alg).toBe('EdDSA');
      expect((await call(app.url, 'GET', '/.well-known/jwks.json')).body.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' });
      expect((await introspect(as, rs, token)).active).toBe(true);
    } finally {
      await app.close();
    }
  });

  it('signs with RS256 when configured, the algorithm RFC 9068 requires every server to support', async () => {
    const app = await startApp({ idp, env: { SIGNING_ALG: 'RS256' } });
    try {
      const { as, rs, token } = await issueOne(app);
      expect(decodeHeader(token)).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
      const jwks = (await call(app.url, 'GET', '/.well-known/jwks.json')).body;
      expect(jwks.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
      expect(jwks.keys[0].d).toBeUndefined();
      // A resource server verifying locally with the published key, the algorithm pinned.
      const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { issuer: app.config.issuer, audience: rs.audience, algorithms: ['RS256'], typ: 'at+jwt' });
      expect(payload.scope).toBe('docs:read');
      expect((await introspect(as, rs, token)).active).toBe(true);
    } finally {
      await app.close();
    }
  });

  it('rotates from the command line; running processes verify the new key at once', async () => {
    const a = await startApp({ idp });
    let b: TestApp | undefined;
    try {
      const { as, rs, agent, params, token: before } = await issueOne(a);
      const { kid, retiredKid } = await rotateKeys(a.config);
      expect(retiredKid).toBe(decodeHeader(before).kid);
      const keys = (await adminQuery('SELECT kid, status, publish_until FROM signing_keys ORDER BY created_at', [], a.database)).rows;
      expect(keys.map((k: { status: string }) => k.status)).toEqual(['retired', 'active']);
      expect(keys[0].publish_until.getTime()).toBeGreaterThan(Date.now() + a.config.maxTokenTtlSeconds * 1000);

      // A process started after the rotation signs with the new key; the older process verifies it.
      b = await startReplica(a, idp);
      const after = (await exchange(await discover(a.url), agent, { ...params, subject_token: await idp.token('alice') })).access_token;
      const fromB = await call(b.url, 'POST', '/oauth/token', {
        basic: [agent.id, agent.secret],
        form: { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', ...params, subject_token: await idp.token('alice') },
      });
      expect(fromB.status).toBe(200);
      expect(decodeHeader(fromB.body.access_token).kid).toBe(kid);
      expect((await introspect(as, rs, fromB.body.access_token)).active).toBe(true);
      expect((await introspect(as, rs, before)).active).toBe(true);
      expect((await introspect(as, rs, after)).active).toBe(true);
      const published = (await call(a.url, 'GET', '/.well-known/jwks.json')).body.keys.map((k: { kid: string }) => k.kid);
      expect(published).toEqual(expect.arrayContaining([kid, retiredKid]));
    } finally {
      await b?.close();
      await a.close();
    }
  });
});
