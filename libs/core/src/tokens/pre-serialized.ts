/**
 * JSON bodies serialized once and answered many times: the HTTP edge sends the stored text instead of
 * stringifying again (the introspection profile spent a quarter of its time in JSON.stringify). Only for
 * objects nobody mutates after `remember`.
 */
const texts = new WeakMap<object, string>();

export function rememberSerialized<T extends object>(body: T): T {
  texts.set(body, JSON.stringify(body));
  return body;
}

export function serializeBody(body: unknown): string {
  return (typeof body === 'object' && body !== null ? texts.get(body) : undefined) ?? JSON.stringify(body);
}
