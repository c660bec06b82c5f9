#!/usr/bin/env node
// Runs an emulator (node_modules/.bin/<name> args...) for as long as the process that started this one lives: the
// test process starts emulators and may end without a chance to stop them (vstest ends its test host abruptly), so
// this watches its parent and stops the emulator when the parent is gone.
'use strict';
const { spawn } = require('child_process');
const path = require('path');

const [name, ...args] = process.argv.slice(2);
const parent = process.ppid;
const child = spawn(path.join(__dirname, 'node_modules', '.bin', name), args, { stdio: 'inherit' });
const stop = () => {
  child.kill('SIGTERM');
  setTimeout(() => child.kill('SIGKILL'), 3000).unref();
};
child.on('exit', code => process.exit(code === null ? 1 : code));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, stop);
setInterval(() => {
  let alive = process.ppid === parent;
  if (alive) {
    try {
      process.kill(parent, 0);
    } catch {
      alive = false;
    }
  }
  if (!alive) stop();
}, 1000);
