import { BlockList, isIP } from 'node:net';

/**
 * Declarative grant constraints. Validation is strict (unknown keys are errors, never ignored)
 * so a typo can't silently turn a restriction into no restriction. Evaluation fails closed.
 */

export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/**
 * Local wall-clock window [start, end) in `tz` (default UTC) on `days` (default all).
 * If end < start the window wraps past midnight and `days` names the day the window STARTS:
 * fri 22:00-06:00 covers Fri 22:00 to Sat 06:00. end "00:00" means "until midnight".
 * start == end is rejected as ambiguous (empty vs 24h).
 */
export interface TimeWindow {
  days?: Weekday[];
  start: string;
  end: string;
  tz?: string;
}

export type ArgScalar = string | number | boolean;

export interface ArgCondition {
  equals?: ArgScalar;
  in?: (string | number)[];
  max?: number;
  min?: number;
  prefix?: string;
  /** `*` = any run of characters, `?` = one character, all else literal; whole value. */
  glob?: string;
}

export interface Constraints {
  /** RFC 3339 date-time with offset. */
  not_before?: string;
  time_window?: TimeWindow;
  /** CIDRs (IPv4/IPv6); a bare address means /32 or /128. Host bits must be zero. */
  source_ip?: string[];
  /** Keyed by top-level argument name (identifier-like, so `args.<name>` is unambiguous). */
  args?: Record<string, ArgCondition>;
  requires_approval?: boolean;
  max_token_ttl_seconds?: number;
}

export interface ConstraintError {
  path: string;
  message: string;
}

export type ValidationResult = { ok: true; value: Constraints } | { ok: false; errors: ConstraintError[] };

export interface EvaluationContext {
  now: Date;
  sourceIp?: string;
  args?: Record<string, unknown>;
  phase: 'exchange' | 'use';
}

export type EvaluationResult = { ok: true } | { ok: false; reason: string; detail: string };

export const MAX_TOKEN_TTL_SECONDS = 86_400;
export const ARG_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

const CONSTRAINT_KEYS = ['not_before', 'time_window', 'source_ip', 'args', 'requires_approval', 'max_token_ttl_seconds'];
const WINDOW_KEYS = ['days', 'start', 'end', 'tz'];
const CONDITION_KEYS = ['equals', 'in', 'max', 'min', 'prefix', 'glob'];
const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

// ---------------------------------------------------------------- helpers

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Epoch ms of a strict RFC 3339 date-time, or null. Date.parse alone accepts Feb 30 and 24:00. */
export function parseRfc3339(s: string): number | null {
  const m = RFC3339.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  // Leap seconds (:60) are rejected: Date can't represent them.
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59 || sec > 59) return null;
  if (m[8] && (Number(m[9]) > 23 || Number(m[10]) > 59)) return null;
  const t = Date.parse(s.toUpperCase());
  return Number.isNaN(t) ? null : t;
}

export function isValidTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

type IpBytes = { family: 4 | 6; bytes: number[] };

/** Parses an IP literal to bytes. Zone IDs (fe80::1%eth0) are rejected. */
function parseIp(s: string): IpBytes | null {
  const family = isIP(s);
  if (family === 0 || s.includes('%')) return null;
  if (family === 4) return { family: 4, bytes: s.split('.').map(Number) };
  let groups: number[] = [];
  const toGroups = (part: string): number[] => {
    if (part === '') return [];
    return part.split(':').flatMap((g) => {
      if (g.includes('.')) {
        const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
        return [(a << 8) | b, (c << 8) | d];
      }
      return [parseInt(g, 16)];
    });
  };
  const [head, tail] = s.split('::') as [string, string | undefined];
  if (tail === undefined) groups = toGroups(head);
  else {
    const h = toGroups(head);
    const t = toGroups(tail);
    groups = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  }
  return { family: 6, bytes: groups.flatMap((g) => [g >> 8, g & 0xff]) };
}

/** IPv4-mapped IPv6 (::ffff:a.b.c.d) is treated as the IPv4 address it carries. */
function unmap(ip: IpBytes): IpBytes {
  if (ip.family === 6 && ip.bytes.slice(0, 10).every((b) => b === 0) && ip.bytes[10] === 0xff && ip.bytes[11] === 0xff) {
    return { family: 4, bytes: ip.bytes.slice(12) };
  }
  return ip;
}

const formatIp = (ip: IpBytes): string =>
  ip.family === 4
    ? ip.bytes.join('.')
    : Array.from({ length: 8 }, (_, i) => ((ip.bytes[2 * i]! << 8) | ip.bytes[2 * i + 1]!).toString(16)).join(':');

type Cidr = { ip: IpBytes; prefix: number };

/** Strict CIDR parse: valid address, decimal prefix without leading zeros, no host bits set. */
export function parseCidr(s: string): { ok: true; value: Cidr } | { ok: false; message: string } {
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const ip = parseIp(addr);
  if (!ip) return { ok: false, message: `"${s}" is not a valid IPv4 or IPv6 address/CIDR` };
  const maxBits = ip.family === 4 ? 32 : 128;
  if (slash < 0) return { ok: true, value: { ip, prefix: maxBits } };
  const p = s.slice(slash + 1);
  if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > maxBits) {
    return { ok: false, message: `"${s}" has an invalid prefix length (0-${maxBits})` };
  }
  const prefix = Number(p);
  for (let bit = prefix; bit < maxBits; bit++) {
    if ((ip.bytes[bit >> 3]! >> (7 - (bit & 7))) & 1) {
      return { ok: false, message: `"${s}" has host bits set; did you mean a network address?` };
    }
  }
  return { ok: true, value: { ip, prefix } };
}

/** Anchored glob match over code points; iterative backtracking, so no regex ReDoS. */
export function globMatch(pattern: string, value: string): boolean {
  const p = Array.from(pattern);
  const v = Array.from(value);
  let pi = 0;
  let vi = 0;
  let star = -1;
  let mark = 0;
  while (vi < v.length) {
    if (pi < p.length && (p[pi] === '?' || (p[pi] !== '*' && p[pi] === v[vi]))) {
      pi++;
      vi++;
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++;
      mark = vi;
    } else if (star >= 0) {
      pi = star + 1;
      vi = ++mark;
    } else return false;
  }
  while (pi < p.length && p[pi] === '*') pi++;
  return pi === p.length;
}

// ---------------------------------------------------------------- validation

export function validateConstraints(input: unknown): ValidationResult {
  const errors: ConstraintError[] = [];
  const err = (path: string, message: string) => errors.push({ path, message });
  const root = 'constraints';
  if (!isPlainObject(input)) return { ok: false, errors: [{ path: root, message: 'must be a JSON object' }] };

  const out: Constraints = {};
  for (const key of Object.keys(input)) {
    if (!CONSTRAINT_KEYS.includes(key)) err(`${root}.${key}`, 'unknown constraint');
  }

  if ('not_before' in input) {
    const v = input.not_before;
    if (typeof v !== 'string' || parseRfc3339(v) === null) {
      err(`${root}.not_before`, 'must be an RFC 3339 date-time with offset, e.g. 2026-01-01T09:00:00Z');
    } else out.not_before = v;
  }

  if ('time_window' in input) {
    const tw = validateTimeWindow(input.time_window, `${root}.time_window`, err);
    if (tw) out.time_window = tw;
  }

  if ('source_ip' in input) {
    const v = input.source_ip;
    const path = `${root}.source_ip`;
    if (!Array.isArray(v) || v.length === 0) err(path, 'must be a non-empty array of CIDR strings');
    else {
      let good = true;
      v.forEach((c, i) => {
        const r = typeof c === 'string' ? parseCidr(c) : { ok: false as const, message: 'must be a CIDR string' };
        if (!r.ok) {
          good = false;
          err(`${path}.${i}`, r.message);
        }
      });
      if (good) out.source_ip = [...(v as string[])];
    }
  }

  if ('args' in input) {
    const v = input.args;
    const path = `${root}.args`;
    if (!isPlainObject(v)) err(path, 'must be an object keyed by argument name');
    else {
      const entries: [string, ArgCondition][] = [];
      for (const [name, cond] of Object.entries(v)) {
        if (!ARG_NAME_PATTERN.test(name)) {
          err(`${path}.${name}`, 'argument name must match ' + ARG_NAME_PATTERN.source);
          continue;
        }
        const c = validateCondition(cond, `${path}.${name}`, err);
        if (c) entries.push([name, c]);
      }
      // fromEntries defines own properties, so a name like "__proto__" can't touch the prototype.
      if (!errors.some((e) => e.path.startsWith(path))) out.args = Object.fromEntries(entries);
    }
  }

  if ('requires_approval' in input) {
    if (typeof input.requires_approval !== 'boolean') err(`${root}.requires_approval`, 'must be a boolean');
    else out.requires_approval = input.requires_approval;
  }

  if ('max_token_ttl_seconds' in input) {
    const v = input.max_token_ttl_seconds;
    if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > MAX_TOKEN_TTL_SECONDS) {
      err(`${root}.max_token_ttl_seconds`, `must be an integer between 1 and ${MAX_TOKEN_TTL_SECONDS}`);
    } else out.max_token_ttl_seconds = v as number;
  }

  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: out };
}

function validateTimeWindow(v: unknown, path: string, err: (p: string, m: string) => void): TimeWindow | null {
  if (!isPlainObject(v)) {
    err(path, 'must be an object with start, end and optional days, tz');
    return null;
  }
  const before = { n: 0 };
  const e = (p: string, m: string) => {
    before.n++;
    err(p, m);
  };
  for (const key of Object.keys(v)) if (!WINDOW_KEYS.includes(key)) e(`${path}.${key}`, 'unknown time_window field');
  const out: TimeWindow = { start: '', end: '' };
  if ('days' in v) {
    const d = v.days;
    if (!Array.isArray(d) || d.length === 0) e(`${path}.days`, 'must be a non-empty array of mon..sun');
    else if (!d.every((x) => (WEEKDAYS as readonly unknown[]).includes(x))) e(`${path}.days`, 'days must be among mon, tue, wed, thu, fri, sat, sun');
    else if (new Set(d).size !== d.length) e(`${path}.days`, 'days must be unique');
    else out.days = [...(d as Weekday[])];
  }
  for (const k of ['start', 'end'] as const) {
    const t = v[k];
    if (typeof t !== 'string' || !HHMM.test(t)) e(`${path}.${k}`, 'required, must be "HH:MM" (24h)');
    else out[k] = t;
  }
  if (out.start && out.start === out.end) e(`${path}.end`, 'must differ from start (end < start wraps past midnight)');
  if ('tz' in v) {
    if (typeof v.tz !== 'string' || !isValidTimeZone(v.tz)) e(`${path}.tz`, 'must be an IANA time zone, e.g. Europe/Berlin');
    else out.tz = v.tz;
  }
  return before.n === 0 ? out : null;
}

function validateCondition(v: unknown, path: string, err: (p: string, m: string) => void): ArgCondition | null {
  if (!isPlainObject(v)) {
    err(path, 'must be a condition object');
    return null;
  }
  const keys = Object.keys(v);
  if (keys.length === 0) {
    err(path, `must contain at least one of ${CONDITION_KEYS.join(', ')}`);
    return null;
  }
  let bad = false;
  const e = (p: string, m: string) => {
    bad = true;
    err(p, m);
  };
  const out: ArgCondition = {};
  for (const key of keys) {
    const x = v[key];
    const p = `${path}.${key}`;
    switch (key) {
      case 'equals':
        if (typeof x === 'string' || typeof x === 'boolean' || isFiniteNumber(x)) out.equals = x;
        else e(p, 'must be a string, finite number or boolean');
        break;
      case 'in':
        if (Array.isArray(x) && x.length > 0 && x.every((i) => typeof i === 'string' || isFiniteNumber(i))) out.in = [...x];
        else e(p, 'must be a non-empty array of strings or finite numbers');
        break;
      case 'max':
      case 'min':
        if (isFiniteNumber(x)) out[key] = x;
        else e(p, 'must be a finite number');
        break;
      case 'prefix':
      case 'glob':
        if (typeof x === 'string') out[key] = x;
        else e(p, 'must be a string');
        break;
      default:
        e(p, 'unknown condition');
    }
  }
  if (out.min !== undefined && out.max !== undefined && out.min > out.max) e(`${path}.min`, 'must not exceed max');
  return bad ? null : out;
}

// ---------------------------------------------------------------- evaluation

const fail = (reason: string, detail: string): EvaluationResult => ({ ok: false, reason, detail });
const OK: EvaluationResult = { ok: true };

/** AND over every grant of the chain (root first); the first failure wins. */
export function evaluateConstraints(chain: readonly Constraints[], ctx: EvaluationContext): EvaluationResult {
  for (const c of chain) {
    const r = evaluateOne(c, ctx);
    if (!r.ok) return r;
  }
  return OK;
}

function evaluateOne(c: Constraints, ctx: EvaluationContext): EvaluationResult {
  const now = ctx.now.getTime();
  if (c.not_before !== undefined) {
    const nb = parseRfc3339(c.not_before);
    // Negated comparison so an unparsable bound or an invalid `now` (NaN) fails closed.
    if (nb === null || !(now >= nb)) return fail('not_yet_valid', `grant is not valid before ${c.not_before}`);
  }
  if (c.time_window !== undefined && !inTimeWindow(c.time_window, ctx.now)) {
    const w = c.time_window;
    return fail('outside_time_window', `allowed only ${(w.days ?? WEEKDAYS).join(',')} ${w.start}-${w.end} ${w.tz ?? 'UTC'}`);
  }
  // source_ip binds the exchange (where the server always passes the client IP); skipped when no IP is given.
  if (c.source_ip !== undefined && ctx.sourceIp !== undefined && !ipAllowed(c.source_ip, ctx.sourceIp)) {
    return fail('source_ip_not_allowed', 'client address is not in the allowed networks');
  }
  // args constrain the actual call, which only exists at `use`.
  if (c.args !== undefined && ctx.phase === 'use') {
    for (const [name, cond] of Object.entries(c.args)) {
      const problem = checkArg(cond, ctx.args, name);
      if (problem) return fail(`constraint_failed:args.${name}`, `argument "${name}" ${problem}`);
    }
  }
  return OK;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
const DAY_INDEX: Record<string, number> = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };
const toMinutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** Weekday (0 = mon) and minute of day of `at` in `tz`; throws on bad tz or invalid date. */
function localTime(at: Date, tz: string): { day: number; minute: number } {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(tz, f);
  }
  const parts = Object.fromEntries(f.formatToParts(at).map((p) => [p.type, p.value]));
  const day = DAY_INDEX[parts.weekday ?? ''];
  if (day === undefined) throw new Error(`unexpected weekday ${parts.weekday}`);
  return { day, minute: (Number(parts.hour) % 24) * 60 + Number(parts.minute) };
}

export function inTimeWindow(w: TimeWindow, at: Date): boolean {
  try {
    const { day, minute } = localTime(at, w.tz ?? 'UTC');
    const days = new Set((w.days ?? WEEKDAYS).map((d) => WEEKDAYS.indexOf(d)));
    const start = toMinutes(w.start);
    const end = toMinutes(w.end);
    if (start < end) return days.has(day) && minute >= start && minute < end;
    if (start === end) return false;
    // Wrapping window: either in today's evening part, or in the morning part of a window that began yesterday.
    return (days.has(day) && minute >= start) || (days.has((day + 6) % 7) && minute < end);
  } catch {
    return false;
  }
}

const blockLists = new WeakMap<readonly string[], BlockList | null>();

function buildBlockList(cidrs: readonly string[]): BlockList | null {
  const list = new BlockList();
  for (const s of cidrs) {
    const r = parseCidr(s);
    if (!r.ok) return null; // unvalidated garbage: allow nothing
    const ip = r.value.ip;
    list.addSubnet(formatIp(ip), r.value.prefix, ip.family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

export function ipAllowed(cidrs: readonly string[], clientIp: string): boolean {
  let list = blockLists.get(cidrs);
  if (list === undefined) {
    list = buildBlockList(cidrs);
    blockLists.set(cidrs, list);
  }
  const parsed = parseIp(clientIp);
  if (!list || !parsed) return false;
  const ip = unmap(parsed);
  return list.check(formatIp(ip), ip.family === 4 ? 'ipv4' : 'ipv6');
}

/** Returns why the argument fails, or null when every given condition holds. */
function checkArg(cond: ArgCondition, args: Record<string, unknown> | undefined, name: string): string | null {
  if (!args || !Object.hasOwn(args, name)) return 'is required by the grant but missing';
  const v = args[name];
  if (cond.equals !== undefined && v !== cond.equals) return `must equal ${JSON.stringify(cond.equals)}`;
  if (cond.in !== undefined && !cond.in.some((x) => x === v)) return `must be one of ${JSON.stringify(cond.in)}`;
  if (cond.max !== undefined || cond.min !== undefined) {
    if (!isFiniteNumber(v)) return 'must be a finite number';
    if (cond.max !== undefined && v > cond.max) return `must be <= ${cond.max}`;
    if (cond.min !== undefined && v < cond.min) return `must be >= ${cond.min}`;
  }
  if (cond.prefix !== undefined || cond.glob !== undefined) {
    if (typeof v !== 'string') return 'must be a string';
    if (cond.prefix !== undefined && !v.startsWith(cond.prefix)) return `must start with ${JSON.stringify(cond.prefix)}`;
    if (cond.glob !== undefined && !globMatch(cond.glob, v)) return `must match ${JSON.stringify(cond.glob)}`;
  }
  return null;
}

/** Smallest TTL cap along the chain, or undefined when no grant caps it. */
export function effectiveMaxTokenTtl(chain: readonly Constraints[]): number | undefined {
  let min: number | undefined;
  for (const c of chain) {
    const t = c.max_token_ttl_seconds;
    if (t !== undefined && (min === undefined || t < min)) min = t;
  }
  return min;
}

export function requiresApproval(chain: readonly Constraints[]): boolean {
  return chain.some((c) => c.requires_approval === true);
}
