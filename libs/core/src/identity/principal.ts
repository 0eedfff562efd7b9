/** A person (or, for autonomous grants, an agent) authenticated at the REST API. */
export interface Principal {
  iss: string;
  sub: string;
  isAdmin: boolean;
}

export const principalLabel = (p: { iss: string; sub: string }) => `${p.sub}@${p.iss}`;
