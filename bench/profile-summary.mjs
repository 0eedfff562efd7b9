#!/usr/bin/env node
// Summarizes a V8 .cpuprofile (from `npm run bench -- --profile`): where the process spent its CPU.
//   node bench/profile-summary.mjs <file.cpuprofile> [--top 30] [--focus <substring of a function or file>]
// Prints self time by package/area, self time by function, and inclusive time of the busiest
// project functions (what a request costs end to end through our code).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' }, focus: { type: 'string' } } });
const profile = JSON.parse(readFileSync(positionals[0], 'utf8'));
const TOP = Number(values.top);

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// Self time per node from samples and time deltas (microseconds).
const self = new Map();
let total = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  self.set(id, (self.get(id) ?? 0) + dt);
  total += dt;
});

const area = (url) => {
  if (!url) return '(native / V8)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1];
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const m = /\/dist\/(apps|libs)\/([^/]+)/.exec(url);
  if (m) return `procura ${m[1]}/${m[2]}`;
  return url.replace(/^file:\/\//, '');
};
const label = (n) => {
  const f = n.callFrame;
  const name = f.functionName || '(anonymous)';
  if (!f.url) return name;
  const file = f.url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '').replace(/^.*\/dist\//, 'dist/');
  return `${name}  ${file}:${f.lineNumber + 1}`;
};

let busy = total; // percentages are of the time the process was not idle
const pct = (us) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
const print = (title, map) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${pct(v)}  ${k}`);
};

const idle = [...self.entries()].filter(([id]) => ['(idle)', '(program)', '(garbage collector)'].includes(byId.get(id).callFrame.functionName));
const special = Object.fromEntries(idle.map(([id, us]) => [byId.get(id).callFrame.functionName, us]));
// The profiler's own start/stop work (bench/profiler.mjs) is not the server's: leave it out like idle time.
for (const [id] of self) {
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    if (byId.get(cur).callFrame.url.includes('bench/profiler.mjs')) {
      special['(idle)'] = (special['(idle)'] ?? 0) + self.get(id);
      self.set(id, 0);
      break;
    }
  }
}
const idleUs = special['(idle)'] ?? 0;
console.log(`profile: ${(total / 1e6).toFixed(1)} s sampled, idle ${((100 * idleUs) / total).toFixed(1)}%; below, % of the ${((total - idleUs) / 1e6).toFixed(1)} s busy`);
busy = total - idleUs;
self.forEach((_, id) => byId.get(id).callFrame.functionName === '(idle)' && self.delete(id));
console.log(`GC ${pct(special['(garbage collector)'] ?? 0)}, (program) ${pct(special['(program)'] ?? 0)}`);

const areas = new Map();
const fns = new Map();
for (const [id, us] of self) {
  const n = byId.get(id);
  const a = area(n.callFrame.url);
  areas.set(a, (areas.get(a) ?? 0) + us);
  const l = label(n);
  fns.set(l, (fns.get(l) ?? 0) + us);
}
print('self time by area', areas);
print('self time by function', fns);

// Inclusive time: each sample counts once for every distinct function on its stack.
const inclusive = new Map();
for (const [id, us] of self) {
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const n = byId.get(cur);
    const l = label(n);
    if (seen.has(l)) continue;
    seen.add(l);
    inclusive.set(l, (inclusive.get(l) ?? 0) + us);
  }
}
const ours = new Map([...inclusive].filter(([l]) => l.includes('dist/') && (!values.focus || l.includes(values.focus))));
print(`inclusive time, project functions${values.focus ? ` matching "${values.focus}"` : ''}`, ours);
if (values.focus) print(`inclusive time, all functions matching "${values.focus}"`, new Map([...inclusive].filter(([l]) => l.includes(values.focus))));
