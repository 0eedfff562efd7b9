#!/usr/bin/env node
// The load generator, always run as its own process so it never shares an event loop with the
// server under test:  node bench/load.mjs <spec.json>  ->  one JSON summary on stdout.
//
// spec: {
//   url, connections, duration (s) | amount, overallRate?, timeout? (s),
//   method, path, headers,
//   requests?: [{ path?, headers?, body? }]   cycled round-robin across all connections
//   count?: [regex source, ...]                 count responses whose body matches each (e.g. '"active":true')
// }
import autocannon from 'autocannon';
import { readFileSync } from 'node:fs';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const variants = spec.requests ?? [];
let next = 0;
const patterns = (spec.count ?? []).map((s) => new RegExp(s));
const counts = patterns.map(() => 0);
let bodies = 0;

const request = {
  method: spec.method ?? 'GET',
  path: spec.path ?? '/',
  headers: spec.headers ?? {},
  ...(variants.length
    ? {
        setupRequest: (req) => {
          const v = variants[next++ % variants.length];
          return { ...req, path: v.path ?? req.path, headers: { ...req.headers, ...v.headers }, body: v.body ?? req.body };
        },
      }
    : { body: spec.body }),
  ...(patterns.length
    ? {
        onResponse: (_status, body) => {
          bodies++;
          for (let i = 0; i < patterns.length; i++) if (patterns[i].test(body)) counts[i]++;
        },
      }
    : {}),
};

const cpuAtStart = process.cpuUsage();
const result = await autocannon({
  url: spec.url,
  connections: spec.connections,
  ...(spec.amount ? { amount: spec.amount } : { duration: spec.duration }),
  ...(spec.overallRate ? { overallRate: spec.overallRate } : {}),
  timeout: spec.timeout ?? 10,
  requests: [request],
});

const s = result.statusCodeStats ?? {};
process.stdout.write(
  `${JSON.stringify({
    durationS: result.duration,
    total: result.requests.total,
    rps: result.requests.average,
    rpsFromTotal: result.duration ? result.requests.total / result.duration : 0,
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max, mean: result.latency.average },
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes: Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v.count])),
    // The load generator's own CPU for the run: on a shared 2-core machine it bounds what any server can reach.
    loadGeneratorCpuMs: (() => { const u = process.cpuUsage(cpuAtStart); return Math.round((u.user + u.system) / 1000); })(),
    ...(patterns.length ? { matched: Object.fromEntries(spec.count.map((p, i) => [p, counts[i]])), bodies } : {}),
  })}\n`,
);
