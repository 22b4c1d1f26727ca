import { pickIndex, type Random } from '../clock.js';
import type { Balancer, Weighted } from './balancer.js';
import type { LoadSignals } from './balancer.js';
import { createWeightCache, weightedIndex, weightedIndexExcept } from './weights.js';

/**
 * Power of two choices (Mitzenmacher): two distinct instances at random, the one with fewer
 * requests in flight wins. Nearly as good as least-loaded over all, at O(1), and it steers away
 * from a slow instance because its requests pile up. Ties (common at low concurrency, when both
 * have nothing in flight) go to the one that has been answering faster (a moving average), so a
 * slow instance does not get half of the ties.
 *
 * With unequal weights the two are drawn in proportion to their weights and compared by load per
 * unit of weight: the second drawn wins only when, with this request added, it would still carry
 * less per unit of weight than the first does now. An idle service's shares follow its weights
 * exactly (the first drawn always wins), and under load an instance of weight 3 carries three
 * times the requests in flight of one of weight 1 before it loses; a slow instance, whose requests
 * pile up, still loses.
 */
export function createP2cBalancer(options: { random?: Random; inflight: LoadSignals }): Balancer {
  const random = options.random ?? Math.random;
  const { inflight } = options;
  const tableOf = createWeightCache();
  return {
    pick<T extends Weighted>(instances: readonly T[]): T {
      const n = instances.length;
      if (n === 1) return instances[0]!;
      const table = tableOf(instances);
      if (!table.uniform) {
        const i = weightedIndex(table, random);
        const j = weightedIndexExcept(table, random, i);
        const a = instances[i]!;
        const b = instances[j]!;
        return (inflight.get(b) + 1) / table.weights[j]! < inflight.get(a) / table.weights[i]! ? b : a;
      }
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
