#!/usr/bin/env node
// `npm start`: runs the built API and worker together; stops both when either stops or on Ctrl-C.
import { spawn } from 'node:child_process';

const children = ['dist/apps/api/src/main.js', 'dist/apps/worker/src/main.js'].map((entry) =>
  spawn(process.execPath, [entry], { stdio: 'inherit', env: process.env }),
);
let stopping = false;
const stop = (code) => {
  if (stopping) return;
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  process.exitCode = code;
};
for (const c of children) c.on('exit', (code) => stop(code ?? 1));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => stop(0));
