/** Resident memory of processes, from /proc (Linux): what the kernel charges them, in KiB. */
import fs from 'node:fs';

/** VmRSS of `pid` in KiB; 0 when it is gone. */
export function rssKiB(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** Direct children of `pid` (an nginx master's workers). */
export function childPids(pid) {
  const found = [];
  let tasks = [];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return found;
  }
  for (const task of tasks) {
    try {
      const text = fs.readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (text) found.push(...text.split(/\s+/).map(Number));
    } catch {
      /* the task ended meanwhile */
    }
  }
  return found;
}

/** Sum of VmRSS over `pids()` (re-listed at every sample: nginx may respawn a worker). */
export function totalRssKiB(pids) {
  return pids().reduce((sum, pid) => sum + rssKiB(pid), 0);
}

/** Samples every `intervalMs` until stopped; `stop()` returns the peak and the median, in KiB. */
export function startRssSampler(pids, intervalMs = 250) {
  const samples = [totalRssKiB(pids)];
  const timer = setInterval(() => samples.push(totalRssKiB(pids)), intervalMs);
  return {
    stop() {
      clearInterval(timer);
      samples.push(totalRssKiB(pids));
      const sorted = samples.filter((s) => s > 0).sort((a, b) => a - b);
      return { peakKiB: sorted.at(-1) ?? 0, medianKiB: sorted[Math.floor(sorted.length / 2)] ?? 0 };
    },
  };
}
