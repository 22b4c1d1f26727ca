/**
 * Light, steady load for the registry-latency measurement: `rps` requests per second spread over
 * `workers` keep-alive connections, each worker on its own schedule (not closed-loop as fast as
 * possible: the proxy stays far from saturation, so what is measured is the registry, not queues).
 */
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

export function startPacedLoad(url, { rps = 2_000, workers = 8 } = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: workers });
  const stats = { sent: 0, ok: 0, failed: 0, failures: {} };
  let running = true;
  const fail = (key) => {
    stats.failed++;
    stats.failures[key] = (stats.failures[key] ?? 0) + 1;
  };
  const once = () =>
    new Promise((resolve) => {
      stats.sent++;
      const req = http.get(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) stats.ok++;
          else fail(String(res.statusCode));
          resolve();
        });
        res.on('error', (e) => {
          fail(e.code ?? e.message);
          resolve();
        });
      });
      req.on('error', (e) => {
        fail(e.code ?? e.message);
        resolve();
      });
      req.setTimeout(5_000, () => req.destroy(new Error('timeout')));
    });
  const intervalMs = (1_000 * workers) / rps;
  const worker = async (offset) => {
    let next = performance.now() + offset;
    while (running) {
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
      await once();
      next += intervalMs;
      // Behind schedule (a stall): skip ahead instead of bursting to catch up.
      if (next < performance.now() - intervalMs) next = performance.now();
    }
  };
  const done = Promise.all(Array.from({ length: workers }, (_, i) => worker((i * intervalMs) / workers)));
  return {
    stats,
    async stop() {
      running = false;
      await done;
      agent.destroy();
      return stats;
    },
  };
}
