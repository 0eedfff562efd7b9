#!/usr/bin/env node
// The peer baseline: oidc-provider (the reference Node.js OAuth server) with client_credentials and
// introspection enabled, its default (in-memory) store and opaque access tokens, in one process.
//
//   PEER_PORT (default 0 = any free port). Prints one JSON line {"ready":true,"url":...} on stdout.
//
// Clients: "bench-agent" (client_credentials, client_secret_basic) issues tokens;
// "bench-rs" (no grant types, client_secret_basic) introspects them.
import Provider from 'oidc-provider';

export const PEER_CLIENTS = {
  agent: { id: 'bench-agent', secret: 'bench-agent-secret-0123456789abcdef0123456789abcdef' },
  rs: { id: 'bench-rs', secret: 'bench-rs-secret-0123456789abcdef0123456789abcdef0123' },
};

export async function startPeer({ port = 0 } = {}) {
  const http = await import('node:http');
  // The issuer must be known before the port is; bind first, then build the provider.
  const server = http.createServer();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: PEER_CLIENTS.agent.id,
        client_secret: PEER_CLIENTS.agent.secret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: 'docs:read',
      },
      {
        client_id: PEER_CLIENTS.rs.id,
        client_secret: PEER_CLIENTS.rs.secret,
        grant_types: [],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    scopes: ['docs:read'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Any authenticated client may introspect (Procura's resource servers may introspect any token for them).
      introspection: { enabled: true, allowedPolicy: async () => true },
      revocation: { enabled: true },
    },
    ttl: { ClientCredentials: 300 },
    cookies: { keys: ['bench-peer-cookie-key-0123456789'] },
  });
  provider.proxy = false;
  server.on('request', provider.callback());
  return {
    url: issuer,
    tokenEndpoint: `${issuer}/token`,
    introspectionEndpoint: `${issuer}/token/introspection`,
    close: () => new Promise((resolve) => { server.close(() => resolve()); server.closeAllConnections?.(); }),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const peer = await startPeer({ port: Number(process.env.PEER_PORT || 0) });
  process.stdout.write(`${JSON.stringify({ ready: true, url: peer.url })}\n`);
  const stop = () => peer.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
