import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { constants, createPrivateKey, KeyObject, randomUUID, sign as cryptoSign } from 'node:crypto';
import { createLocalJWKSet, errors, exportJWK, generateKeyPair, JSONWebKeySet, JWK, JWTPayload, jwtVerify } from 'jose';
import { APP_CONFIG, AppConfig } from '../../../config/src/index.js';
import { SigningKeyEntity, SigningKeyRepository } from '../../../persistence/src/index.js';
import { actors } from '../audit/audit-events.js';
import { AuditService } from '../audit/audit.service.js';
import { Principal } from '../identity/principal.js';
import { open, seal } from './key-crypto.js';

const RELOAD_INTERVAL_MS = 30_000;
/** Retired keys stay published past the last token's expiry by at least one reload interval of every process. */
const PUBLISH_MARGIN_MS = 2 * RELOAD_INTERVAL_MS;

interface ActiveKey {
  kid: string;
  alg: string;
  privateKey: KeyObject;
}

/** Owns this server's signing keys: generated on first start, kept in Postgres, rotated on request. */
@Injectable()
export class KeysService implements OnModuleInit, OnModuleDestroy {
  private readonly log = new Logger(KeysService.name);
  private active!: ActiveKey;
  private publicJwks: JSONWebKeySet = { keys: [] };
  private verifierKeys = createLocalJWKSet({ keys: [] });
  private lastReload = 0;
  private pendingReload?: Promise<void>;
  private timer?: NodeJS.Timeout;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly keys: SigningKeyRepository,
    private readonly audit: AuditService,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.keys.ensureActive(() => this.newKey());
    await this.reload();
    this.timer = setInterval(() => void this.reload().catch((err: Error) => this.log.warn(`key reload failed: ${err.message}`)), RELOAD_INTERVAL_MS);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }

  jwks(): JSONWebKeySet {
    return this.publicJwks;
  }

  /** Every algorithm this server signs with; RFC 9068 §4 requires RS256 among them. */
  get algorithms(): string[] {
    return ['ES256', 'EdDSA', 'RS256'];
  }

  /**
   * Compact JWS signed with node:crypto directly: one issuance's signature costs a third of the WebCrypto
   * path. ES256 and EdDSA sign inline (34 and 43 µs of CPU here): handing them to libuv's thread pool cost the event
   * loop more than it saved, because waking a signing thread on a busy machine preempts the loop
   * (docs/performance.md, item 25). RS256 (0.7 ms) would stall the loop, so it signs on the thread pool.
   */
  async sign(claims: JWTPayload, typ: string): Promise<string> {
    const { kid, alg, privateKey } = this.active;
    const input = `${b64url(JSON.stringify({ alg, kid, typ }))}.${b64url(JSON.stringify(claims))}`;
    const data = Buffer.from(input, 'utf8');
    let signature: Buffer;
    if (alg === 'ES256') signature = cryptoSign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    else if (alg === 'EdDSA') signature = cryptoSign(null, data, privateKey);
    else if (alg === 'RS256') {
      signature = await new Promise<Buffer>((resolve, reject) =>
        cryptoSign('sha256', data, { key: privateKey, padding: constants.RSA_PKCS1_PADDING }, (err, sig) => (err ? reject(err) : resolve(sig))),
      );
    } else throw new Error(`signing key ${kid} has unsupported alg ${alg}`);
    return `${input}.${signature.toString('base64url')}`;
  }

  /** Verifies a JWT this server signed; pins the algorithms, the issuer and the `typ`. */
  async verifyOwn(token: string, typ: string): Promise<JWTPayload> {
    const opts = { issuer: this.config.issuer, algorithms: this.algorithms, typ, requiredClaims: ['exp', 'iat', 'jti'] };
    try {
      return (await jwtVerify(token, this.verifierKeys, opts)).payload;
    } catch (err) {
      // A key rotated on another process: refresh (at most once a second, shared by concurrent callers) and retry.
      if (err instanceof errors.JWKSNoMatchingKey) {
        await this.reloadSoon();
        return (await jwtVerify(token, this.verifierKeys, opts)).payload;
      }
      throw err;
    }
  }

  /** Installs a new active key; the old one stays published until every token it signed has expired. */
  async rotate(by?: Principal): Promise<{ kid: string; retiredKid: string | null }> {
    const next = await this.newKey();
    const now = new Date();
    const publishUntil = new Date(now.getTime() + this.config.maxTokenTtlSeconds * 1000 + PUBLISH_MARGIN_MS);
    const retiredKid = await this.keys.rotate(next, now, publishUntil);
    // Key ids only, never key material.
    await this.audit.record(null, { type: 'key.rotated', by: by ? actors.person(by) : actors.system, outcome: 'rotated', occurredAt: now, data: { kid: next.kid, alg: next.alg, retired_kid: retiredKid, retired_published_until: publishUntil.toISOString() } });
    await this.reload();
    return { kid: next.kid, retiredKid };
  }

  /**
   * One reload for every caller that asks meanwhile, never more often than once a second: unknown
   * `kid`s (a forged token's or a new key's) cannot turn into a flood of key queries.
   */
  private reloadSoon(): Promise<void> {
    this.pendingReload ??= (async () => {
      const wait = this.lastReload + 1000 - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await this.reload();
    })().finally(() => {
      this.pendingReload = undefined;
    });
    return this.pendingReload;
  }

  private async reload(): Promise<void> {
    this.lastReload = Date.now();
    const rows = await this.keys.findPublishable(new Date());
    const activeRow = rows.find((r) => r.status === 'active');
    if (!activeRow) throw new Error('no active signing key');
    if (activeRow.kid !== this.active?.kid) this.active = await this.loadPrivate(activeRow);
    this.publicJwks = { keys: rows.map((r) => ({ ...r.publicJwk, kid: r.kid, alg: r.alg, use: 'sig' }) as JWK) };
    this.verifierKeys = createLocalJWKSet(this.publicJwks);
  }

  private async loadPrivate(row: SigningKeyEntity): Promise<ActiveKey> {
    let json = row.privateJwk;
    if (row.encrypted) {
      // Fail closed: an encrypted key without the key-encryption key cannot be used.
      if (!this.config.keyEncryptionKey) throw new Error('KEY_ENCRYPTION_KEY: required to decrypt the stored signing key');
      json = open(row.privateJwk, this.config.keyEncryptionKey);
    } else if (this.config.keyEncryptionKey) {
      this.log.warn(`signing key ${row.kid} is stored unencrypted; rotate keys to encrypt it at rest`);
    }
    return { kid: row.kid, alg: row.alg, privateKey: createPrivateKey({ key: JSON.parse(json) as JWK & { kty: string }, format: 'jwk' }) };
  }

  private async newKey(): Promise<Omit<SigningKeyEntity, 'createdAt'>> {
    const alg = this.config.signingAlg;
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, crv: alg === 'EdDSA' ? 'Ed25519' : undefined, modulusLength: alg === 'RS256' ? 2048 : undefined });
    const privateJson = JSON.stringify(await exportJWK(privateKey));
    const kek = this.config.keyEncryptionKey;
    return {
      kid: randomUUID(),
      alg,
      publicJwk: await exportJWK(publicKey) as Record<string, unknown>,
      privateJwk: kek ? seal(privateJson, kek) : privateJson,
      encrypted: Boolean(kek),
      status: 'active',
      retiredAt: null,
      publishUntil: null,
    };
  }
}

const b64url = (s: string) => Buffer.from(s, 'utf8').toString('base64url');
