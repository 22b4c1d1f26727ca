import { pickIndex, type Random } from '../clock.js';
import type { Balancer } from './balancer.js';
import type { Inflight } from './inflight.js';

/**
 * Power of two choices (Mitzenmacher): two distinct instances at random, the one with fewer
 * requests in flight wins. Nearly as good as least-loaded over all, at O(1), and it steers away
 * from a slow instance because its requests pile up.
 */
export function createP2cBalancer(options: { random?: Random; inflight: Inflight }): Balancer {
  const random = options.random ?? Math.random;
  const { inflight } = options;
  return {
    pick(instances) {
      const n = instances.length;
      if (n === 1) return instances[0]!;
      const i = pickIndex(random, n);
      let j = pickIndex(random, n - 1);
      if (j >= i) j++;
      const a = instances[i]!;
      const b = instances[j]!;
      return inflight.get(b) < inflight.get(a) ? b : a;
    },
  };
}
