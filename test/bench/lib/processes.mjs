/**
 * The processes this benchmark starts, and nothing else. Each is tracked by PID and stopped by PID
 * (SIGTERM, then SIGKILL after a grace period); cleanups run in reverse order of start, once, on
 * success, on error, on Ctrl-C and when the run's time bound is exceeded. No process is ever
 * looked up or killed by name.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** @type {Array<{ name: string, fn: () => unknown }>} */
const cleanups = [];
/** Live children, for the last-resort synchronous kill in the 'exit' handler. */
const live = new Set();
let cleaning;

/** True once cleanup began: a run failing from then on is a consequence, not news. */
export function cleaningUp() {
  return cleaning !== undefined;
}

/** Registers `fn` to run at cleanup (last registered runs first). */
export function onCleanup(name, fn) {
  cleanups.push({ name, fn });
}

/**
 * Starts `command` with its output appended to `logFile` (no pipes: a busy proxy never waits on
 * us reading its log). Resolves nothing; `exited` settles when it ends.
 */
export function spawnTracked(name, command, args, { logFile, env = {}, cwd } = {}) {
  const fd = logFile ? fs.openSync(logFile, 'a') : 'ignore';
  const child = spawn(command, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...env }, cwd });
  if (typeof fd === 'number') fs.closeSync(fd);
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
  });
  const proc = {
    name,
    child,
    pid: child.pid,
    logFile,
    exited,
    alive: () => child.pid !== undefined && child.exitCode === null && child.signalCode === null,
    stop: (options) => stopProcess(proc, options),
    logTail: (bytes = 2_000) => tail(logFile, bytes),
  };
  if (child.pid !== undefined) live.add(proc);
  exited.then(() => live.delete(proc));
  onCleanup(name, () => proc.stop());
  return proc;
}

/** SIGTERM (or `signal`), SIGKILL after `graceMs`; resolves once it has exited. Idempotent. */
export async function stopProcess(proc, { signal = 'SIGTERM', graceMs = 5_000 } = {}) {
  if (!proc.alive()) return proc.exited;
  proc.child.kill(signal);
  const outcome = await Promise.race([proc.exited, sleep(graceMs).then(() => undefined)]);
  if (outcome) return outcome;
  if (proc.alive()) proc.child.kill('SIGKILL');
  return proc.exited;
}

/**
 * A process we caused but did not spawn (an nginx worker, child of our nginx master). Returns a
 * kill that hits that PID only if it still names the same process (same start time), so a reused
 * PID is never hit.
 */
export function adoptPid(pid) {
  const started = startTimeOf(pid);
  return () => {
    if (started === undefined || startTimeOf(pid) !== started) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
}

/** Field 22 of /proc/<pid>/stat: start time in clock ticks since boot. */
function startTimeOf(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Runs every cleanup once, each bounded in time; later calls get the same promise. */
export function runCleanup() {
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const { name, fn } = cleanups.pop();
      try {
        await Promise.race([Promise.resolve().then(fn), sleep(15_000).then(() => Promise.reject(new Error('timed out')))]);
      } catch (error) {
        process.stderr.write(`cleanup of ${name} failed: ${error?.message ?? error}\n`);
      }
    }
  })();
  return cleaning;
}

/**
 * Cleans up on Ctrl-C, SIGTERM, an uncaught error, and when `timeBoundMs` passes; and, as a last
 * resort, SIGKILLs any child still alive when this process exits.
 */
export function installGuards({ timeBoundMs, label }) {
  const abort = async (message, code) => {
    process.stderr.write(`\n${label}: ${message}; stopping the processes it started\n`);
    await runCleanup();
    process.exit(code);
  };
  process.once('SIGINT', () => abort('interrupted', 130));
  process.once('SIGTERM', () => abort('terminated', 143));
  process.on('uncaughtException', (error) => abort(`error: ${error?.stack ?? error}`, 1));
  process.on('unhandledRejection', (error) => abort(`error: ${error?.stack ?? error}`, 1));
  const timer = setTimeout(() => abort(`time bound of ${Math.round(timeBoundMs / 1000)} s exceeded`, 1), timeBoundMs);
  timer.unref();
  process.once('exit', () => {
    for (const proc of live) if (proc.alive()) proc.child.kill('SIGKILL');
  });
}

function tail(file, bytes) {
  if (!file) return '';
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.slice(-bytes);
  } catch {
    return '';
  }
}

/**
 * Runs a script's main(), then cleans up and exits: 0 on success, 1 on failure (logged with
 * `label`). While a signal or the time bound is already cleaning up, waits for it to exit.
 */
export async function runMain(main, label, log) {
  try {
    await main();
    await runCleanup();
    process.exit(0);
  } catch (error) {
    if (cleaningUp()) await new Promise(() => undefined); // the signal or time-bound handler exits
    log(`${label} failed: ${error?.stack ?? error}`);
    await runCleanup();
    process.exit(1);
  }
}
