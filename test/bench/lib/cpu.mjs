/**
 * CPU used by processes that are not ours while a run measured: on a shared 2-core machine a
 * test suite running next to the benchmark moves its numbers, so each run says how much of a
 * core went elsewhere. Ours = this process (with the children it reaped, e.g. wrk) and every
 * live descendant (proxies, backends, ZooKeeper, nginx workers).
 */
import fs from 'node:fs';
import { childPids } from './rss.mjs';

/** Linux's USER_HZ: /proc times are in 1/100 s on every architecture Node runs on. */
const TICKS_PER_S = 100;

function machineBusyTicks() {
  const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , , , steal] = fields;
  // Not irq/softirq: loopback traffic is processed there and charged to no process, ours included.
  return user + nice + system + (steal ?? 0);
}

/** utime + stime (+ the reaped children's, for this process). */
function processTicks(pid, withChildren) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    return f[11] + f[12] + (withChildren ? f[13] + f[14] : 0);
  } catch {
    return 0;
  }
}

/** CPU seconds used so far by `pids` (all their threads): total, and the part in the kernel. */
export function cpuSeconds(pids) {
  let user = 0;
  let sys = 0;
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat
        .slice(stat.lastIndexOf(')') + 2)
        .split(' ')
        .map(Number);
      user += f[11];
      sys += f[12];
    } catch {
      /* gone */
    }
  }
  return { total: (user + sys) / TICKS_PER_S, sys: sys / TICKS_PER_S };
}

function descendants(pid) {
  const all = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = childPids(queue.shift());
    all.push(...next);
    queue.push(...next);
  }
  return all;
}

/** Ours vs the machine's CPU ticks now. */
export function cpuSnapshot() {
  const ours = processTicks(process.pid, true) + descendants(process.pid).reduce((sum, pid) => sum + processTicks(pid, false), 0);
  return { at: performance.now(), machine: machineBusyTicks(), ours };
}

/**
 * Share of one core used by others between two snapshots (0.25 = a quarter core). A descendant
 * that exited without being reaped by us in between is counted as foreign: an overestimate.
 */
export function foreignCores(before, after) {
  const seconds = (after.at - before.at) / 1_000;
  if (seconds <= 0) return 0;
  return Math.max(0, (after.machine - before.machine - (after.ours - before.ours)) / TICKS_PER_S / seconds);
}

/**
 * The main thread's scheduler figures (/proc/<pid>/schedstat): ns on a CPU, ns runnable but
 * waiting for one. The wait shows a proxy starved of a core, which a CPU profile (wall-clock
 * sampling) charges to whatever function was running when the thread was preempted.
 */
export function schedstat(pid) {
  try {
    const [runNs, waitNs] = fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
    return { runNs, waitNs };
  } catch {
    return { runNs: 0, waitNs: 0 };
  }
}

/** Read and write system calls so far (/proc/<pid>/io: syscr, syscw; writev counts as one). */
export function syscallCounts(pid) {
  try {
    const io = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
    return { reads: Number(/^syscr: (\d+)/m.exec(io)?.[1] ?? 0), writes: Number(/^syscw: (\d+)/m.exec(io)?.[1] ?? 0) };
  } catch {
    return { reads: 0, writes: 0 };
  }
}
