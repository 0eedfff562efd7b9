import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, JWTPayload, SignJWT, CryptoKey, JWK } from 'jose';
import { createHmac, randomUUID } from 'node:crypto';

export interface MintOptions {
  typ?: string | null;
  alg?: 'ES256' | 'RS256';
  kid?: string;
  expiresIn?: number;
  notBefore?: number;
  omit?: (keyof JWTPayload)[];
}

/** A real identity provider for tests: its own keys, a JWKS served over HTTP, and tokens on demand. */
export class TestIdp {
  private server!: Server;
  issuer!: string;
  jwksUri!: string;
  private keys: { kid: string; alg: 'ES256' | 'RS256'; privateKey: CryptoKey; publicJwk: JWK }[] = [];

  static async start(): Promise<TestIdp> {
    const idp = new TestIdp();
    for (const alg of ['ES256', 'RS256'] as const) {
      const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
      idp.keys.push({ kid: `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`, alg, privateKey, publicJwk: await exportJWK(publicKey) });
    }
    idp.server = createServer((req, res) => {
      if (req.url === '/jwks.json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(idp.jwks()));
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => idp.server.listen(0, '127.0.0.1', resolve));
    const { port } = idp.server.address() as AddressInfo;
    idp.issuer = `http://127.0.0.1:${port}`;
    idp.jwksUri = `${idp.issuer}/jwks.json`;
    return idp;
  }

  jwks() {
    return { keys: this.keys.map((k) => ({ ...k.publicJwk, kid: k.kid, alg: k.alg, use: 'sig' })) };
  }

  trustedIssuerConfig(audience?: string) {
    return { issuer: this.issuer, jwks_uri: this.jwksUri, ...(audience ? { audience } : {}) };
  }

  /** A person's access token (typ at+jwt by default). */
  async token(sub: string, claims: JWTPayload = {}, opts: MintOptions = {}): Promise<string> {
    const key = this.keys.find((k) => k.alg === (opts.alg ?? 'ES256'))!;
    const now = Math.floor(Date.now() / 1000);
    const payload: JWTPayload = { iss: this.issuer, sub, aud: 'procura', iat: now, exp: now + (opts.expiresIn ?? 600), jti: randomUUID(), ...claims };
    if (opts.notBefore !== undefined) payload.nbf = now + opts.notBefore;
    for (const k of opts.omit ?? []) delete payload[k];
    const header: Record<string, unknown> = { alg: key.alg, kid: opts.kid ?? key.kid };
    if (opts.typ !== null) header.typ = opts.typ ?? 'at+jwt';
    return new SignJWT(payload).setProtectedHeader(header as never).sign(key.privateKey);
  }

  /** An ID token (typ JWT, with nonce), for tests that present one where an access token is expected. */
  idToken(sub: string): Promise<string> {
    return this.token(sub, { nonce: 'n-0S6_WzA2Mj', auth_time: Math.floor(Date.now() / 1000) }, { typ: 'JWT' });
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** Forgeries for attack tests. */
export const forge = {
  algNone(payload: JWTPayload): string {
    return `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(payload)}.`;
  },
  /** HS256 "signed" with the issuer's public key as the HMAC secret: the classic key-confusion attack. */
  hs256WithPublicKey(payload: JWTPayload, publicJwk: unknown, kid?: string): string {
    const input = `${b64({ alg: 'HS256', typ: 'at+jwt', kid })}.${b64(payload)}`;
    const sig = createHmac('sha256', JSON.stringify(publicJwk)).update(input).digest('base64url');
    return `${input}.${sig}`;
  },
  tamper(token: string, patch: JWTPayload): string {
    const [h, p, s] = token.split('.');
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as JWTPayload;
    return `${h}.${b64({ ...payload, ...patch })}.${s}`;
  },
};

export const decodePayload = (token: string) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) as Record<string, unknown>;
export const decodeHeader = (token: string) => JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString('utf8')) as Record<string, unknown>;
