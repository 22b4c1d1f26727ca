/**
 * One measured wrk run against one proxy, with what happened around it: the proxy's peak RSS,
 * its CPU (and the kernel's part), its system calls per request, the share of requests the slow
 * instance got, and how much CPU other processes on the machine took meanwhile.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuSeconds, cpuSnapshot, foreignCores, syscallCounts } from './cpu.mjs';
import { startRssSampler, totalRssKiB } from './rss.mjs';
import { median } from './stats.mjs';
import { runWrk } from './wrk.mjs';

/** Read and write system calls of the proxy's processes so far (nginx's recv() is not counted). */
function syscalls(target) {
  return target
    .pids()
    .map(syscallCounts)
    .reduce((a, b) => ({ reads: a.reads + b.reads, writes: a.writes + b.writes }), { reads: 0, writes: 0 });
}

/** `slow`: the slow backend, whose served-requests counter is read before and after. */
export async function measure({ target, scenario, seconds, threads, logFile, slow }) {
  if (target.pids().length === 0) throw new Error(`${target.label} is not running: ${target.proc.logTail()}`);
  const sampler = startRssSampler(target.pids);
  const before = { machine: cpuSnapshot(), cpu: cpuSeconds(target.pids()), io: syscalls(target), slow: slow ? await slow.served() : 0 };
  let rss;
  const result = await runWrk({
    url: `http://127.0.0.1:${target.port}${scenario.path}`,
    connections: scenario.connections,
    threads,
    seconds,
    script: scenario.script,
    logFile,
  }).finally(() => {
    rss = sampler.stop();
  });
  const after = { machine: cpuSnapshot(), cpu: cpuSeconds(target.pids()), io: syscalls(target), slow: slow ? await slow.served() : 0 };
  const wallS = (after.machine.at - before.machine.at) / 1_000;
  await sleep(500); // let the last responses and closes drain before the next proxy's run
  return {
    rps: result.rps,
    p50: result.p50,
    p90: result.p90,
    p99: result.p99,
    errors: result.non2xx + result.socketErrors,
    peakKiB: rss.peakKiB,
    cores: (after.cpu.total - before.cpu.total) / wallS,
    sysCores: (after.cpu.sys - before.cpu.sys) / wallS,
    readsPerRequest: (after.io.reads - before.io.reads) / result.requests,
    writesPerRequest: (after.io.writes - before.io.writes) / result.requests,
    toSlow: slow ? (after.slow - before.slow) / result.requests : undefined,
    foreign: foreignCores(before.machine, after.machine),
  };
}

/** The progress line of one run. */
export function describeRun(run) {
  const parts = [
    `${Math.round(run.rps).toString().padStart(7)} req/s`,
    `p50 ${run.p50.toFixed(2)} ms`,
    `p99 ${run.p99.toFixed(2)} ms`,
    `RSS ${(run.peakKiB / 1024).toFixed(0)} MB`,
    `CPU ${Math.round(run.cores * 100)}% (sys ${Math.round(run.sysCores * 100)}%)`,
    `syscalls/req ${run.readsPerRequest.toFixed(1)}r ${run.writesPerRequest.toFixed(1)}w`,
  ];
  if (run.toSlow !== undefined) parts.push(`to slow ${(run.toSlow * 100).toFixed(1)}%`);
  if (run.probe) parts.push(`per-request p50 ${run.probe.p50.toFixed(2)} ms p99 ${run.probe.p99.toFixed(2)} ms`);
  if (run.errors) parts.push(`errors ${run.errors}`);
  parts.push(`(others used ${Math.round(run.foreign * 100)}% of a core)`);
  return parts.join('  ');
}

/** Median RSS over two seconds of a proxy doing nothing. */
export async function idleRssKiB(target) {
  const samples = [];
  for (let i = 0; i < 8; i++, await sleep(250)) samples.push(totalRssKiB(target.pids));
  return median(samples);
}
