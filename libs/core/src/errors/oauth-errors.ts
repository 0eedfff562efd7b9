/**
 * OAuth 2.0 error responses (RFC 6749 §5.2, RFC 8693 §2.2.2, RFC 7662, RFC 7009), one class per code.
 * They are serialized only at the HTTP edge.
 */
export abstract class OAuthError extends Error {
  abstract readonly error: string;
  readonly status: number = 400;
  readonly headers: Record<string, string> = {};
  readonly extra: Record<string, unknown> = {};
  constructor(readonly description: string) {
    super(description);
  }
  body(): Record<string, unknown> {
    return { error: this.error, error_description: this.description, ...this.extra };
  }
}

export class InvalidRequestError extends OAuthError {
  readonly error = 'invalid_request';
}

export class InvalidClientError extends OAuthError {
  readonly error = 'invalid_client';
  override readonly status = 401;
  /** RFC 6749 §5.2: answer with a challenge when the client tried the Authorization header. */
  constructor(description: string, usedAuthorizationHeader = false) {
    super(description);
    if (usedAuthorizationHeader) this.headers['WWW-Authenticate'] = 'Basic realm="procura", error="invalid_client"';
  }
}

export class InvalidGrantError extends OAuthError {
  readonly error = 'invalid_grant';
}

export class UnauthorizedClientError extends OAuthError {
  readonly error = 'unauthorized_client';
}

export class UnsupportedGrantTypeError extends OAuthError {
  readonly error = 'unsupported_grant_type';
}

export class UnsupportedTokenTypeError extends OAuthError {
  readonly error = 'unsupported_token_type';
}

export class InvalidScopeError extends OAuthError {
  readonly error = 'invalid_scope';
}

export class InvalidTargetError extends OAuthError {
  readonly error = 'invalid_target';
}

export class AccessDeniedError extends OAuthError {
  readonly error = 'access_denied';
}

export class ExpiredTokenError extends OAuthError {
  readonly error = 'expired_token';
}

export class AuthorizationPendingError extends OAuthError {
  readonly error = 'authorization_pending';
  constructor(description: string, approvalId: string, interval: number) {
    super(description);
    Object.assign(this.extra, { approval_id: approvalId, interval });
  }
}

export class RateLimitExceededError extends OAuthError {
  readonly error = 'rate_limit_exceeded';
  override readonly status = 429;
  constructor(description: string, retryAfterSeconds: number) {
    super(description);
    this.headers['Retry-After'] = String(Math.max(1, Math.ceil(retryAfterSeconds)));
  }
}

export class TemporarilyUnavailableError extends OAuthError {
  readonly error = 'temporarily_unavailable';
  override readonly status = 503;
}

export class ServerError extends OAuthError {
  readonly error = 'server_error';
  override readonly status = 500;
  constructor() {
    super('The server could not complete the request');
  }
}
