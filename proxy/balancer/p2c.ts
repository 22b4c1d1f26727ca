import { pickIndex, type Random } from '../clock.js';
import type { Balancer } from './balancer.js';
import type { LoadSignals } from './balancer.js';

/**
 * Power of two choices (Mitzenmacher): two distinct instances at random, the one with fewer
 * requests in flight wins. Nearly as good as least-loaded over all, at O(1), and it steers away
 * from a slow instance because its requests pile up. Ties (common at low concurrency, when both
 * have nothing in flight) go to the one that has been answering faster (a moving average), so a
 * slow instance does not get half of the ties.
 */
export function createP2cBalancer(options: { random?: Random; inflight: LoadSignals }): Balancer {
  const random = options.random ?? Math.random;
  const { inflight } = options;
  return {
    pick<T extends object>(instances: readonly T[]): T {
      const n = instances.length;
      if (n === 1) return instances[0]!;
      const i = pickIndex(random, n);
      let j = pickIndex(random, n - 1);
      if (j >= i) j++;
      const a = instances[i]!;
      const b = instances[j]!;
      const la = inflight.get(a);
      const lb = inflight.get(b);
      if (la !== lb) return lb < la ? b : a;
      return inflight.latency(b) < inflight.latency(a) ? b : a;
    },
  };
}
