/**
 * Actions name one capability, e.g. `email:read`, `calendar:events:write`.
 * A trailing `*` segment is a wildcard (`email:*`); `*` alone means every action.
 */
export const ACTION_MAX_LENGTH = 128;
export const ACTION_PATTERN = /^(?=.{1,128}$)(?:\*|[a-z0-9_.-]+(?::[a-z0-9_.-]+)*(?::\*)?)$/;

export function isValidAction(s: unknown): s is string {
  return typeof s === 'string' && ACTION_PATTERN.test(s);
}

export function isWildcardAction(action: string): boolean {
  return action === '*' || action.endsWith(':*');
}

/**
 * True when a grant for `parent` also permits `child`. Invalid input never covers or is covered
 * (fail closed). A wildcard child is covered only by an equal or broader wildcard, because
 * `email:drafts:*` starts with `email:` but not with `email:drafts:read:`.
 */
export function actionCovers(parent: string, child: string): boolean {
  if (!isValidAction(parent) || !isValidAction(child)) return false;
  if (parent === child || parent === '*') return true;
  if (!parent.endsWith(':*')) return false;
  return child.startsWith(parent.slice(0, -1)); // prefix including the trailing ':'
}

/** RFC 6749 §3.3: space-delimited, order kept, duplicates and empty tokens dropped. */
export function parseScope(scope: string | undefined | null): string[] {
  if (!scope) return [];
  return [...new Set(scope.split(' ').filter((t) => t.length > 0))];
}

export function formatScope(actions: readonly string[]): string {
  return [...new Set(actions)].join(' ');
}
