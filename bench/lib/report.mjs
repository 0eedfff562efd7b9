// The results table printed at the end of a run.

const fmt = (v, digits = 0) => (v === null || v === undefined || Number.isNaN(v) ? '-' : typeof v === 'number' ? v.toFixed(digits) : String(v));

export function table(rows) {
  const header = ['scenario', 'system', 'conns', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'server CPU ms/req', 'worker CPU ms/req', 'Postgres CPU ms/req', 'Redis CPU ms/req', 'load gen CPU ms/req', 'Procura / peer'];
  const body = rows.map((r) => [r.scenario, r.system, fmt(r.connections), fmt(r.rps), fmt(r.p50, 1), fmt(r.p99, 1), fmt(r.errors), fmt(r.cpuPerRequestMs, 3), fmt(r.workerCpuPerRequestMs, 3), fmt(r.postgresCpuPerRequestMs, 3), fmt(r.redisCpuPerRequestMs, 3), fmt(r.loadGeneratorCpuPerRequestMs, 3), r.ratio === undefined ? '' : `${fmt(r.ratio, 2)}x`]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`;
  return [line(header), `|${widths.map((w, i) => (i >= 2 ? `${'-'.repeat(w + 1)}:` : `:${'-'.repeat(w + 1)}`)).join('|')}|`, ...body.map(line)].join('\n');
}

/** One table row from a load-generator summary. */
export function row(scenario, system, load, connections, extra = {}) {
  return {
    scenario,
    system,
    connections,
    rps: load.rpsFromTotal,
    p50: load.latencyMs.p50,
    p99: load.latencyMs.p99,
    errors: load.non2xx + load.errors + load.timeouts,
    cpuPerRequestMs: load.serverCpu?.perRequestMs,
    workerCpuPerRequestMs: load.workerCpu?.perRequestMs,
    postgresCpuPerRequestMs: load.postgresCpu?.perRequestMs,
    redisCpuPerRequestMs: load.redisCpu?.perRequestMs,
    loadGeneratorCpuPerRequestMs: load.loadGeneratorCpu?.perRequestMs,
    ...extra,
  };
}
