import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './app.js';
import { until } from './poll.js';

/**
 * A real Redis primary, one replica and one Sentinel on free loopback ports, run from the machine's
 * `redis-server` (the same Debian package the project needs anyway). Nothing is kept on disk.
 */
export class SentinelTopology {
  private constructor(
    readonly name: string,
    readonly ports: { primary: number; replica: number; sentinel: number },
    private readonly procs: { primary: ChildProcess; replica: ChildProcess; sentinel?: ChildProcess },
    private readonly dir: string,
  ) {}

  static async start(name = 'procura-test'): Promise<SentinelTopology> {
    const dir = mkdtempSync(join(tmpdir(), 'procura-sentinel-'));
    const ports = { primary: await freePort(), replica: await freePort(), sentinel: await freePort() };
    const base = (port: number) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
    const primary = spawn('redis-server', base(ports.primary), { stdio: 'ignore' });
    const replica = spawn('redis-server', [...base(ports.replica), '--replicaof', '127.0.0.1', String(ports.primary)], { stdio: 'ignore' });
    const conf = join(dir, 'sentinel.conf');
    // Sentinel rewrites its own file, so it gets one in the scratch directory.
    writeFileSync(
      conf,
      [
        `port ${ports.sentinel}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${name} 127.0.0.1 ${ports.primary} 1`,
        `sentinel down-after-milliseconds ${name} 400`,
        `sentinel failover-timeout ${name} 2000`,
        '',
      ].join('\n'),
    );
    const procs: { primary: ChildProcess; replica: ChildProcess; sentinel?: ChildProcess } = { primary, replica };
    const t = new SentinelTopology(name, ports, procs, dir);
    await until(async () => (await t.info(ports.replica, 'replication')).includes('master_link_status:up'), 'the replica to sync');
    // The sentinel learns of replicas from the primary's INFO (every 10 s): started after the replica
    // synced, its first look finds it. Until it knows a replica, a failover has no candidate.
    procs.sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
    await until(async () => (await t.sentinelMaster())?.port === ports.primary, 'the sentinel to know the primary');
    await until(() => t.sentinelKnowsReplica(), 'the sentinel to know the replica', 20_000, 100);
    return t;
  }

  /** The `REDIS_SENTINELS` / `REDIS_SENTINEL_NAME` an app needs. */
  get env(): Record<string, string> {
    return { REDIS_SENTINELS: `127.0.0.1:${this.ports.sentinel}`, REDIS_SENTINEL_NAME: this.name };
  }

  client(port: number): Redis {
    const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => {}); // a server still starting refuses; the command's rejection says so
    return c;
  }

  /** The primary the sentinel currently names. */
  async sentinelMaster(): Promise<{ host: string; port: number } | undefined> {
    const c = this.client(this.ports.sentinel);
    try {
      const [host, port] = (await c.call('SENTINEL', 'get-master-addr-by-name', this.name)) as [string, string];
      return { host, port: Number(port) };
    } catch {
      return undefined;
    } finally {
      c.disconnect();
    }
  }

  /** True once the sentinel lists the replica as a healthy failover candidate. */
  async sentinelKnowsReplica(): Promise<boolean> {
    const c = this.client(this.ports.sentinel);
    try {
      const replicas = (await c.call('SENTINEL', 'replicas', this.name)) as string[][];
      return replicas.some((fields) => {
        const r = Object.fromEntries(fields.flatMap((v, i) => (i % 2 ? [] : [[v, fields[i + 1]]])));
        return Number(r.port) === this.ports.replica && r.flags === 'slave' && r['master-link-status'] === 'ok';
      });
    } catch {
      return false;
    } finally {
      c.disconnect();
    }
  }

  async info(port: number, section: string): Promise<string> {
    const c = this.client(port);
    try {
      return await c.info(section);
    } finally {
      c.disconnect();
    }
  }

  /** The primary dies; the sentinel promotes the replica. */
  killPrimary(): void {
    this.procs.primary.kill('SIGKILL');
  }

  /** The replica stops answering (acknowledging nothing) until `resumeReplica`. */
  pauseReplica(): void {
    this.procs.replica.kill('SIGSTOP');
  }

  resumeReplica(): void {
    this.procs.replica.kill('SIGCONT');
  }

  async close(): Promise<void> {
    const procs = Object.values(this.procs).filter((p): p is ChildProcess => Boolean(p));
    for (const p of procs) {
      p.kill('SIGCONT');
      p.kill('SIGKILL');
    }
    await Promise.all(procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? undefined : new Promise((r) => p.once('exit', r)))));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
