#!/usr/bin/env node
/**
 * 256 KiB responses through a fresh puttu process per trial (wrk -t1 -c50 /echo/large): per
 * response its minor page faults, CPU time and the trial's req/s and peak RSS. Large-body
 * throughput differs from one puttu process to the next; this shows whether a process's page
 * faults (memory the allocator gave back to the system and touches again) go with it. Run it
 * with and without an allocator setting to compare, e.g.:
 *
 *   node test/bench/faults-large.mjs 6 4
 *   MALLOC_TRIM_THRESHOLD_=67108864 node test/bench/faults-large.mjs 6 4
 *
 * Arguments: trials (6), seconds per trial (4), then extra `puttu proxy` flags. PERF=1 also
 * records each trial with `perf record -g` into perf-<trial>.data in the current folder.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { preflight } from './lib/preflight.mjs';

preflight({ tools: ['wrk'] });
const { installGuards, onCleanup, runMain } = await import('./lib/processes.mjs');
const { runWrk } = await import('./lib/wrk.mjs');
const { cpuSeconds } = await import('./lib/cpu.mjs');
const stack = await import('./lib/stack.mjs');

const TRIALS = Number(process.argv[2] ?? 6);
const SECONDS = Number(process.argv[3] ?? 4);
const flags = process.argv.slice(4);
installGuards({ timeBoundMs: (60 + TRIALS * (SECONDS + 15)) * 1_000, label: 'faults-large' });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-faults-'));
onCleanup('temp folder', () => fs.rmSync(dir, { recursive: true, force: true }));

/** Minor page faults of a process so far (/proc/<pid>/stat, field 10). */
const minorFaults = (pid) => Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[7]);
const statusKiB = (pid, field) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

async function main() {
  const zk = await stack.startZk();
  const backends = await Promise.all([stack.startBackend({ dir, name: 'a' }), stack.startBackend({ dir, name: 'b' })]);
  await stack.registerBackends(zk.connectString, { echo: backends });
  console.log(
    `MALLOC_TRIM_THRESHOLD_=${process.env.MALLOC_TRIM_THRESHOLD_ ?? '(unset)'}, ${TRIALS} trials × ${SECONDS} s, wrk -t1 -c50 /echo/large`,
  );
  for (let i = 0; i < TRIALS; i++) {
    const p = await stack.startPuttu({ dir, zk: zk.connectString, name: `puttu${i}`, expect: { echo: 2 }, flags });
    const url = `http://127.0.0.1:${p.port}/echo/large`;
    await runWrk({ url, connections: 50, threads: 1, seconds: 2, logFile: path.join(dir, `warmup-${i}.log`) });
    const pid = p.proc.pid;
    const cpu0 = cpuSeconds([pid]);
    const faults0 = minorFaults(pid);
    const perf = process.env.PERF
      ? spawn('perf', ['record', '-F', '999', '-g', '-p', String(pid), '-o', `perf-${i}.data`, '--', 'sleep', String(SECONDS - 1)], {
          stdio: 'ignore',
        })
      : undefined;
    const r = await runWrk({ url, connections: 50, threads: 1, seconds: SECONDS, logFile: path.join(dir, `run-${i}.log`) });
    const cpu1 = cpuSeconds([pid]);
    if (perf) await new Promise((resolve) => perf.on('exit', resolve));
    const perResponse = (x) => ((x * 1e6) / r.requests).toFixed(0);
    console.log(
      `trial ${i}: ${Math.round(r.rps)} req/s, ${((minorFaults(pid) - faults0) / r.requests).toFixed(1)} minor faults/response, ` +
        `CPU ${perResponse(cpu1.total - cpu0.total)} µs/response (kernel ${perResponse(cpu1.sys - cpu0.sys)}), ` +
        `peak RSS ${(statusKiB(pid, 'VmHWM') / 1024).toFixed(0)} MiB`,
    );
    await p.proc.stop({ graceMs: 5_000 });
  }
}

await runMain(main, 'faults-large', (line) => process.stderr.write(`${line}\n`));
