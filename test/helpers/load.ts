/** A bounded load generator for fault tests: loopback only, stops by count, by time, or on demand. */
import http from 'node:http';

export interface LoadResult {
  sent: number;
  ok: number;
  failed: number;
  /** Non-2xx statuses and errors, with counts. */
  failures: Record<string, number>;
}

export interface Load {
  readonly sent: number;
  stop(): Promise<LoadResult>;
}

export function startLoad(
  url: string,
  options: { concurrency?: number; method?: string; body?: Buffer; maxRequests?: number; maxMs?: number } = {},
): Load {
  const { concurrency = 8, method = 'GET', body, maxRequests = 200_000, maxMs = 120_000 } = options;
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const deadline = Date.now() + maxMs;
  const result: LoadResult = { sent: 0, ok: 0, failed: 0, failures: {} };
  let running = true;
  const fail = (key: string) => {
    result.failed++;
    result.failures[key] = (result.failures[key] ?? 0) + 1;
  };
  const one = () =>
    new Promise<void>((resolve) => {
      const req = http.request(url, { method, agent, headers: body ? { 'content-length': body.length } : {} }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode! >= 200 && res.statusCode! < 300) result.ok++;
          else fail(String(res.statusCode));
          resolve();
        });
        res.on('error', (e) => {
          fail((e as NodeJS.ErrnoException).code ?? e.message);
          resolve();
        });
      });
      req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
      req.on('error', (e) => {
        fail((e as NodeJS.ErrnoException).code ?? e.message);
        resolve();
      });
      req.end(body);
    });
  const workers = Array.from({ length: concurrency }, async () => {
    while (running && result.sent < maxRequests && Date.now() < deadline) {
      result.sent++;
      await one();
    }
  });
  return {
    get sent() {
      return result.sent;
    },
    async stop() {
      running = false;
      await Promise.all(workers);
      agent.destroy();
      return result;
    },
  };
}
