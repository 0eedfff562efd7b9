import { until } from './poll.js';
import { expect } from 'vitest';
import { TestApp } from './app.js';
import { Fixtures } from './fixtures.js';
import { ApiResponse, call } from './http.js';
import { decodePayload, TestIdp } from './idp.js';
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE } from './oauth.js';

export interface Party {
  id: string;
  secret: string;
}

/** Shortcuts for the guardrails tests: raw token-endpoint calls (errors are what they assert), decisions, approvals. */
export class Guardrails {
  constructor(
    readonly app: TestApp,
    readonly idp: TestIdp,
    readonly fx: Fixtures,
  ) {}

  /** A token exchange on behalf of `principal`, answered as is (no client library error handling). */
  async exchange(agent: Party, resource: string, scope: string, opts: { principal?: string; subjectToken?: string; app?: TestApp; headers?: Record<string, string>; extra?: Record<string, string> } = {}): Promise<ApiResponse> {
    const form = {
      grant_type: TOKEN_EXCHANGE,
      subject_token: opts.subjectToken ?? (await this.idp.token(opts.principal ?? 'alice')),
      subject_token_type: ACCESS_TOKEN_TYPE,
      resource,
      scope,
      ...opts.extra,
    };
    return call((opts.app ?? this.app).url, 'POST', '/oauth/token', { form, basic: [agent.id, agent.secret], headers: opts.headers });
  }

  /** Like `exchange`, but the test needs the token. */
  async token(agent: Party, resource: string, scope: string, opts: Parameters<Guardrails['exchange']>[3] = {}): Promise<string> {
    const res = await this.exchange(agent, resource, scope, opts);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.access_token as string;
  }

  authorize(rs: Party, body: Record<string, unknown>, app: TestApp = this.app): Promise<ApiResponse> {
    return call(app.url, 'POST', '/v1/authorize', { json: body, basic: [rs.id, rs.secret] });
  }

  introspect(rs: Party, token: string, app: TestApp = this.app): Promise<ApiResponse> {
    return call(app.url, 'POST', '/oauth/introspect', { form: { token }, basic: [rs.id, rs.secret] });
  }

  /** The grant's agent hands part of it to another agent (the delegation API). */
  async delegate(holder: Party, grantId: string, body: Record<string, unknown>): Promise<any> {
    const res = await call(this.app.url, 'POST', `/v1/grants/${grantId}/delegations`, { json: body, basic: [holder.id, holder.secret] });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  }

  async approvals(person: string, query = ''): Promise<any[]> {
    const res = await call(this.app.url, 'GET', `/v1/approvals${query}`, { token: await this.idp.token(person) });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.data;
  }

  async decide(person: string, approvalId: string, decision: 'approve' | 'deny', json: Record<string, unknown> = {}): Promise<ApiResponse> {
    return call(this.app.url, 'POST', `/v1/approvals/${approvalId}/${decision}`, { token: await this.idp.token(person), json });
  }

  async grantTokens(person: string, grantId: string): Promise<any[]> {
    const res = await call(this.app.url, 'GET', `/v1/grants/${grantId}/tokens`, { token: await this.idp.token(person) });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.data;
  }
}

/** Asserts an OAuth error response (RFC 6749 §5.2) and returns its body. */
export function expectOAuthError(res: ApiResponse, status: number, error: string): any {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.error, JSON.stringify(res.body)).toBe(error);
  expect(res.headers.get('cache-control')).toBe('no-store');
  return res.body;
}

/** Bounded polling of an observable condition (never a bare sleep). */
export async function pollUntil<T>(what: string, probe: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 5000, everyMs = 50): Promise<T> {
  const hit = await until(async () => {
    const v = await probe();
    return done(v) ? { v } : undefined;
  }, what, timeoutMs, everyMs);
  return hit.v;
}

export const decodeClaims = (token: string) => decodePayload(token) as Record<string, any>;
