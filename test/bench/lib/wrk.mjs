/** Runs wrk (bounded in time) and reads req/s, latency percentiles and errors from its report. */
import { spawnTracked } from './processes.mjs';

const UNIT_MS = { us: 0.001, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** '812.00us' → 0.812 (ms). */
export function parseDurationMs(text) {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  return match ? Number(match[1]) * UNIT_MS[match[2]] : NaN;
}

/** The figures of one `wrk --latency` report. */
export function parseWrk(output) {
  const number = (re) => {
    const m = re.exec(output);
    return m ? Number(m[1]) : 0;
  };
  const percentile = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(output);
    return m ? parseDurationMs(m[1]) : NaN;
  };
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  return {
    rps: number(/^Requests\/sec:\s+([\d.]+)/m),
    requests: number(/^\s+(\d+) requests in/m),
    p50: percentile(50),
    p90: percentile(90),
    p99: percentile(99),
    non2xx: number(/Non-2xx or 3xx responses: (\d+)/),
    socketErrors: socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
  };
}

/**
 * One wrk run against `url`. Killed (by PID) if it has not finished `graceS` seconds after its
 * duration; rejects when wrk fails or prints no report.
 */
export async function runWrk({ url, connections, threads, seconds, script, logFile, graceS = 20 }) {
  const t = Math.max(1, Math.min(threads, connections));
  const args = ['--latency', '-t', String(t), '-c', String(connections), '-d', `${seconds}s`, '--timeout', '5s'];
  if (script) args.push('-s', script);
  args.push(url);
  const proc = spawnTracked(`wrk ${url}`, 'wrk', args, { logFile });
  const killer = setTimeout(() => proc.stop({ signal: 'SIGKILL' }), (seconds + graceS) * 1_000);
  const { code, signal, error } = await proc.exited;
  clearTimeout(killer);
  const output = proc.logTail(20_000);
  if (error || code !== 0) throw new Error(`wrk ${args.join(' ')} failed (${error?.message ?? signal ?? `exit ${code}`}):\n${output}`);
  const result = parseWrk(output);
  if (!result.rps) throw new Error(`wrk printed no Requests/sec:\n${output}`);
  return { ...result, output };
}
