export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

export const TOKEN_TYPE = {
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
  idToken: 'urn:ietf:params:oauth:token-type:id_token',
} as const;

/** RFC 9396 authorization details entry carried by every Procura access token. */
export interface CapabilityDetail {
  type: 'capability';
  grant_id: string;
  actions: string[];
  locations: string[];
  /** The constraints of every grant along the chain, root first: all of them must hold. */
  constraints: Record<string, unknown>[];
  /** Grant ids from the root grant to `grant_id`. */
  grant_chain: string[];
}

export interface ActClaim {
  sub: string;
  act?: ActClaim;
}

/** Agent ids from the outermost (current) actor inwards. */
export function actorChainOf(act: ActClaim | undefined): string[] {
  const chain: string[] = [];
  for (let a = act; a; a = a.act) chain.push(a.sub);
  return chain;
}

export function actClaimOf(chain: string[]): ActClaim | undefined {
  return chain.reduceRight<ActClaim | undefined>((inner, sub) => (inner ? { sub, act: inner } : { sub }), undefined);
}
