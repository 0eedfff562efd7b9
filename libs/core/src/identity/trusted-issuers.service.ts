import { Inject, Injectable } from '@nestjs/common';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, JWTPayload, jwtVerify, JWTVerifyGetKey } from 'jose';
import { APP_CONFIG, AppConfig } from '../../../config/src/index.js';
import { VerifiedTokenCache } from '../tokens/verified-token-cache.js';

/** Asymmetric only: a shared-secret algorithm would let anyone holding a public key forge tokens. */
export const ASYMMETRIC_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

export class TokenRejected extends Error {}

export interface VerifiedIdentity {
  iss: string;
  sub: string;
  payload: JWTPayload;
  typ: string | undefined;
}

/** What kind of token the caller expects; `typ` is checked accordingly (RFC 9068 §4, RFC 8725 §3.11). */
export type ExpectedTokenKind = 'access_token' | 'id_token' | 'jwt' | 'any';

const normalizeTyp = (typ: unknown) => (typeof typ === 'string' ? typ.toLowerCase().replace(/^application\//, '') : undefined);

/** How long a trusted issuer's JWKS, and so a verification made with it, is trusted without a refetch. */
const JWKS_MAX_AGE_MS = 10 * 60_000;

interface Issuer {
  keys: JWTVerifyGetKey;
  audience?: string;
}

/** Verifies JWTs from the identity providers named in TRUSTED_ISSUERS. */
@Injectable()
export class TrustedIssuers {
  private readonly issuers = new Map<string, Issuer>();
  /** People's tokens are presented again and again (every exchange of an agent's session): verify each once. */
  private readonly verified = new VerifiedTokenCache<VerifiedIdentity>(50_000, JWKS_MAX_AGE_MS / 1000);

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    for (const t of config.trustedIssuers) {
      const keys = t.jwksUri
        ? createRemoteJWKSet(new URL(t.jwksUri), { cooldownDuration: 30_000, cacheMaxAge: JWKS_MAX_AGE_MS, timeoutDuration: 5000 })
        : createLocalJWKSet(t.jwks as never);
      this.issuers.set(t.issuer, { keys, audience: t.audience });
    }
  }

  /**
   * True when this exact token was verified here as a token of another issuer than this server, and is
   * still within its cached life (no decoding needed). This server's own tokens never count, even if its
   * issuer were listed in TRUSTED_ISSUERS: an exchange must treat them as chained tokens and check them.
   */
  isKnownExternal(token: string): boolean {
    const known = this.verified.get(token, Math.floor(Date.now() / 1000));
    return known !== undefined && known.iss !== this.config.issuer;
  }

  async verify(token: string, expected: ExpectedTokenKind): Promise<VerifiedIdentity> {
    // The exact token verified before (its issuer was trusted then, and the trusted set is fixed at boot).
    const known = this.verified.get(token, Math.floor(Date.now() / 1000));
    if (known) {
      checkKind(known.typ, known.payload, expected);
      return known;
    }
    let iss: string | undefined;
    try {
      decodeProtectedHeader(token); // a malformed header is named as such, before any key is fetched
      iss = decodeJwt(token).iss;
    } catch {
      throw new TokenRejected('token is not a well-formed JWT');
    }
    const issuer = iss ? this.issuers.get(iss) : undefined;
    if (!iss || !issuer) throw new TokenRejected('token is not from a trusted issuer');
    try {
      const { payload, protectedHeader } = await jwtVerify(token, issuer.keys, {
        issuer: iss,
        audience: issuer.audience,
        algorithms: ASYMMETRIC_ALGS,
        clockTolerance: this.config.clockLeewaySeconds,
        requiredClaims: ['exp', 'sub'],
      });
      const typ = normalizeTyp(protectedHeader.typ);
      const identity: VerifiedIdentity = { iss, sub: payload.sub as string, payload, typ };
      this.verified.set(token, identity, payload.exp as number);
      checkKind(typ, payload, expected);
      return identity;
    } catch (err) {
      throw new TokenRejected(describeJoseError(err));
    }
  }
}

function checkKind(typ: string | undefined, _payload: JWTPayload, expected: ExpectedTokenKind): void {
  if (typ !== undefined && typ !== 'jwt' && typ !== 'at+jwt') throw new TokenRejected(`unsupported token typ "${typ}"`);
  // An ID token is not an access token: RFC 9068 access tokens say so with typ "at+jwt".
  if (expected === 'access_token' && typ !== 'at+jwt') throw new TokenRejected(`expected an access token (typ "at+jwt"), got typ "${typ ?? 'none'}"`);
  if (expected === 'id_token' && typ === 'at+jwt') throw new TokenRejected('expected an ID token, got an access token');
}

export function describeJoseError(err: unknown): string {
  if (err instanceof TokenRejected) return err.message;
  if (err instanceof errors.JWTExpired) return 'token has expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return 'token is not yet valid';
    if (err.claim === 'iat') return 'token was issued in the future';
    return `token claim "${err.claim}" is invalid`;
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return 'token algorithm is not allowed';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'token signature is invalid';
  if (err instanceof errors.JWKSNoMatchingKey) return 'token is signed with an unknown key';
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JOSEError && err.code === 'ERR_JWKS_INVALID') return 'the issuer keys could not be loaded';
  if (err instanceof errors.JOSEError) return 'token is invalid';
  return 'token is invalid';
}
