/** Many requests over keep-alive connections, counted by the upstream that answered (x-upstream). */
import http from 'node:http';

export interface Counted {
  /** Answers by upstream name. */
  by: Map<string, number>;
  /** Non-200 answers and errors. */
  failed: number;
  /** The upstream of each request, in request order. */
  order: string[];
}

/**
 * Sends `n` GETs to `url` with `concurrency` in flight; `headersFor(i)` gives request i's headers.
 * Answers are counted by their x-upstream header.
 */
export async function countUpstreams(
  url: string,
  n: number,
  options: { concurrency?: number; headersFor?: (i: number) => http.OutgoingHttpHeaders } = {},
): Promise<Counted> {
  const { concurrency = 8, headersFor } = options;
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const by = new Map<string, number>();
  const order: string[] = new Array(n);
  let failed = 0;
  let next = 0;
  const one = (i: number) =>
    new Promise<void>((resolve) => {
      const req = http.get(url, { agent, headers: headersFor?.(i) ?? {} }, (res) => {
        res.resume();
        res.on('end', () => {
          const name = String(res.headers['x-upstream'] ?? '');
          if (res.statusCode !== 200 || name === '') failed++;
          else by.set(name, (by.get(name) ?? 0) + 1);
          order[i] = name;
          resolve();
        });
      });
      req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
      req.on('error', () => {
        failed++;
        order[i] = '';
        resolve();
      });
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await one(next++);
    }),
  );
  agent.destroy();
  return { by, failed, order };
}

export const share = (c: Counted, name: string, n: number) => (c.by.get(name) ?? 0) / n;
