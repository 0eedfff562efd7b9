import * as oauth from 'oauth4webapi';

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** Discovers the authorization server with oauth4webapi, as a real agent or resource server would. */
export async function discover(issuer: string): Promise<oauth.AuthorizationServer> {
  const res = await oauth.discoveryRequest(new URL(issuer), { algorithm: 'oauth2', [oauth.allowInsecureRequests]: true });
  return oauth.processDiscoveryResponse(new URL(issuer), res);
}

export async function exchange(as: oauth.AuthorizationServer, client: { id: string; secret: string }, params: Record<string, string>): Promise<oauth.TokenEndpointResponse> {
  const res = await oauth.genericTokenEndpointRequest(as, { client_id: client.id }, oauth.ClientSecretBasic(client.secret), TOKEN_EXCHANGE, params, { [oauth.allowInsecureRequests]: true });
  return oauth.processGenericTokenEndpointResponse(as, { client_id: client.id }, res);
}

export async function introspect(as: oauth.AuthorizationServer, rs: { id: string; secret: string }, token: string): Promise<oauth.IntrospectionResponse> {
  const res = await oauth.introspectionRequest(as, { client_id: rs.id }, oauth.ClientSecretBasic(rs.secret), token, { [oauth.allowInsecureRequests]: true });
  return oauth.processIntrospectionResponse(as, { client_id: rs.id }, res);
}

export async function revokeToken(as: oauth.AuthorizationServer, client: { id: string; secret: string }, token: string): Promise<void> {
  const res = await oauth.revocationRequest(as, { client_id: client.id }, oauth.ClientSecretBasic(client.secret), token, { [oauth.allowInsecureRequests]: true });
  await oauth.processRevocationResponse(res);
}

export { oauth };
