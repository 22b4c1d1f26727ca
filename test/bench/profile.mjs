#!/usr/bin/env node
/**
 * A CPU profile of puttu under the benchmark's 50-connection small-response load: puttu runs with
 * `node --cpu-prof`, wrk loads it, puttu is stopped (the profile is written at exit) and the top
 * self-time functions are printed (cpuprofile-summary.mjs).
 *
 *   node test/bench/profile.mjs
 *   PROFILE_SECONDS=10 PROFILE_TOP=15 PROFILE_OUT=/tmp/puttu.cpuprofile
 *   PROFILE_PATH=/echo/large (a 256 KiB response; /echo/huge: 4 MiB; default /echo/small)
 *   PROFILE_SCRIPT=test/bench/post-64k.lua PROFILE_PATH=/echo/upload (64 KiB uploads)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { preflight } from './lib/preflight.mjs';

preflight({ tools: ['wrk'] });
const { installGuards, onCleanup, runMain } = await import('./lib/processes.mjs');
const { runWrk } = await import('./lib/wrk.mjs');
const { cpuSeconds, schedstat, syscallCounts } = await import('./lib/cpu.mjs');
const { renderSummary, summarise } = await import('./cpuprofile-summary.mjs');
const stack = await import('./lib/stack.mjs');

const SECONDS = Number(process.env.PROFILE_SECONDS ?? 10);
const TOP = Number(process.env.PROFILE_TOP ?? 15);
const THREADS = Number(process.env.BENCH_WRK_THREADS ?? 2);
const PATH = process.env.PROFILE_PATH ?? '/echo/small';
const SCRIPT = process.env.PROFILE_SCRIPT ? path.resolve(process.env.PROFILE_SCRIPT) : undefined;
const log = (line) => process.stderr.write(`${line}\n`);

installGuards({ timeBoundMs: (120 + SECONDS + 5) * 1_000, label: 'profile' });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-profile-'));
onCleanup('temp folder', () => fs.rmSync(dir, { recursive: true, force: true }));

async function main() {
  const zk = await stack.startZk();
  const fast = await Promise.all([stack.startBackend({ dir, name: 'a' }), stack.startBackend({ dir, name: 'b' })]);
  await stack.registerBackends(zk.connectString, { echo: fast });
  const profDir = path.join(dir, 'profile');
  const puttu = await stack.startPuttu({
    dir,
    zk: zk.connectString,
    expect: { echo: 2 },
    nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profDir],
  });
  const url = `http://127.0.0.1:${puttu.port}${PATH}`;
  await runWrk({ url, connections: 50, threads: THREADS, seconds: 2, script: SCRIPT, logFile: path.join(dir, 'warmup.log') });
  const pid = puttu.proc.pid;
  const before = { at: performance.now(), cpu: cpuSeconds([pid]), sched: schedstat(pid), io: syscallCounts(pid) };
  const result = await runWrk({
    url,
    connections: 50,
    threads: THREADS,
    seconds: SECONDS,
    script: SCRIPT,
    logFile: path.join(dir, 'wrk.log'),
  });
  const after = { at: performance.now(), cpu: cpuSeconds([pid]), sched: schedstat(pid), io: syscallCounts(pid) };
  const wallS = (after.at - before.at) / 1_000;
  const perRequest = (key) => ((after.io[key] - before.io[key]) / result.requests).toFixed(2);
  const usage = [
    `puttu during the measured load: CPU ${Math.round((100 * (after.cpu.total - before.cpu.total)) / wallS)}% of a core (all threads), of which in the kernel ${Math.round((100 * (after.cpu.sys - before.cpu.sys)) / wallS)}%;`,
    `main thread on a CPU ${Math.round((after.sched.runNs - before.sched.runNs) / 1e7 / wallS)}% of the time, runnable but waiting for a CPU ${Math.round((after.sched.waitNs - before.sched.waitNs) / 1e7 / wallS)}%;`,
    `system calls per proxied request: ${perRequest('reads')} reads, ${perRequest('writes')} writes (/proc/<pid>/io)`,
  ].join('\n');
  log(`under the profiler: ${Math.round(result.rps)} req/s, p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms`);
  const { code, signal } = await puttu.proc.stop({ graceMs: 15_000 });
  const file = fs.existsSync(profDir) ? fs.readdirSync(profDir).find((f) => f.endsWith('.cpuprofile')) : undefined;
  if (!file) throw new Error(`puttu wrote no profile (exit ${code ?? signal}): ${puttu.proc.logTail()}`);
  const profilePath = path.join(profDir, file);
  if (process.env.PROFILE_OUT) fs.copyFileSync(profilePath, process.env.PROFILE_OUT);
  const summary = summarise(JSON.parse(fs.readFileSync(profilePath, 'utf8')));
  process.stdout.write(
    `\nputtu under wrk -t${THREADS} -c50 ${PATH} for ${SECONDS} s (after a 2 s warm-up; the profile covers the whole process lifetime)\n` +
      `${Math.round(result.rps)} req/s under the profiler\n${usage}\n\n${renderSummary(summary, TOP)}\n`,
  );
}

await runMain(main, 'profile', log);
