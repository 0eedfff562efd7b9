import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ChainableCommander, Redis } from 'ioredis';
import { APP_CONFIG, AppConfig } from '../../../config/src/index.js';
import { REDIS, RedisKeys } from '../redis/redis.module.js';

/** What changed. Every field lists ids whose process-local copies must be dropped. */
export interface Invalidation {
  grants?: string[];
  agents?: string[];
  /** Token ids (jti). */
  tokens?: string[];
  /** Agents that were given a new grant: cached "which grants does this agent hold" answers are stale. */
  holders?: string[];
  /** Client records, as `agent:<id>` or `rs:<id>` (ClientRecordCache). */
  clients?: string[];
}

/** `'all'`: this process may have missed invalidations; drop everything. */
export type InvalidationListener = (change: Invalidation | 'all') => void;

/**
 * Lets API processes keep revocation-sensitive answers (grant, agent and token status; the grants an
 * agent holds) in process memory, and still guarantee that once a revoke returns on any process, no
 * process serves the old answer.
 *
 * - A process may serve from its local caches only while it holds a lease. It renews the lease by
 *   running, in one Redis script, `ZADD members <redis now + lease>` and a PUBLISH of a heartbeat to
 *   itself; the lease counts from just *before* the script was sent and only once that heartbeat came
 *   back through its subscription. Redis delivers a connection's messages in publish order, so every
 *   invalidation published before the heartbeat has been applied when the lease is extended.
 * - A writer publishes an invalidation (after writing the Redis tombstones, before its Postgres commit)
 *   with a script that reads the members whose lease is live at that instant, then waits until each of
 *   them acknowledged having applied it, or until its lease ran out. A member that crashed, stalls or
 *   lost Redis stops serving from memory when its lease runs out, which is before the writer stops
 *   waiting for it (the writer's deadline is measured from Redis's clock at publish, the member's from
 *   before its renewal was sent).
 * - A load that raced an invalidation is not stored (`epoch`), and losing the subscription drops everything.
 */
@Injectable()
export class CacheCoherence implements OnModuleInit, OnApplicationShutdown {
  readonly member = randomUUID();
  private readonly log = new Logger(CacheCoherence.name);
  private readonly listeners: InvalidationListener[] = [];
  private readonly waits = new Map<string, Wait>();
  private readonly heartbeats = new Map<number, { sentAt: number; generation: number }>();
  private subscriber?: Redis;
  private durable?: Redis;
  private timer?: NodeJS.Timeout;
  private leaseUntil = 0;
  private subscribed = false;
  private generation = 0;
  private seq = 0;
  private changes = 0;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  private get channel(): string {
    return this.keys.key('cc', 'inv');
  }
  private get membersKey(): string {
    return this.keys.key('cc', 'members');
  }
  private ackChannel(member: string): string {
    return this.keys.key('cc', 'ack', member);
  }

  /** Changes with every invalidation and every lost lease: compare before and after a load to know whether it may be kept. */
  get epoch(): number {
    return this.changes;
  }

  /** True while this process may answer from its local caches (it holds a lease; see the class comment). */
  live(): boolean {
    if (performance.now() < this.leaseUntil) return true;
    if (this.leaseUntil !== 0) this.lapse();
    return false;
  }

  /** True when a value loaded since `epoch` was read may be cached. */
  mayStore(epoch: number): boolean {
    return this.live() && epoch === this.changes;
  }

  onInvalidate(listener: InvalidationListener): void {
    this.listeners.push(listener);
  }

  onModuleInit(): void {
    const sub = this.redis.duplicate({ autoResubscribe: false, lazyConnect: true, enableAutoPipelining: false, enableOfflineQueue: true });
    this.subscriber = sub;
    sub.on('error', () => {}); // reconnects by itself; meanwhile the lease lapses and caches are bypassed
    sub.on('ready', () => {
      sub.subscribe(this.channel, this.ackChannel(this.member)).then(
        () => {
          this.subscribed = true;
          if (this.timer) this.renew();
        },
        () => sub.disconnect(true),
      );
    });
    sub.on('close', () => {
      this.subscribed = false;
      this.generation++;
      this.lapse();
    });
    sub.on('message', (channel: string, message: string) => (channel === this.channel ? this.received(message) : this.acked(message)));
    sub.connect().catch(() => undefined);
  }

  /**
   * Makes this process a member: it renews a lease and may then answer from its local caches. Only for
   * processes that serve from them (the API). Others (the worker) still publish and collect
   * acknowledgements, and no writer waits for them: a worker busy sealing the audit chain would
   * otherwise hold up every revoke.
   */
  join(): void {
    if (this.config.cacheLeaseMs <= 0 || this.timer) return;
    this.timer = setInterval(() => this.renew(), Math.max(10, Math.floor(this.config.cacheLeaseMs / 4)));
    this.timer.unref();
    this.renew();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    this.leaseUntil = 0;
    // Writers stop waiting for this process at once instead of at the end of its lease.
    await this.redis.zrem(this.membersKey, this.member).catch(() => undefined);
    this.subscriber?.disconnect();
    this.durable?.disconnect();
    for (const w of this.waits.values()) w.done();
  }

  /**
   * A connection of its own for tombstones that wait for replicas: WAIT blocks the connection it runs
   * on, and on the shared one every request's commands would queue behind it.
   */
  private durableConnection(): Redis {
    if (!this.durable) {
      // Queues while (re)connecting, bounded by the command timeout: a revoke fails rather than hangs.
      this.durable = this.redis.duplicate({ enableAutoPipelining: false, enableOfflineQueue: true, lazyConnect: false, commandTimeout: this.config.redisWaitTimeoutMs + 2000 });
      this.durable.on('error', () => {}); // surfaced by the failing write, which fails closed
    }
    return this.durable;
  }

  /**
   * Drops `change` here, then in every process holding a lease, and resolves once each has done so (or
   * its lease ran out). Throws when Redis cannot be reached: the caller must not report the change done.
   * `tombstones` queues the writes that make the change visible in Redis; they run before the invalidation
   * is published, in the same round trip (worth several milliseconds per revoke on a busy event loop),
   * and with REDIS_WAIT_REPLICAS they must reach that many replicas first, so a failover cannot lose them.
   */
  async publish(change: Invalidation, tombstones?: (pipe: ChainableCommander) => void): Promise<void> {
    this.apply(change);
    const id = randomUUID();
    // Registered before publishing: an acknowledgement can be read before the reply to the publish itself.
    const wait: Wait = { early: new Set(), done: () => {} };
    this.waits.set(id, wait);
    // With replicas to wait for, the tombstones must be on a replica before anyone is told (Redis WAIT).
    const replicas = tombstones ? this.config.redisWaitReplicas : 0;
    let reply: [number, string[]];
    let arrived: number;
    try {
      const pipe = (replicas ? this.durableConnection() : this.redis).pipeline();
      tombstones?.(pipe);
      if (replicas) pipe.wait(replicas, this.config.redisWaitTimeoutMs);
      pipe.eval(PUBLISH, 1, this.membersKey, this.channel, JSON.stringify({ id, from: this.member, ...change }));
      const results = await pipe.exec();
      arrived = performance.now();
      const failed = results?.find(([err]) => err);
      if (!results || failed) throw failed?.[0] ?? new Error('the invalidation could not be published');
      if (replicas && (results[results.length - 2][1] as number) < replicas) {
        throw new Error(`the tombstones reached fewer than ${replicas} Redis replica(s) within ${this.config.redisWaitTimeoutMs} ms`);
      }
      reply = results[results.length - 1][1] as [number, string[]];
    } catch (err) {
      this.waits.delete(id);
      throw err;
    }
    const [now, live] = reply;
    const members = new Set<string>();
    let longest = 0;
    for (let i = 0; i < live.length; i += 2) {
      if (live[i] === this.member || wait.early.has(live[i])) continue;
      members.add(live[i]);
      longest = Math.max(longest, Number(live[i + 1]) - Number(now));
    }
    if (!members.size) {
      this.waits.delete(id);
      return;
    }
    await new Promise<void>((resolve) => {
      // No acknowledgement needed past the last lease: by then every silent member has stopped serving from memory.
      const timer = setTimeout(() => {
        this.log.warn(`invalidation not acknowledged by ${[...members].join(', ')}; waited out their lease (${Math.ceil(longest)} ms)`);
        wait.done();
      }, Math.max(0, longest + 1 - (performance.now() - arrived)));
      wait.members = members;
      wait.done = () => {
        clearTimeout(timer);
        this.waits.delete(id);
        resolve();
      };
    });
  }

  private received(message: string): void {
    let change: Invalidation & { id: string; from: string };
    try {
      change = JSON.parse(message) as typeof change;
    } catch {
      return;
    }
    if (change.from === this.member) return; // applied before publishing
    this.apply(change);
    this.redis.publish(this.ackChannel(change.from), `${change.id}|${this.member}`).catch(() => undefined);
  }

  private acked(message: string): void {
    const [id, member] = message.split('|');
    if (id === 'hb') return this.heartbeatBack(Number(member));
    const wait = this.waits.get(id);
    if (!wait) return;
    if (!wait.members) return void wait.early.add(member); // the publish's own reply is still on its way
    wait.members.delete(member);
    if (!wait.members.size) wait.done();
  }

  private renew(): void {
    if (!this.subscribed || !this.timer) return;
    const seq = ++this.seq;
    // Heartbeats that never came back (a silent connection) must not pile up.
    if (this.heartbeats.size >= 64) this.heartbeats.delete(this.heartbeats.keys().next().value as number);
    this.heartbeats.set(seq, { sentAt: performance.now(), generation: this.generation });
    this.redis
      .eval(HEARTBEAT, 1, this.membersKey, this.member, this.config.cacheLeaseMs, this.ackChannel(this.member), `hb|${seq}`)
      .catch((err: Error) => {
        this.heartbeats.delete(seq);
        if (this.live()) this.log.warn(`could not renew the cache lease: ${err.message}`);
      });
  }

  private heartbeatBack(seq: number): void {
    const beat = this.heartbeats.get(seq);
    for (const s of this.heartbeats.keys()) if (s <= seq) this.heartbeats.delete(s);
    if (!beat || beat.generation !== this.generation || !this.subscribed) return;
    // A margin for clock-rate differences between this process and Redis.
    const lease = this.config.cacheLeaseMs;
    this.leaseUntil = Math.max(this.leaseUntil, beat.sentAt + lease - Math.min(100, lease / 5));
  }

  private apply(change: Invalidation | 'all'): void {
    this.changes++;
    for (const l of this.listeners) l(change);
  }

  private lapse(): void {
    this.leaseUntil = 0;
    this.apply('all');
  }
}

/** A publish waiting for acknowledgements; `members` is known once Redis answered the publish. */
interface Wait {
  members?: Set<string>;
  /** Members that acknowledged before the publish's reply was read. */
  early: Set<string>;
  done: () => void;
}

/** KEYS[1] members; ARGV: channel, message. Removes lapsed members, returns [now ms, live members with their lease ends], publishes. */
const PUBLISH = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf', 'WITHSCORES')
redis.call('PUBLISH', ARGV[1], ARGV[2])
return {now, live}`;

/** KEYS[1] members; ARGV: member, lease ms, the member's channel, heartbeat message. */
const HEARTBEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return now`;
