/**
 * Per-request latency, uncorrected: a closed-loop Node client on `connections` keep-alive
 * connections that times every request. wrk 4.1 corrects its latency distribution for
 * coordinated omission (stats_correct in wrk.c: each response slower than twice the mean
 * per-connection interval adds synthetic samples, as if a fixed-rate client had queued behind
 * it), so its p99 counts one 50 ms request as dozens. This probe gives the plain p99 of the
 * requests sent, which is what "p99 per balancing strategy" asks about.
 */
import http from 'node:http';
import { percentile } from './stats.mjs';

export async function probeLatency(url, { connections = 10, seconds = 5 } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const latencies = [];
  let errors = 0;
  const start = performance.now();
  const end = start + seconds * 1_000;
  const once = () =>
    new Promise((resolve) => {
      const started = performance.now();
      const req = http.get(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) latencies.push(performance.now() - started);
          else errors++;
          resolve();
        });
        res.on('error', () => resolve(errors++));
      });
      req.on('error', () => resolve(errors++));
      req.setTimeout(5_000, () => req.destroy(new Error('timeout')));
    });
  const worker = async () => {
    while (performance.now() < end) await once();
  };
  await Promise.all(Array.from({ length: connections }, worker));
  agent.destroy();
  return {
    requests: latencies.length,
    rps: latencies.length / ((performance.now() - start) / 1_000),
    errors,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}
