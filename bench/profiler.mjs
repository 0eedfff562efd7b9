// Preloaded (`--import ./bench/profiler.mjs`) into the API when the harness runs with --profile.
// Each SIGWINCH (ignored by default and not one of Nest's shutdown signals) toggles the V8 CPU profiler, so a profile covers exactly one measured run (not boot,
// seeding or warm-up); the profile is written to $BENCH_PROFILE_DIR/<n>-<label>.cpuprofile, where the
// label is read from $BENCH_PROFILE_DIR/next-label, and then `<file>.done` marks it complete.
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.BENCH_PROFILE_DIR;
const session = new Session();
session.connect();
const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
let running = false;
let n = 0;

process.on('SIGWINCH', async () => {
  if (!running) {
    running = true;
    await post('Profiler.enable');
    await post('Profiler.setSamplingInterval', { interval: 200 });
    await post('Profiler.start');
    return;
  }
  running = false;
  const { profile } = await post('Profiler.stop');
  let label = 'run';
  try {
    label = readFileSync(join(dir, 'next-label'), 'utf8').trim() || label;
  } catch {}
  const file = join(dir, `${String(++n).padStart(2, '0')}-${label}.cpuprofile`);
  writeFileSync(file, JSON.stringify(profile));
  writeFileSync(`${file}.done`, '');
});
