import { InvalidRequestError } from '../errors/oauth-errors.js';

/** Parameters RFC 8693 allows to repeat; every other parameter must appear at most once (RFC 6749 §3.2). */
const MULTI_VALUED = new Set(['resource', 'audience']);

export interface FormParams {
  single: Record<string, string | undefined>;
  multi: Record<string, string[]>;
}

/** What every OAuth endpoint receives from the HTTP edge. */
export interface OAuthRequest {
  body: unknown;
  contentType: string | undefined;
  authorization: string | undefined;
  /** Absolute URL of the endpoint being called (a valid `aud` for client assertions). */
  endpoint: string;
}

export function readForm({ body, contentType }: Pick<OAuthRequest, 'body' | 'contentType'>): FormParams {
  if (!/^application\/x-www-form-urlencoded\b/i.test(contentType ?? '')) {
    throw new InvalidRequestError('the request body must be application/x-www-form-urlencoded');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new InvalidRequestError('the request body must be application/x-www-form-urlencoded');
  }
  const single: Record<string, string | undefined> = {};
  const multi: Record<string, string[]> = {};
  for (const [name, raw] of Object.entries(body as Record<string, unknown>)) {
    const values = Array.isArray(raw) ? raw : [raw];
    if (!values.every((v) => typeof v === 'string')) throw new InvalidRequestError(`parameter ${name} is malformed`);
    if (MULTI_VALUED.has(name)) multi[name] = (values as string[]).filter((v) => v !== '');
    else if (values.length > 1) throw new InvalidRequestError(`parameter ${name} must not be repeated`);
    // RFC 6749 §3.1: parameters sent without a value are treated as omitted.
    else single[name] = values[0] === '' ? undefined : (values[0] as string);
  }
  return { single, multi };
}
