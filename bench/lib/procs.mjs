// Child processes for the benchmark: the API under test, the peer, and the load generator.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = new URL('../../', import.meta.url).pathname;

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** CPU time (user + system) a process has used so far, in ms (Linux /proc; null elsewhere). */
export function cpuTimeMs(pid, withReapedChildren = false) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime + stime (+ cutime + cstime), in USER_HZ (100)
    const ticks = Number(fields[11]) + Number(fields[12]) + (withReapedChildren ? Number(fields[13]) + Number(fields[14]) : 0);
    return (ticks * 1000) / 100;
  } catch {
    return null;
  }
}

/**
 * CPU time (ms) used so far by every process whose command name is `comm` (e.g. all Postgres backends),
 * or null off Linux. Includes the children they reaped: a backend or autovacuum worker that exits during
 * a run moves its time to the postmaster's, instead of taking it out of the total (negative CPU).
 */
export function cpuTimeOfCommandMs(comm) {
  try {
    let total = 0;
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm) total += cpuTimeMs(pid, true) ?? 0;
      } catch {
        // exited meanwhile
      }
    }
    return total;
  } catch {
    return null;
  }
}

/** Waits for a child process to exit; resolves with its exit code (or signal name). */
const exited = (child) => new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));

/** SIGTERM (a graceful shutdown), then SIGKILL if the process is still there after 15 s. */
async function stopChild(child, done) {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await done;
  clearTimeout(timer);
}

function collect(child, tail = 8_000) {
  let err = '';
  child.stderr?.on('data', (d) => {
    err = (err + d).slice(-tail);
  });
  return () => err;
}

/**
 * The built API (`dist/apps/api/src/main.js`) with production settings. With `profileDir`, bench/profiler.mjs
 * is preloaded and `profiled(label, fn)` records a CPU profile of exactly what `fn` drives.
 */
export async function startApi({ env, profileDir, label = 'api' }) {
  const port = await freePort();
  const args = [];
  if (profileDir) {
    mkdirSync(profileDir, { recursive: true });
    args.push('--import', './bench/profiler.mjs');
  }
  args.push('dist/apps/api/src/main.js');
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, NODE_ENV: 'production', LOG_LEVEL: 'warn', HOST: '127.0.0.1', PORT: String(port), ...(profileDir ? { BENCH_PROFILE_DIR: profileDir } : {}), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr = collect(child);
  child.stdout.on('data', () => {}); // warn-level logs go to stdout; drain them
  const url = `http://127.0.0.1:${port}`;
  const done = exited(child);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const exitedEarly = await Promise.race([done.then((c) => ({ c })), new Promise((r) => setTimeout(r, 200))]);
    if (exitedEarly) throw new Error(`${label} exited (${exitedEarly.c}) before it was ready:\n${stderr()}`);
    const res = await fetch(`${url}/readyz`).catch(() => null);
    if (res?.status === 200) break;
    if (Date.now() > deadline) throw new Error(`${label} not ready after 120 s:\n${stderr()}`);
  }
  let profiles = 0;
  return {
    url,
    pid: child.pid,
    stderr,
    cpu: () => cpuTimeMs(child.pid),
    /** Runs `fn` with the CPU profiler on (when profiling); the profile lands in `profileDir`. */
    async profiled(name, fn) {
      if (!profileDir) return fn();
      writeFileSync(join(profileDir, 'next-label'), name);
      child.kill('SIGWINCH');
      try {
        return await fn();
      } finally {
        child.kill('SIGWINCH');
        const file = join(profileDir, `${String(++profiles).padStart(2, '0')}-${name}.cpuprofile`);
        for (let i = 0; i < 300 && !existsSync(`${file}.done`); i++) await new Promise((r) => setTimeout(r, 100));
        if (existsSync(`${file}.done`)) unlinkSync(`${file}.done`);
        unlinkSync(join(profileDir, 'next-label'));
      }
    },
    stop: () => stopChild(child, done),
  };
}

/** The built worker (`dist/apps/worker/src/main.js`): drains the queues the API fills (the audit trail). */
export function startWorker({ env }) {
  const child = spawn(process.execPath, ['dist/apps/worker/src/main.js'], {
    cwd: ROOT,
    env: { ...process.env, NODE_ENV: 'production', LOG_LEVEL: 'warn', WORKER_HEALTH_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr = collect(child);
  child.stdout.on('data', () => {});
  const done = exited(child);
  return {
    pid: child.pid,
    stderr,
    alive: () => child.exitCode === null && child.signalCode === null,
    cpu: () => cpuTimeMs(child.pid),
    stop: () => stopChild(child, done),
  };
}

/** The oidc-provider peer (bench/peer/server.mjs), or another server script speaking the same startup line. */
export async function startPeer(script = 'bench/peer/server.mjs', env = {}) {
  const child = spawn(process.execPath, [script], {
    cwd: ROOT,
    env: { ...process.env, NODE_ENV: 'production', PEER_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr = collect(child);
  const url = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line).url);
    });
    child.once('exit', (code) => reject(new Error(`peer exited (${code}):\n${stderr()}`)));
  });
  const done = exited(child);
  return {
    url,
    stderr,
    cpu: () => cpuTimeMs(child.pid),
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await done;
    },
  };
}

const specDir = mkdtempSync(join(tmpdir(), 'procura-bench-'));
/** The load specs hold live tokens: remove them when the run is over. */
export const removeLoadSpecs = () => rmSync(specDir, { recursive: true, force: true });
let specN = 0;

/** Runs bench/load.mjs (autocannon) in its own process; resolves with its JSON summary. */
export async function runLoad(spec) {
  const file = join(specDir, `spec-${specN++}.json`);
  writeFileSync(file, JSON.stringify(spec));
  const child = spawn(process.execPath, ['bench/load.mjs', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr = collect(child);
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  const code = await exited(child);
  if (code !== 0) throw new Error(`load generator failed (${code}):\n${stderr()}`);
  return JSON.parse(out.trim().split('\n').pop());
}
