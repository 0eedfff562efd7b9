import { expect } from 'vitest';
import { TestApp } from './app.js';
import { call } from './http.js';
import { TestIdp } from './idp.js';

export interface Client {
  id: string;
  secret: string;
}

/** Registration shortcuts through the public API, as an admin would do them. */
export class Fixtures {
  constructor(private readonly app: TestApp, private readonly idp: TestIdp) {}

  admin() {
    return this.idp.token('admin');
  }

  async resourceServer(audience = `https://rs-${Math.random().toString(36).slice(2)}.example`, extra: Record<string, unknown> = {}): Promise<Client & { audience: string }> {
    const res = await call(this.app.url, 'POST', '/v1/resource-servers', { token: await this.admin(), json: { name: 'rs', audience, ...extra } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return { id: res.body.client_id, secret: res.body.client_secret, audience };
  }

  async agent(extra: Record<string, unknown> = {}): Promise<Client> {
    const res = await call(this.app.url, 'POST', '/v1/agents', { token: await this.admin(), json: { name: 'agent', ...extra } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return { id: res.body.client_id, secret: res.body.client_secret };
  }

  async grant(principal: string, body: Record<string, unknown>): Promise<any> {
    const res = await call(this.app.url, 'POST', '/v1/grants', { token: await this.idp.token(principal), json: body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  }

  async revoke(principal: string, grantId: string, reason?: string) {
    const res = await call(this.app.url, 'POST', `/v1/grants/${grantId}/revoke`, { token: await this.idp.token(principal), json: reason ? { reason } : {} });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body;
  }
}
